#include "store/redis_store.hpp"

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>

#include <unistd.h>

#include <nlohmann/json.hpp> // log fields

#include "model/codec.hpp"
#include "support/log.hpp"
#include "support/metrics.hpp"

namespace bt::store {
namespace {

using steady = std::chrono::steady_clock;

/// True when a reply is what a successful XADD returns.
bool journaled(const redis_reply& r) {
  return r.kind == redis_reply::string;
}

/// The field of a journal entry holding one event ("e"), or several, one encoded
/// event per line ("b"): one append is one entry, so a batch is written and trimmed
/// whole, and Redis does the work of one XADD for it.
constexpr const char* one_event = "e";
constexpr const char* several_events = "b";

/// A stored build decoded, or why it is not.
struct decoded_build {
  std::optional<model::build> build;
  std::string why;
};

/// Runs `work(from, to)` over [0, n) in slices, one per core (at most eight): decoding
/// is most of the work of reading a million stored builds or records at recovery.
template <class Work>
void on_every_core(std::size_t n, Work work) {
  std::size_t workers = std::clamp(std::thread::hardware_concurrency(), 1u, 8u);
  auto slice = (n + workers - 1) / workers;
  std::vector<std::jthread> helpers;
  for (std::size_t w = 1; w < workers && w * slice < n; ++w)
    helpers.emplace_back(work, w * slice, std::min(n, (w + 1) * slice));
  work(0, std::min(n, slice));
} // joined

/// Decodes the stored builds of one page. Replies that are not strings (deleted since
/// the scan) stay empty with no reason.
std::vector<decoded_build> decode_builds(const std::vector<redis_reply>& docs) {
  std::vector<decoded_build> out(docs.size());
  on_every_core(docs.size(), [&](std::size_t from, std::size_t to) {
    for (auto i = from; i < to; ++i)
      if (docs[i].kind == redis_reply::string)
        out[i].build = model::codec::decode_build(docs[i].text, &out[i].why);
  });
  return out;
}

/// Visits the decoded builds of a page, logging those that do not decode.
void visit_decoded(const std::vector<redis_reply>& docs,
                   const std::function<void(const model::build&)>& visit) {
  auto decoded = decode_builds(docs);
  for (std::size_t i = 0; i < docs.size(); ++i) {
    if (docs[i].kind != redis_reply::string)
      continue; // deleted since the scan
    if (decoded[i].build)
      visit(*decoded[i].build);
    else
      support::log(support::log_level::error, "a stored build does not decode; skipped",
                   {{"reason", decoded[i].why}});
  }
}

/// The value of the records' state key once every stored build has its record.
constexpr const char* records_complete = "1";

/// Builds per transaction (MULTI/EXEC) when builds are written or erased with their
/// records: a crash never leaves a build without its record, or with the record of
/// another version. (A Lua script did the same at ~5 µs more of Redis's CPU per build
/// written, copying each document into Lua and out; a transaction ~1.5 µs.)
constexpr std::size_t builds_per_transaction = 64;

/// Pipelines of whole transactions: run_all never splits one.
constexpr std::size_t transaction_chunk = 3 * (2 * builds_per_transaction + 2);

/// What SET, MULTI and a queued command answer.
bool status_ok(const redis_reply& r) {
  return r.kind == redis_reply::status;
}

/// What DEL, HSET, XTRIM and a script counting what it did answer.
bool integer_ok(const redis_reply& r) {
  return r.kind == redis_reply::integer;
}

/// A reply of a transaction's commands: MULTI's and each queued command's status, and
/// EXEC's array with no command refused.
bool transaction_ok(const redis_reply& r) {
  if (status_ok(r))
    return true;
  return r.kind == redis_reply::array
         && std::none_of(r.elements.begin(), r.elements.end(),
                         [](const redis_reply& e) { return e.kind == redis_reply::error; });
}

/// Appends to `out` the commands of `items` in transactions of builds_per_transaction,
/// two commands per item (`each(item, out)` pushes them).
template <class Items, class Each>
void in_transactions(const Items& items, std::vector<redis_command>& out, Each each) {
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i % builds_per_transaction == 0)
      out.push_back({"MULTI"});
    each(items[i], out);
    if ((i + 1) % builds_per_transaction == 0 || i + 1 == items.size())
      out.push_back({"EXEC"});
  }
}

/// Keeps records made from builds as they were read, unless the build is gone since
/// or a newer record was written with it. KEYS the records hash, then each build's
/// key; ARGV each build's name and record.
constexpr const char* record_keep_script = R"(
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    redis.call('HSETNX', KEYS[1], ARGV[2 * i - 3], ARGV[2 * i - 2])
  end
end
return #KEYS - 1
)";

} // namespace

redis_store::redis_store(redis_store_config cfg)
  : cfg_{std::move(cfg)},
    writer_client_{cfg_.endpoint, cfg_.timeout},
    reader_client_{cfg_.endpoint, cfg_.timeout},
    snapshot_client_{cfg_.endpoint, cfg_.timeout},
    outbox_client_{cfg_.endpoint, cfg_.timeout},
    exchange_client_{cfg_.endpoint, cfg_.timeout},
    writer_{[this] { write_loop(); }} {
}

redis_store::~redis_store() {
  {
    std::lock_guard guard{queue_mutex_};
    stopping_ = true;
  }
  wake_.notify_all();
  writer_.join();
}

void redis_store::complete(std::deque<pending>& batch, bool durable) {
  bt::store::commit c;
  for (auto& p : batch)
    p.done(durable, c);
  c.finish();
}

void redis_store::append(const std::vector<model::envelope>& events, append_done done) {
  if (events.empty()) {
    bt::store::commit c;
    return done(true, c); // nothing to journal
  }
  pending p;
  p.several = events.size() > 1;
  for (auto& e : events) {
    if (p.encoded.empty()) {
      p.encoded = model::codec::encode(e);
      continue;
    }
    p.encoded += '\n'; // encoded documents hold no raw line break
    p.encoded += model::codec::encode(e);
  }
  p.done = std::move(done);
  {
    std::lock_guard guard{queue_mutex_};
    if (!stopping_) {
      queue_.push_back(std::move(p));
      p.done = nullptr;
    }
  }
  if (p.done) {
    bt::store::commit c;
    return p.done(false, c);
  }
  wake_.notify_one();
}

bool redis_store::probe() {
  // EXISTS answers like PING and tells whether the marker is still there. Sent again
  // on a fresh connection when the old one went stale (Redis restarted).
  auto result = writer_client_.pipeline({{"EXISTS", marker_key()}}, true);
  auto* replies = std::get_if<std::vector<redis_reply>>(&result);
  if (!replies || replies->at(0).kind != redis_reply::integer) {
    if (ready_.exchange(false))
      support::log(support::log_level::error, "redis unavailable",
                   {{"reason", replies ? replies->at(0).text : std::get<std::string>(result)}});
    return false;
  }
  if (replies->at(0).number == 0) {
    if (marker_written_) {
      data_epoch_.fetch_add(1, std::memory_order_acq_rel);
      support::metrics()
        .get_counter("buildtrack_store_data_lost_total",
                     "Times Redis was found without the data written to it (restarted "
                     "without persistence, flushed); what memory held was written back.")
        .inc();
      support::log(support::log_level::error,
                   "redis lost the data written to it; writing back what memory holds",
                   {{"marker", marker_key()}});
    }
    auto set = writer_client_.pipeline({{"SET", marker_key(), std::to_string(::getpid())}});
    if (std::holds_alternative<std::string>(set))
      return ready_.store(false), false;
    marker_written_ = true;
  }
  if (!ready_.exchange(true))
    support::log(support::log_level::info, "redis reachable");
  return true;
}

void redis_store::write_loop() {
  std::chrono::milliseconds backoff{0};
  auto retry_at = steady::time_point{};
  auto last_probe = steady::time_point{};
  auto failed = [&] {
    backoff = std::min(std::max(backoff * 2, std::chrono::milliseconds{50}), cfg_.max_backoff);
    retry_at = steady::now() + backoff;
  };
  while (true) {
    std::deque<pending> batch;
    {
      std::unique_lock lock{queue_mutex_};
      auto has_work = [&] { return stopping_ || !queue_.empty(); };
      bool up = ready_.load(std::memory_order_relaxed);
      wake_.wait_until(lock, up ? last_probe + cfg_.probe_interval : retry_at, has_work);
      if (stopping_) {
        batch.swap(queue_);
        lock.unlock();
        complete(batch, false);
        return;
      }
      while (!queue_.empty() && batch.size() < cfg_.max_batch) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    auto now = steady::now();
    bool down = !ready_.load(std::memory_order_relaxed);
    if (down && now < retry_at) {
      // Between reconnect attempts: refuse at once rather than hold callers.
      complete(batch, false);
      continue;
    }
    // Probed on time under load too: the marker check must not wait for a quiet spell.
    if (down || now >= last_probe + cfg_.probe_interval) {
      last_probe = now;
      if (!probe()) {
        failed();
        complete(batch, false);
        continue;
      }
      backoff = std::chrono::milliseconds{0};
    }
    if (batch.empty())
      continue;
    journal(batch);
    if (ready_.load(std::memory_order_relaxed))
      backoff = std::chrono::milliseconds{0};
    else
      failed();
  }
}

void redis_store::journal(std::deque<pending>& batch) {
  // The appends gathered while the last write was out go into one entry, in order:
  // Redis does one XADD's work for all of them (it was ~7 µs per XADD, most of its
  // CPU under a storm), and each append is still written whole or not at all.
  std::string events;
  if (batch.size() == 1) {
    events = std::move(batch.front().encoded);
  } else {
    std::size_t size = 0;
    for (auto& p : batch)
      size += p.encoded.size() + 1;
    events.reserve(size);
    for (auto& p : batch) {
      if (!events.empty())
        events += '\n';
      events += p.encoded;
    }
  }
  bool several = batch.size() > 1 || batch.front().several;
  // Built by hand: a braced list would copy the document.
  redis_command xadd;
  xadd.reserve(5);
  xadd.insert(xadd.end(), {"XADD", journal_key(), "*", several ? several_events : one_event});
  xadd.push_back(std::move(events));
  // A connection that went stale (Redis restarted since it was last used) is tried
  // once more on a fresh one. Should Redis have applied the first send after all,
  // the journal holds those events twice in a row, and applying an event again
  // changes nothing (the model's duplicate rules), so a retry is safe.
  auto result = writer_client_.pipeline(std::span<const redis_command>{&xadd, 1}, true);
  if (auto* why = std::get_if<std::string>(&result)) {
    if (ready_.exchange(false))
      support::log(support::log_level::error, "redis journal unavailable", {{"reason", *why}});
    complete(batch, false);
    return;
  }
  ready_.store(true, std::memory_order_relaxed);
  auto& reply = std::get<0>(result).at(0);
  bool ok = journaled(reply);
  if (ok) {
    // Their ratio is the group commit's batch: appends (requests) per round trip, and
    // per message to the registry.
    static auto& entries = support::metrics().get_counter(
      "buildtrack_journal_commits_total", "Journal entries written: group commits.");
    static auto& appends = support::metrics().get_counter(
      "buildtrack_journal_appends_total", "Appends journaled (requests, deadlines).");
    entries.inc();
    appends.inc(batch.size());
  } else {
    support::log(support::log_level::error, "redis refused a journal append",
                 {{"reason", reply.text}, {"appends", batch.size()}});
  }
  complete(batch, ok);
  // Only now has every event up to this entry been handed on.
  if (ok) {
    std::lock_guard guard{mark_mutex_};
    mark_ = reply.text;
  }
}

std::string redis_store::journal_mark() const {
  std::lock_guard guard{mark_mutex_};
  return mark_;
}

bool redis_store::run_all(redis_client& client, const std::vector<redis_command>& cmds,
                          const std::function<bool(const redis_reply&)>& ok, std::size_t chunk) {
  std::span<const redis_command> all{cmds};
  for (size_t first = 0; first < all.size(); first += chunk) {
    auto part = all.subspan(first, std::min(chunk, all.size() - first));
    auto result = client.pipeline(part, true); // SET, DEL and XTRIM may be repeated
    if (auto* why = std::get_if<std::string>(&result)) {
      support::log(support::log_level::error, "redis write failed", {{"reason", *why}});
      return false;
    }
    for (auto& r : std::get<0>(result))
      if (!ok(r)) {
        support::log(support::log_level::error, "redis refused a write", {{"reason", r.text}});
        return false;
      }
  }
  return true;
}

bool redis_store::write(const snapshot& s) {
  std::vector<redis_command> sets;
  sets.reserve(s.builds.size() + 1);
  // Streaks first: if the process dies mid-write, no stored build carries a verdict
  // the stored streaks lack (recovery judges again the builds without one).
  if (s.streaks)
    sets.push_back({"SET", streaks_key(), model::codec::encode(*s.streaks)});
  std::vector<redis_command> builds;
  builds.reserve(s.builds.size() * 2 + s.builds.size() / builds_per_transaction * 2 + 2);
  in_transactions(s.builds, builds, [&](const model::build& b, std::vector<redis_command>& out) {
    auto name = b.key.str();
    out.push_back({"SET", build_key(name), model::codec::encode(b)});
    out.push_back({"HSET", records_key(), std::move(name), model::codec::encode(model::record_of(b))});
  });
  std::vector<redis_command> relays;
  for (auto& r : s.relays)
    relays.push_back(r.input ? redis_command{"HSET", relays_key(), r.id, model::codec::encode(*r.input)}
                             : redis_command{"HDEL", relays_key(), r.id});
  std::lock_guard guard{snapshot_mutex_};
  if (!run_all(snapshot_client_, sets, status_ok)
      || !run_all(snapshot_client_, builds, transaction_ok, transaction_chunk)
      || !run_all(snapshot_client_, relays, integer_ok))
    return false;
  // Trim only once every state above is written: entries before the mark are in it.
  if (s.journal_mark.empty())
    return true;
  return run_all(snapshot_client_, {{"XTRIM", journal_key(), "MINID", s.journal_mark}}, integer_ok);
}

bool redis_store::erase(const std::vector<model::build_key>& keys) {
  std::vector<redis_command> builds;
  in_transactions(keys, builds, [&](const model::build_key& k, std::vector<redis_command>& out) {
    auto name = k.str();
    out.push_back({"DEL", build_key(name)});
    out.push_back({"HDEL", records_key(), std::move(name)});
  });
  std::vector<redis_command> dels;
  for (auto& k : keys) {
    auto name = k.str();
    dels.push_back({"DEL", messages_key(name)});
    dels.push_back({"HDEL", notified_key(), name});
    dels.push_back({"HDEL", job_notices_key(), name});
    dels.push_back({"DEL", notified_key() + ":" + name});
  }
  std::lock_guard guard{snapshot_mutex_};
  return run_all(snapshot_client_, builds, transaction_ok, transaction_chunk)
         && run_all(snapshot_client_, dels, integer_ok);
}

namespace {

/// Records a notice's outbox entries unless a newer revision of its build (or part)
/// was recorded; answers the ids now in the outbox to send (see store::outbox_add).
/// The first record of a job notice counts it under its build.
/// KEYS notified (or the build's parts), outbox, job notice counts; ARGV build (or
/// part), revision, the build to count the job notice under ('' for none), then id,
/// document pairs.
constexpr const char* outbox_add_script = R"(
local seen = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '-1')
local revision = tonumber(ARGV[2])
local ids = {}
if seen > revision then return ids end
if seen == revision then
  for i = 4, #ARGV, 2 do
    if redis.call('HEXISTS', KEYS[2], ARGV[i]) == 1 then table.insert(ids, ARGV[i]) end
  end
  return ids
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if seen < 0 and ARGV[3] ~= '' then redis.call('HINCRBY', KEYS[3], ARGV[3], 1) end
for i = 4, #ARGV, 2 do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  table.insert(ids, ARGV[i])
end
return ids
)";

} // namespace

redis_command redis_store::record_command(const outbox_record& r) const {
  // A part of a build is recorded in a hash of the build's own, erased with it.
  auto build = r.build.str();
  redis_command cmd{"EVAL",
                    outbox_add_script,
                    "3",
                    r.part.empty() ? notified_key() : notified_key() + ":" + build,
                    outbox_key(),
                    job_notices_key(),
                    r.part.empty() ? build : r.part,
                    std::to_string(r.revision),
                    r.job_notice ? build : ""};
  for (auto& [id, doc] : r.entries) {
    cmd.push_back(id);
    cmd.push_back(doc);
  }
  return cmd;
}

void redis_store::change_commands(std::span<const outbox_change> changes,
                                  std::vector<redis_command>& cmds) const {
  for (auto& c : changes) {
    if (c.entry)
      cmds.push_back({"HSET", outbox_key(), c.id, *c.entry});
    if (c.remove)
      cmds.push_back({"HDEL", outbox_key(), c.id});
    if (c.dead_letter)
      cmds.push_back({"RPUSH", dead_letters_key(), *c.dead_letter});
    if (c.message_ref)
      cmds.push_back({"HSET", messages_key(c.build.str()), c.sink, *c.message_ref});
    else if (c.forget_message)
      cmds.push_back({"HDEL", messages_key(c.build.str()), c.sink});
  }
}

namespace {

/// The ids each record's script admitted, from its replies (arrays of ids).
std::vector<std::vector<std::string>> admitted_of(std::span<redis_reply> replies) {
  std::vector<std::vector<std::string>> admitted(replies.size());
  for (size_t i = 0; i < replies.size(); ++i)
    for (auto& id : replies[i].elements)
      admitted[i].push_back(std::move(id.text));
  return admitted;
}

} // namespace

bool redis_store::outbox_add(std::span<const outbox_record> records,
                             std::vector<std::vector<std::string>>& admitted) {
  std::vector<redis_command> cmds;
  cmds.reserve(records.size());
  for (auto& r : records)
    cmds.push_back(record_command(r));
  // Safe to send again after a lost reply: a record already made answers the ids
  // still waiting, as the first answer would have.
  auto replies = write_outbox(cmds);
  if (!replies)
    return false;
  admitted = admitted_of(*replies);
  return true;
}

bool redis_store::outbox_apply(std::span<const outbox_change> changes) {
  std::vector<redis_command> cmds{{"MULTI"}};
  change_commands(changes, cmds);
  cmds.push_back({"EXEC"});
  // Every command sets a value or deletes one, except RPUSH: a repeat could add a
  // dead letter twice, which is a report, not a delivery. Only EXEC's reply says
  // whether the transaction ran.
  auto replies = write_outbox(cmds);
  return replies && replies->back().kind == redis_reply::array;
}

bool redis_store::outbox_write(std::span<const outbox_change> changes,
                               std::span<const outbox_record> records,
                               std::vector<std::vector<std::string>>& admitted) {
  // One transaction, so that the dispatcher waits for one round trip, not two, and a
  // record never lands without the changes before it. Safe to send again for the
  // reasons outbox_add and outbox_apply give.
  std::vector<redis_command> cmds{{"MULTI"}};
  change_commands(changes, cmds);
  auto first_record = cmds.size() - 1; // in EXEC's reply, which has no MULTI
  for (auto& r : records)
    cmds.push_back(record_command(r));
  cmds.push_back({"EXEC"});
  auto replies = write_outbox(cmds);
  if (!replies || replies->back().kind != redis_reply::array)
    return false;
  auto& results = replies->back().elements;
  for (auto& r : results)
    if (r.kind == redis_reply::error) {
      support::log(support::log_level::error, "outbox write refused", {{"reason", r.text}});
      return false;
    }
  if (results.size() != first_record + records.size())
    return false;
  admitted = admitted_of(std::span{results}.subspan(first_record));
  return true;
}

std::optional<std::vector<redis_reply>>
redis_store::write_outbox(const std::vector<redis_command>& cmds) {
  return run_on(outbox_mutex_, outbox_client_, cmds, "outbox write");
}

template <class Command>
std::optional<std::vector<redis_reply>> redis_store::run_on(std::mutex& mutex,
                                                            redis_client& client,
                                                            const std::vector<Command>& cmds,
                                                            std::string_view what) {
  std::variant<std::vector<redis_reply>, std::string> result;
  {
    std::lock_guard guard{mutex};
    result = client.pipeline(std::span<const Command>{cmds}, true);
  }
  if (auto* why = std::get_if<std::string>(&result)) {
    support::log(support::log_level::error, std::string{what} + " failed", {{"reason", *why}});
    return std::nullopt;
  }
  auto& replies = std::get<0>(result);
  for (auto& r : replies)
    if (r.kind == redis_reply::error) {
      support::log(support::log_level::error, std::string{what} + " refused",
                   {{"reason", r.text}});
      return std::nullopt;
    }
  return std::move(replies);
}

namespace {

/// Appends the messages whose dedup id is not known yet to the exchange's stream
/// (trimmed to about the backlog), one after the other, remembering each dedup id
/// with its position, as many ids as the backlog holds. Answers position, fresh (1) or not (0), for each.
/// KEYS stream, dedup order (list), dedup positions (hash); ARGV backlog, then
/// dedup id, routing key, payload triples.
constexpr const char* exchange_publish_script = R"(
local backlog = tonumber(ARGV[1])
local out = {}
for i = 2, #ARGV, 3 do
  local known = ARGV[i] ~= '' and redis.call('HGET', KEYS[3], ARGV[i])
  if ARGV[i] == '' then
    table.insert(out, redis.call('XADD', KEYS[1], 'MAXLEN', '~', backlog, '*',
                                 'key', ARGV[i + 1], 'payload', ARGV[i + 2]))
    table.insert(out, 1)
  elseif known then
    table.insert(out, known)
    table.insert(out, 0)
  else
    local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', backlog, '*',
                          'key', ARGV[i + 1], 'payload', ARGV[i + 2])
    redis.call('HSET', KEYS[3], ARGV[i], id)
    redis.call('RPUSH', KEYS[2], ARGV[i])
    table.insert(out, id)
    table.insert(out, 1)
    local over = redis.call('LLEN', KEYS[2]) - backlog
    while over > 0 do
      local old = redis.call('LPOP', KEYS[2], math.min(over, 1000))
      redis.call('HDEL', KEYS[3], unpack(old))
      over = over - #old
    end
  end
end
return out
)";

} // namespace

std::optional<std::vector<published>>
redis_store::exchange_publish(const std::string& exchange,
                              std::span<const exchange_publication> messages, std::size_t backlog) {
  auto stream = exchange_key(exchange);
  auto kept = std::to_string(std::max<std::size_t>(backlog, 1));
  if (std::all_of(messages.begin(), messages.end(), [](auto& m) { return m.dedup_id.empty(); })) {
    // Nothing to deduplicate (the `builds` feed): plain appends, pipelined. The
    // script's Lua calls cost Redis about as much again as the appends themselves.
    std::vector<redis_command_view> appends;
    appends.reserve(messages.size());
    for (auto& m : messages)
      appends.push_back({"XADD", stream, "MAXLEN", "~", kept, "*", "key", m.routing_key,
                         "payload", m.payload});
    auto replies = run_on(exchange_mutex_, exchange_client_, appends, "exchange publish");
    if (!replies)
      return std::nullopt;
    std::vector<published> out;
    out.reserve(replies->size());
    for (auto& r : *replies)
      out.push_back({std::move(r.text), true});
    return out;
  }
  redis_command cmd{"EVAL", exchange_publish_script, "3", stream, stream + ":dedup-order",
                    stream + ":dedup", kept};
  for (auto& m : messages) {
    cmd.push_back(m.dedup_id);
    cmd.push_back(m.routing_key);
    cmd.push_back(m.payload);
  }
  // Safe to send again after a lost reply: what was appended is known by its dedup id.
  auto replies = run_on(exchange_mutex_, exchange_client_, {cmd}, "exchange publish");
  if (!replies)
    return std::nullopt;
  auto& all = (*replies)[0].elements;
  std::vector<published> out;
  for (size_t i = 0; i + 1 < all.size(); i += 2)
    out.push_back({std::move(all[i].text), all[i + 1].number != 0});
  return out;
}

std::optional<backlog_span> redis_store::exchange_span(const std::string& exchange) {
  auto stream = exchange_key(exchange);
  auto exists = run_on(exchange_mutex_, exchange_client_, {{"EXISTS", stream}}, "exchange read");
  if (!exists)
    return std::nullopt;
  backlog_span span;
  if ((*exists)[0].number == 0) // XINFO on a missing key is an error
    return span;
  auto info = run_on(exchange_mutex_, exchange_client_, {{"XINFO", "STREAM", stream}}, "exchange read");
  if (!info)
    return std::nullopt;
  // Pairs of name and value; `entries-added` (Redis 7) counts every message ever
  // added, `length` those kept: the backlog only ever drops messages by trimming.
  long long length = 0, added = 0;
  auto& fields = (*info)[0].elements;
  for (std::size_t i = 0; i + 1 < fields.size(); i += 2) {
    auto& name = fields[i].text;
    auto& value = fields[i + 1];
    if (name == "length")
      length = value.number;
    else if (name == "entries-added")
      added = value.number;
    else if (name == "first-entry" && !value.elements.empty())
      span.oldest = value.elements[0].text;
  }
  span.trimmed = added > length;
  return span;
}

std::optional<std::vector<exchange_message>>
redis_store::exchange_read(const std::string& exchange, const std::string& after, std::size_t count) {
  auto replies = run_on(exchange_mutex_, exchange_client_,
                        {{"XRANGE", exchange_key(exchange), after.empty() ? "-" : "(" + after, "+",
                          "COUNT", std::to_string(count)}},
                        "exchange read");
  if (!replies)
    return std::nullopt;
  auto& reply = (*replies)[0];
  std::vector<exchange_message> out;
  for (auto& entry : reply.elements) {
    if (entry.elements.size() != 2)
      continue;
    exchange_message m{std::move(entry.elements[0].text), {}, {}};
    auto& fields = entry.elements[1].elements;
    for (size_t i = 0; i + 1 < fields.size(); i += 2)
      (fields[i].text == "key" ? m.routing_key : m.payload) = std::move(fields[i + 1].text);
    out.push_back(std::move(m));
  }
  return out;
}

bool redis_store::outbox_load(std::vector<std::pair<std::string, std::string>>& out) {
  out.clear();
  auto replies = read({{"HGETALL", outbox_key()}});
  if (!replies)
    return false;
  auto& all = (*replies)[0].elements;
  for (size_t i = 0; i + 1 < all.size(); i += 2)
    out.emplace_back(std::move(all[i].text), std::move(all[i + 1].text));
  return true;
}

bool redis_store::notified(std::unordered_map<std::string, build_notices>& out) {
  out.clear();
  auto replies = read({{"HGETALL", notified_key()}, {"HGETALL", job_notices_key()}});
  if (!replies)
    return false;
  auto number = [](const redis_reply& r) { return std::strtoull(r.text.c_str(), nullptr, 10); };
  auto& outcomes = (*replies)[0].elements;
  for (size_t i = 0; i + 1 < outcomes.size(); i += 2)
    out[outcomes[i].text].revision = number(outcomes[i + 1]);
  auto& jobs = (*replies)[1].elements;
  for (size_t i = 0; i + 1 < jobs.size(); i += 2)
    out[jobs[i].text].jobs = number(jobs[i + 1]);
  return true;
}

std::optional<std::string> redis_store::message_ref(const model::build_key& build,
                                                    const std::string& sink, bool& failed) {
  auto replies = read({{"HGET", messages_key(build.str()), sink}});
  failed = !replies;
  if (!replies || (*replies)[0].kind != redis_reply::string)
    return std::nullopt;
  return std::move((*replies)[0].text);
}

bool redis_store::load_streaks(std::optional<model::streak_book>& out) {
  out.reset();
  auto replies = read({{"GET", streaks_key()}});
  if (!replies)
    return false;
  auto& reply = (*replies)[0];
  if (reply.kind != redis_reply::string)
    return true;
  std::string why;
  out = model::codec::decode_streaks(reply.text, &why);
  if (!out)
    support::log(support::log_level::error, "stored streaks do not decode; starting without",
                 {{"reason", why}});
  return true;
}

bool redis_store::load_relays(relay_inputs& out) {
  out.clear();
  auto replies = read({{"HGETALL", relays_key()}});
  if (!replies)
    return false;
  auto& fields = (*replies)[0].elements;
  for (size_t i = 0; i + 1 < fields.size(); i += 2) {
    std::string why;
    auto input = model::codec::decode_envelope(fields[i + 1].text, &why);
    if (input)
      out.emplace_back(std::move(fields[i].text), std::move(*input));
    else
      support::log(support::log_level::error, "a stored relay input does not decode; skipped",
                   {{"id", fields[i].text}, {"reason", why}});
  }
  return true;
}

std::optional<std::size_t> redis_store::replay(const std::function<void(model::envelope)>& visit) {
  std::string after = "0";
  std::size_t visited = 0, corrupt = 0;
  while (true) {
    auto page = read_journal(after, 1000);
    if (!page)
      return std::nullopt;
    if (page->last_id.empty())
      break;
    after = page->last_id;
    corrupt += page->corrupt;
    for (auto& entry : page->entries)
      visit(std::move(entry.event));
    visited += page->entries.size();
  }
  if (corrupt)
    support::log(support::log_level::error, "journal entries that do not decode were skipped",
                 {{"count", corrupt}});
  // Every entry read has been handed on: snapshots may trim behind them, even before
  // any new event comes (recovery runs before appends start).
  if (after != "0") {
    std::lock_guard guard{mark_mutex_};
    if (mark_.empty())
      mark_ = after;
  }
  return visited;
}

std::optional<model::build> redis_store::load(const model::build_key& key, bool& failed) {
  failed = true;
  auto replies = read({{"GET", build_key(key.str())}});
  if (!replies)
    return std::nullopt;
  auto& reply = (*replies)[0];
  if (reply.kind == redis_reply::nil) {
    failed = false;
    return std::nullopt;
  }
  std::optional<model::build> b;
  std::string why = "not a string";
  if (reply.kind == redis_reply::string)
    b = model::codec::decode_build(reply.text, &why);
  if (!b) {
    // Starting this build afresh would overwrite what is stored: refuse instead.
    support::log(support::log_level::error, "a stored build does not decode",
                 {{"build", key.str()}, {"reason", why}});
    return std::nullopt;
  }
  failed = false;
  return b;
}

std::optional<redis_store::scan_page>
redis_store::page_of(std::optional<std::vector<redis_reply>> scan) {
  if (!scan || (*scan)[0].kind != redis_reply::array || (*scan)[0].elements.size() != 2)
    return std::nullopt;
  auto& r = (*scan)[0];
  return scan_page{std::move(r.elements[0].text), std::move(r.elements[1].elements)};
}

bool redis_store::read_ahead(
  const std::function<std::optional<scan_page>(const std::string& cursor)>& fetch,
  const std::function<void(scan_page&)>& take) {
  // Pages are read on a thread of their own, one ahead of the one taken. `take` may
  // use the store: read() holds its lock only during a round trip.
  std::mutex handoff;
  std::condition_variable changed;
  std::optional<std::optional<scan_page>> ahead; // read, not taken yet
  bool done = false;                             // nothing more is taken
  std::jthread reader{[&] {
    std::string cursor = "0";
    for (bool more = true; more;) {
      auto next = fetch(cursor);
      more = next && next->cursor != "0";
      if (more)
        cursor = next->cursor;
      std::unique_lock lock{handoff};
      changed.wait(lock, [&] { return !ahead || done; });
      if (done)
        return;
      ahead = std::move(next);
      changed.notify_all();
    }
  }};
  auto next = [&] {
    std::unique_lock lock{handoff};
    changed.wait(lock, [&] { return ahead.has_value(); });
    auto current = std::move(*ahead);
    ahead.reset();
    changed.notify_all();
    return current;
  };
  // However this returns, the reader stops before it is joined.
  struct finish {
    std::mutex& handoff;
    std::condition_variable& changed;
    bool& done;
    ~finish() {
      std::lock_guard lock{handoff};
      done = true;
      changed.notify_all();
    }
  } stop_reading{handoff, changed, done};
  for (;;) {
    auto current = next();
    if (!current)
      return false;
    take(*current);
    if (current->cursor == "0")
      return true;
  }
}

bool redis_store::for_each(const std::function<void(const model::build&)>& visit) {
  auto pattern = build_key("*");
  // One page of keys and their documents; none when Redis could not be read.
  auto fetch = [this, pattern](const std::string& cursor) -> std::optional<scan_page> {
    auto page = page_of(read({{"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"}}));
    if (!page || page->replies.empty())
      return page;
    redis_command mget{"MGET"};
    for (auto& k : page->replies)
      mget.push_back(std::move(k.text));
    auto values = read({mget});
    if (!values)
      return std::nullopt;
    page->replies = std::move((*values)[0].elements); // the keys' documents
    return page;
  };
  return read_ahead(fetch, [&](scan_page& page) { visit_decoded(page.replies, visit); });
}

bool redis_store::for_each_record(const std::function<void(model::recovery_record&&)>& visit) {
  auto state = read({{"GET", records_state_key()}});
  if (!state)
    return false;
  auto& r = (*state)[0];
  if (r.kind == redis_reply::string && r.text == records_complete)
    return scan_records(visit);
  return make_records(visit);
}

bool redis_store::scan_records(const std::function<void(model::recovery_record&&)>& visit) {
  // Builds whose record does not decode (or is of a format this code does not read):
  // read in full afterwards, their records made from them.
  std::vector<model::build_key> unreadable;
  auto fetch = [this](const std::string& cursor) {
    return page_of(read({{"HSCAN", records_key(), cursor, "COUNT", "1000"}}));
  };
  bool read_all = read_ahead(fetch, [&](scan_page& page) {
    auto& fields = page.replies; // name, record, name, record…
    auto pairs = fields.size() / 2;
    std::vector<std::optional<model::build_key>> keys(pairs);
    std::vector<std::optional<model::recovery_record>> records(pairs);
    std::vector<std::string> why(pairs);
    on_every_core(pairs, [&](std::size_t from, std::size_t to) {
      for (auto i = from; i < to; ++i)
        if ((keys[i] = model::parse_build_key(fields[2 * i].text)))
          records[i] = model::codec::decode_record(fields[2 * i + 1].text, *keys[i], &why[i]);
    });
    for (std::size_t i = 0; i < pairs; ++i) {
      if (records[i]) {
        visit(std::move(*records[i]));
      } else if (keys[i]) {
        support::log(support::log_level::warn,
                     "a stored recovery record does not decode; reading its build",
                     {{"build", fields[2 * i].text}, {"reason", why[i]}});
        unreadable.push_back(std::move(*keys[i]));
      } else {
        support::log(support::log_level::error, "a recovery record names no build; skipped",
                     {{"field", fields[2 * i].text}});
      }
    }
  });
  if (!read_all)
    return false;
  return load_each(unreadable, [&](const model::build& b) { visit(model::record_of(b)); });
}

bool redis_store::make_records(const std::function<void(model::recovery_record&&)>& visit) {
  support::log(support::log_level::info,
               "stored builds have no recovery records yet: reading every build to make them");
  // Records left from before (an older release may have changed builds since) go;
  // a build written from now on comes with its own, which the ones made here do not
  // replace (HSETNX).
  {
    std::lock_guard guard{snapshot_mutex_};
    if (!run_all(snapshot_client_, {{"UNLINK", records_key()}}, integer_ok))
      return false;
  }
  std::vector<std::pair<std::string, std::string>> made; // name, record
  std::size_t kept = 0;
  auto keep = [&] {
    if (made.empty())
      return true;
    std::vector<redis_command> cmds;
    for (std::size_t first = 0; first < made.size(); first += builds_per_transaction) {
      auto group = std::span{made}.subspan(first, std::min(builds_per_transaction, made.size() - first));
      redis_command cmd{"EVAL", record_keep_script, std::to_string(group.size() + 1), records_key()};
      for (auto& [name, _] : group)
        cmd.push_back(build_key(name));
      for (auto& [name, record] : group) {
        cmd.push_back(std::move(name));
        cmd.push_back(std::move(record));
      }
      cmds.push_back(std::move(cmd));
    }
    kept += made.size();
    made.clear();
    std::lock_guard guard{snapshot_mutex_};
    return run_all(snapshot_client_, cmds, integer_ok);
  };
  bool written = true;
  bool read_all = for_each([&](const model::build& b) {
    auto r = model::record_of(b);
    made.emplace_back(b.key.str(), model::codec::encode(r));
    visit(std::move(r));
    if (made.size() >= 4096)
      written = keep() && written;
  });
  if (!read_all || !(written && keep()))
    return false;
  std::lock_guard guard{snapshot_mutex_};
  if (!run_all(snapshot_client_, {{"SET", records_state_key(), records_complete}}, status_ok))
    return false;
  support::log(support::log_level::info, "recovery records made", {{"builds", kept}});
  return true;
}

bool redis_store::load_each(const std::vector<model::build_key>& keys,
                            const std::function<void(const model::build&)>& visit) {
  constexpr std::size_t per_read = 1000;
  for (std::size_t first = 0; first < keys.size(); first += per_read) {
    redis_command mget{"MGET"};
    for (std::size_t i = first; i < std::min(keys.size(), first + per_read); ++i)
      mget.push_back(build_key(keys[i].str()));
    auto values = read({mget});
    if (!values)
      return false;
    visit_decoded((*values)[0].elements, visit);
  }
  return true;
}

std::optional<std::vector<redis_reply>> redis_store::read(const std::vector<redis_command>& cmds) {
  std::variant<std::vector<redis_reply>, std::string> result;
  {
    std::lock_guard guard{reader_mutex_};
    result = reader_client_.pipeline(cmds, true);
  }
  if (auto* why = std::get_if<std::string>(&result)) {
    support::log(support::log_level::error, "redis read failed", {{"reason", *why}});
    return std::nullopt;
  }
  return std::move(std::get<0>(result));
}

std::optional<journal_page> redis_store::read_journal(const std::string& after,
                                                      std::size_t count) {
  auto replies = read({{"XRANGE", journal_key(), after == "0" ? "-" : "(" + after, "+",
                        "COUNT", std::to_string(count)}});
  if (!replies)
    return std::nullopt;
  auto& reply = (*replies)[0];
  if (reply.kind != redis_reply::array)
    return std::nullopt;
  journal_page page;
  for (auto& entry : reply.elements) {
    if (entry.elements.size() != 2) {
      ++page.corrupt;
      continue;
    }
    page.last_id = entry.elements[0].text;
    auto& fields = entry.elements[1].elements;
    // Every event of the entry, or none: an append was written whole.
    std::string why = "not one field named e or b";
    std::vector<model::envelope> events;
    bool whole = fields.size() == 2
                 && (fields[0].text == one_event || fields[0].text == several_events);
    std::string_view rest = whole ? std::string_view{fields[1].text} : std::string_view{};
    while (whole && !rest.empty()) {
      auto line = rest.substr(0, rest.find('\n'));
      rest.remove_prefix(std::min(rest.size(), line.size() + 1));
      auto e = model::codec::decode_envelope(line, &why);
      whole = e.has_value();
      if (e)
        events.push_back(std::move(*e));
    }
    if (!whole || events.empty()) {
      ++page.corrupt;
      support::log(support::log_level::error, "a journal entry does not decode; skipped",
                   {{"entry", page.last_id}, {"reason", why}});
      continue;
    }
    for (auto& e : events)
      page.entries.push_back({page.last_id, std::move(e)});
  }
  return page;
}

} // namespace bt::store
