#include "actors/notify_dispatcher.hpp"

#include <algorithm>

#include <caf/all.hpp>
#include <nlohmann/json.hpp>

#include "model/json.hpp"
#include "model/time.hpp"
#include "support/clock.hpp"
#include "support/log.hpp"

namespace bt::actors {
namespace {

using self_ptr = notify_dispatcher_actor::stateful_pointer<notify_dispatcher_state>;
using state = notify_dispatcher_state;

/// How long the store gets before refused writes are tried again.
constexpr auto store_retry = std::chrono::seconds{1};

void publish(self_ptr self) {
  self->state.stats->outbox.store(self->state.outbox.size(), std::memory_order_relaxed);
}

/// Schedules the next store write: right after the messages already in the mailbox,
/// so that everything they queue goes in one round trip; or after `store_retry`
/// when the store refused the last one.
void arm_tick(self_ptr self, bool refused = false) {
  if (std::exchange(self->state.tick_armed, true))
    return;
  if (refused)
    self->delayed_send(self, store_retry, tick_atom::value);
  else
    self->send(self, tick_atom::value);
}

state::lane* lane_of(self_ptr self, const std::string& sink) {
  for (auto& l : self->state.lanes)
    if (l.sink->config().name == sink)
      return &l;
  return nullptr;
}

/// Queues a change for the next store write.
void write(self_ptr self, store::outbox_change c) {
  self->state.unwritten.push_back(std::move(c));
  arm_tick(self);
}

void start(self_ptr self, state::lane& lane, const std::string& id);
bool load(self_ptr self);

/// Hands the queued changes to `write` (a store call); false when the store refused
/// (they stay queued, in order).
template <class Write>
bool write_queued(self_ptr self, Write write) {
  auto& st = self->state;
  std::vector<store::outbox_change> changes{std::make_move_iterator(st.unwritten.begin()),
                                            std::make_move_iterator(st.unwritten.end())};
  if (!write(std::span<const store::outbox_change>{changes})) {
    st.unwritten.assign(std::make_move_iterator(changes.begin()),
                        std::make_move_iterator(changes.end()));
    return false;
  }
  st.unwritten.clear();
  return true;
}

/// Applies the queued changes in one round trip; false when the store refused
/// (they stay queued, in order).
bool write_changes(self_ptr self) {
  auto& st = self->state;
  return st.unwritten.empty() || write_queued(self, [&](auto changes) {
           return st.store->outbox_apply(changes);
         });
}

/// Starts what the sink's concurrency allows.
void pump(self_ptr self, state::lane& lane) {
  while (lane.in_flight < lane.sink->config().concurrency && !lane.ready.empty()) {
    auto id = std::move(lane.ready.front());
    lane.ready.pop_front();
    start(self, lane, id);
  }
}

void make_ready(self_ptr self, state::lane& lane, const std::string& id, state::pending& p) {
  if (p.in_flight || p.queued || p.wait != 0)
    return;
  p.queued = true;
  lane.ready.push_back(id);
}

/// One attempt: the request goes out on the transport; its report comes back here.
void start(self_ptr self, state::lane& lane, const std::string& id) {
  auto& st = self->state;
  auto it = st.outbox.find(id);
  if (it == st.outbox.end())
    return;
  auto& p = it->second;
  p.queued = false;
  p.in_flight = true;
  ++lane.in_flight;
  st.deliveries.note(p.entry, notify::delivery_state::sending, support::wall_clock());
  auto revision = p.entry.revision();
  std::optional<std::string> ref;
  if (lane.sink->edits_in_place()) {
    // A message just posted (or forgotten) may still be in the queued writes.
    bool failed = !write_changes(self);
    if (!failed)
      ref = st.store->message_ref(p.entry.notice.subject.key, lane.sink->config().name, failed);
    if (failed) {
      // Posting anew could duplicate the message: wait for the store like for a receiver.
      net::inbound_response no_store;
      no_store.error = "the store could not say where the earlier message is";
      self->send(self, delivery_report{id, revision, std::nullopt, std::move(no_store)});
      return;
    }
  }
  auto request = lane.sink->request(p.entry, ref);
  auto me = caf::actor_cast<notify_dispatcher_actor>(self);
  st.send(std::move(request), lane.sink->config().timeout,
          [me, id, revision, ref](net::inbound_response r) {
            caf::anon_send(me, delivery_report{id, revision, ref, std::move(r)});
          });
}

/// Adds or replaces an entry; a newer revision replaces an older one (the newest
/// outcome is what the receiver needs), keeping any wait the receiver asked for.
void admit(self_ptr self, notify::outbox_entry e) {
  auto& st = self->state;
  auto* lane = lane_of(self, e.sink);
  if (!lane) {
    support::log(support::log_level::warn, "outbox entry for a sink no longer configured",
                 {{"id", e.id()}});
    return;
  }
  auto id = e.id();
  auto& p = st.outbox[id];
  // The same revision again (a repeated notice) keeps its attempts.
  if (p.entry.sink.empty() || p.entry.revision() < e.revision())
    p.entry = std::move(e);
  if (!p.in_flight)
    st.deliveries.note(p.entry, notify::delivery_state::queued, support::wall_clock());
  make_ready(self, *lane, id, p);
  publish(self);
  pump(self, *lane);
}

/// The outbox entries of a notice: one per sink that wants it. False when the
/// store could not say whether a sink has a message to edit.
bool entries_of(self_ptr self, const model::notice& n, std::vector<notify::outbox_entry>& out) {
  auto& st = self->state;
  for (auto& lane : st.lanes) {
    auto& sink = *lane.sink;
    auto& name = sink.config().name;
    // A release goes to its one sink; the common notice skips a sink that waits (a
    // job notice is no finished-notice: nothing waits for it).
    if (n.sink ? *n.sink != name : !n.job && model::waits_for_release(n.subject, name))
      continue;
    bool wanted = sink.wants(n);
    if (!wanted && sink.edits_in_place() && sink.follows(n.subject)) {
      // A message posted for an earlier outcome is edited whatever this one is.
      bool failed = false;
      wanted = st.outbox.count(notify::outbox_entry::id_of(sink.config().name, n.subject.key)) != 0
               || st.store->message_ref(n.subject.key, sink.config().name, failed).has_value();
      if (failed)
        return false;
    }
    if (wanted)
      out.push_back({sink.config().name, n, 0});
  }
  return true;
}

/// Writes the queued changes and records the queued notices in one round trip, then
/// admits what the store says is to be sent; false when the store refused (both stay
/// queued).
bool record(self_ptr self) {
  auto& st = self->state;
  std::vector<std::vector<notify::outbox_entry>> entries(st.unrecorded.size());
  std::vector<store::outbox_record> records;
  records.reserve(st.unrecorded.size());
  for (size_t i = 0; i < st.unrecorded.size(); ++i) {
    auto& n = st.unrecorded[i];
    if (!entries_of(self, n, entries[i]))
      return false;
    // A release, or a job notice, is a part of its build recorded on its own.
    store::outbox_record r{n.subject.key, n.job ? 1 : n.subject.revision, {},
                           n.job ? "job:" + *n.job : n.sink ? *n.sink : "", n.job.has_value()};
    for (auto& e : entries[i])
      r.entries.emplace_back(e.id(), notify::encode(e));
    records.push_back(std::move(r));
  }
  std::vector<std::vector<std::string>> admitted;
  if (!write_queued(self, [&](auto changes) {
        return st.store->outbox_write(changes, records, admitted);
      }))
    return false;
  st.unrecorded.clear();
  for (size_t i = 0; i < entries.size(); ++i)
    for (auto& e : entries[i])
      if (std::find(admitted[i].begin(), admitted[i].end(), e.id()) != admitted[i].end())
        admit(self, std::move(e));
  return true;
}

/// Writes what is queued: changes first (they were decided earlier), then notices.
/// False when the store refused.
bool flush(self_ptr self) {
  auto& st = self->state;
  if (!st.loaded && !load(self))
    return false;
  // A sink that edits its messages in place reads where they are (entries_of) before
  // the notices are recorded: the changes, which may say, go first on their own.
  bool reads_refs = std::any_of(st.lanes.begin(), st.lanes.end(),
                                [](const state::lane& l) { return l.sink->edits_in_place(); });
  if ((st.unrecorded.empty() || reads_refs) && !write_changes(self))
    return false;
  return st.unrecorded.empty() || record(self);
}

/// Reads what a previous run left in the outbox; false when the store could not.
bool load(self_ptr self) {
  auto& st = self->state;
  std::vector<std::pair<std::string, std::string>> docs;
  if (!st.store->outbox_load(docs))
    return false;
  for (auto& [id, doc] : docs) {
    auto e = notify::decode_outbox_entry(doc);
    if (!e || e->id() != id) {
      support::log(support::log_level::error, "outbox entry does not decode; dropped",
                   {{"id", id}});
      write(self, {id, {}, "", std::nullopt, true});
      continue;
    }
    admit(self, std::move(*e));
  }
  st.loaded = true;
  if (!docs.empty())
    support::log(support::log_level::info, "outbox resumed", {{"entries", docs.size()}});
  return true;
}

void dead_letter(state::lane& lane, state::pending& p, store::outbox_change& c,
                 const std::string& reason) {
  lane.dead->inc();
  c.remove = true;
  c.dead_letter = nlohmann::json{{"id", c.id},
                                 {"reason", reason},
                                 {"at", model::format_time(support::wall_clock())},
                                 {"attempts", p.entry.attempts},
                                 {"entry", nlohmann::json::parse(notify::encode(p.entry))}}
                    .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  support::log(support::log_level::error, "notification dead-lettered",
               {{"id", c.id}, {"revision", p.entry.revision()}, {"attempts", p.entry.attempts},
                {"reason", reason}});
}

void report_arrived(self_ptr self, const delivery_report& r) {
  auto& st = self->state;
  auto it = st.outbox.find(r.id);
  if (it == st.outbox.end())
    return;
  auto& p = it->second;
  auto* lane = lane_of(self, p.entry.sink);
  p.in_flight = false;
  --lane->in_flight;
  auto result = lane->sink->judge(r.response, r.message_ref);
  store::outbox_change change{r.id, p.entry.notice.subject.key, p.entry.sink};
  bool done = false;
  if (result.kind == notify::outcome::delivered) {
    lane->delivered->inc();
    change.message_ref = result.message_ref;
    // A newer revision that arrived meanwhile is still to be sent.
    done = p.entry.revision() == r.revision;
    change.remove = done;
    st.deliveries.note(p.entry, done ? notify::delivery_state::delivered : notify::delivery_state::queued,
                       support::wall_clock());
    if (support::log_enabled(support::log_level::debug))
      support::log(support::log_level::debug, "notification delivered",
                   {{"id", r.id}, {"revision", r.revision}});
  } else {
    lane->failed->inc();
    ++p.entry.attempts;
    change.forget_message = result.forget_message;
    auto& policy = lane->sink->config().retry;
    if (result.kind == notify::outcome::give_up
        || p.entry.attempts >= static_cast<std::uint32_t>(policy.max_attempts)) {
      dead_letter(*lane, p, change, result.detail);
      st.deliveries.note(p.entry, notify::delivery_state::dead_lettered, support::wall_clock(),
                         result.detail);
      done = true;
    } else {
      lane->retries->inc();
      change.entry = notify::encode(p.entry);
      auto delay = result.retry_after
                     ? *result.retry_after
                     : notify::backoff(policy, p.entry.attempts,
                                       std::uniform_real_distribution<>{0.0, 1.0}(st.random));
      p.wait = ++st.waits;
      self->delayed_send(self, delay, retry_atom::value, r.id, p.wait);
      auto now = support::wall_clock();
      st.deliveries.note(p.entry, notify::delivery_state::retrying, now, result.detail,
                         now + std::chrono::duration_cast<model::timestamp::duration>(delay));
      support::log(support::log_level::warn, "notification attempt failed",
                   {{"id", r.id}, {"attempt", p.entry.attempts}, {"reason", result.detail},
                    {"retry_in_ms", delay.count()}});
    }
  }
  if (done)
    st.outbox.erase(it);
  else
    make_ready(self, *lane, r.id, p);
  write(self, std::move(change));
  publish(self);
  pump(self, *lane);
}

} // namespace

transport http_transport() {
  auto client = std::make_shared<net::http_client>();
  return [client](net::outbound_request req, std::chrono::milliseconds timeout,
                  std::function<void(net::inbound_response)> done) {
    client->send(std::move(req), timeout, std::move(done));
  };
}

notify_dispatcher_actor::behavior_type
notify_dispatcher(notify_dispatcher_actor::stateful_pointer<notify_dispatcher_state> self,
                  std::shared_ptr<store::store> store, std::vector<config::sink_config> sinks,
                  std::vector<config::person_config> people, transport send,
                  std::shared_ptr<dispatcher_stats> stats) {
  auto& st = self->state;
  st.store = std::move(store);
  st.send = std::move(send);
  st.stats = std::move(stats);
  auto& m = support::metrics();
  for (auto& cfg : sinks) {
    state::lane lane;
    auto sink_label = "sink=\"" + support::label_value(cfg.name) + "\"";
    auto attempts = [&](const char* result) {
      return &m.get_counter("buildtrack_notification_attempts_total",
                            "Notification delivery attempts by sink and result.",
                            sink_label + ",result=\"" + result + "\"");
    };
    lane.delivered = attempts("delivered");
    lane.failed = attempts("failed");
    lane.retries = &m.get_counter("buildtrack_notification_retries_total",
                                  "Notification attempts scheduled again after a failure.",
                                  sink_label);
    lane.dead = &m.get_counter("buildtrack_notification_dead_letters_total",
                               "Notifications given up on and kept in the dead-letter list.",
                               sink_label);
    lane.sink = notify::make_sink(cfg, people);
    st.lanes.push_back(std::move(lane));
  }
  if (!load(self))
    arm_tick(self, true);
  return {
    [=](model::notice& n) {
      self->state.unrecorded.push_back(std::move(n));
      arm_tick(self);
    },
    [=](const delivery_report& r) { report_arrived(self, r); },
    [=](caf::get_atom, const model::build_key& key) -> std::string {
      return model::to_text(self->state.deliveries.of(key));
    },
    [=](retry_atom, const std::string& id, std::uint64_t wait) {
      auto& st = self->state;
      auto it = st.outbox.find(id);
      if (it == st.outbox.end() || it->second.wait != wait)
        return;
      it->second.wait = 0;
      auto* lane = lane_of(self, it->second.entry.sink);
      make_ready(self, *lane, id, it->second);
      pump(self, *lane);
    },
    [=](tick_atom) {
      self->state.tick_armed = false;
      if (!flush(self))
        arm_tick(self, true);
    },
  };
}

} // namespace bt::actors
