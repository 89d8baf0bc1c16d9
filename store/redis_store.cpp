#include "store/redis_store.hpp"

#include <nlohmann/json.hpp>

#include "model/codec.hpp"
#include "model/json.hpp"
#include "support/log.hpp"

namespace bt::store {
namespace {

using steady = std::chrono::steady_clock;
using nlohmann::json;

/// True when a reply is what a successful XADD (or an EXEC of XADDs) returns.
bool journaled(const redis_reply& r, bool transaction) {
  if (!transaction)
    return r.kind == redis_reply::string;
  if (r.kind != redis_reply::array || r.elements.empty())
    return false;
  for (auto& e : r.elements)
    if (e.kind != redis_reply::string)
      return false;
  return true;
}

} // namespace

redis_store::redis_store(redis_store_config cfg)
  : cfg_{std::move(cfg)},
    writer_client_{cfg_.endpoint, cfg_.timeout},
    reader_client_{cfg_.endpoint, cfg_.timeout},
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

void redis_store::append(const std::vector<model::envelope>& events,
                         std::function<void(bool)> done) {
  pending p;
  p.encoded.reserve(events.size());
  for (auto& e : events)
    p.encoded.push_back(model::to_text(model::codec::encode(e)));
  p.done = std::move(done);
  {
    std::lock_guard guard{queue_mutex_};
    if (!stopping_) {
      queue_.push_back(std::move(p));
      p.done = nullptr;
    }
  }
  if (p.done)
    return p.done(false);
  wake_.notify_one();
}

void redis_store::write_loop() {
  std::chrono::milliseconds backoff{0};
  auto retry_at = steady::time_point{};
  auto probe = [&] {
    auto r = writer_client_.pipeline({{"PING"}});
    bool up = std::holds_alternative<std::vector<redis_reply>>(r);
    ready_.store(up, std::memory_order_relaxed);
    return up;
  };
  auto failed = [&] {
    backoff = std::min(std::max(backoff * 2, std::chrono::milliseconds{50}), cfg_.max_backoff);
    retry_at = steady::now() + backoff;
  };
  if (!probe())
    failed();
  while (true) {
    std::deque<pending> batch;
    {
      std::unique_lock lock{queue_mutex_};
      auto has_work = [&] { return stopping_ || !queue_.empty(); };
      if (ready_.load(std::memory_order_relaxed))
        wake_.wait(lock, has_work);
      else
        wake_.wait_until(lock, retry_at, has_work);
      if (stopping_) {
        batch.swap(queue_);
        lock.unlock();
        for (auto& p : batch)
          p.done(false);
        return;
      }
      while (!queue_.empty() && batch.size() < cfg_.max_batch) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    bool down = !ready_.load(std::memory_order_relaxed);
    if (down && steady::now() < retry_at) {
      // Between reconnect attempts: refuse at once rather than hold callers.
      for (auto& p : batch)
        p.done(false);
      continue;
    }
    if (batch.empty()) {
      if (probe()) {
        backoff = std::chrono::milliseconds{0};
        support::log(support::log_level::info, "redis reachable again");
      } else {
        failed();
      }
      continue;
    }
    commit(batch);
    if (ready_.load(std::memory_order_relaxed))
      backoff = std::chrono::milliseconds{0};
    else
      failed();
  }
}

void redis_store::commit(std::deque<pending>& batch) {
  std::vector<redis_command> cmds;
  std::vector<size_t> deciding; // index of the reply that decides each append
  auto stream = journal_key();
  for (auto& p : batch) {
    bool transaction = p.encoded.size() > 1;
    if (transaction)
      cmds.push_back({"MULTI"});
    for (auto& doc : p.encoded)
      cmds.push_back({"XADD", stream, "*", "e", doc});
    if (transaction)
      cmds.push_back({"EXEC"});
    deciding.push_back(cmds.size() - 1);
  }
  auto result = writer_client_.pipeline(cmds);
  if (auto* why = std::get_if<std::string>(&result)) {
    if (ready_.exchange(false))
      support::log(support::log_level::error, "redis journal unavailable", {{"reason", *why}});
    for (auto& p : batch)
      p.done(false);
    return;
  }
  ready_.store(true, std::memory_order_relaxed);
  auto& replies = std::get<0>(result);
  for (size_t i = 0; i < batch.size(); ++i) {
    auto& r = replies[deciding[i]];
    bool ok = journaled(r, batch[i].encoded.size() > 1);
    if (!ok)
      support::log(support::log_level::error, "redis refused a journal append",
                   {{"reason", r.text}});
    batch[i].done(ok);
  }
}

void redis_store::save(const model::build& b) {
  auto doc = model::to_text(model::codec::encode(b));
  std::lock_guard guard{reader_mutex_};
  auto result = reader_client_.pipeline({{"SET", build_key(b.key.str()), doc}});
  if (auto* why = std::get_if<std::string>(&result))
    support::log(support::log_level::error, "redis snapshot failed",
                 {{"build", b.key.str()}, {"reason", *why}});
}

std::optional<model::build> redis_store::load(const model::build_key& key) {
  std::variant<std::vector<redis_reply>, std::string> result;
  {
    std::lock_guard guard{reader_mutex_};
    result = reader_client_.pipeline({{"GET", build_key(key.str())}});
  }
  if (auto* why = std::get_if<std::string>(&result)) {
    support::log(support::log_level::error, "redis read failed",
                 {{"build", key.str()}, {"reason", *why}});
    return std::nullopt;
  }
  auto& reply = std::get<0>(result)[0];
  if (reply.kind != redis_reply::string)
    return std::nullopt;
  return model::codec::decode_build(json::parse(reply.text, nullptr, false));
}

void redis_store::for_each(const std::function<void(const model::build&)>& visit) {
  std::string cursor = "0";
  auto pattern = build_key("*");
  do {
    std::vector<model::build> page;
    {
      std::lock_guard guard{reader_mutex_};
      auto scan = reader_client_.pipeline({{"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"}});
      if (std::holds_alternative<std::string>(scan))
        return;
      auto& r = std::get<0>(scan)[0];
      if (r.kind != redis_reply::array || r.elements.size() != 2)
        return;
      cursor = r.elements[0].text;
      redis_command mget{"MGET"};
      for (auto& k : r.elements[1].elements)
        mget.push_back(k.text);
      if (mget.size() > 1) {
        auto values = reader_client_.pipeline({mget});
        if (std::holds_alternative<std::string>(values))
          return;
        for (auto& v : std::get<0>(values)[0].elements)
          if (v.kind == redis_reply::string)
            if (auto b = model::codec::decode_build(json::parse(v.text, nullptr, false)))
              page.push_back(std::move(*b));
      }
    }
    // Visit outside the lock: the visitor may use the store.
    for (auto& b : page)
      visit(b);
  } while (cursor != "0");
}

std::vector<journal_entry> redis_store::read_journal(const std::string& after, std::size_t count,
                                                     std::size_t* corrupt) {
  std::vector<journal_entry> out;
  std::variant<std::vector<redis_reply>, std::string> result;
  {
    std::lock_guard guard{reader_mutex_};
    result = reader_client_.pipeline({{"XRANGE", journal_key(), after == "0" ? "-" : "(" + after,
                                       "+", "COUNT", std::to_string(count)}});
  }
  if (std::holds_alternative<std::string>(result))
    return out;
  for (auto& entry : std::get<0>(result)[0].elements) {
    if (entry.elements.size() != 2 || entry.elements[1].elements.size() != 2) {
      if (corrupt)
        ++*corrupt;
      continue;
    }
    auto e = model::codec::decode_envelope(
      json::parse(entry.elements[1].elements[1].text, nullptr, false));
    if (!e) {
      if (corrupt)
        ++*corrupt;
      continue;
    }
    out.push_back({entry.elements[0].text, std::move(*e)});
  }
  return out;
}

} // namespace bt::store
