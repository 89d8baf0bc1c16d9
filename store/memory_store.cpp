#include "store/memory_store.hpp"

#include <cstdlib>

namespace bt::store {

void memory_store::append(const std::vector<model::envelope>&, append_done done) {
  commit c; // each append commits alone
  done(true, c);
}

bool memory_store::write(const snapshot& s) {
  std::lock_guard guard{mutex_};
  for (auto& b : s.builds)
    builds_[b.key.str()] = b;
  if (s.streaks)
    streaks_ = s.streaks;
  for (auto& r : s.relays)
    if (r.input)
      relays_.insert_or_assign(r.id, *r.input);
    else
      relays_.erase(r.id);
  return true;
}

bool memory_store::load_relays(relay_inputs& out) {
  std::lock_guard guard{mutex_};
  out.assign(relays_.begin(), relays_.end());
  return true;
}

bool memory_store::erase(const std::vector<model::build_key>& keys) {
  std::lock_guard guard{mutex_};
  for (auto& k : keys) {
    auto name = k.str();
    builds_.erase(name);
    notified_.erase(name);
    parts_.erase(name);
    messages_.erase(name);
  }
  return true;
}

bool memory_store::outbox_add(std::span<const outbox_record> records,
                              std::vector<std::vector<std::string>>& admitted) {
  std::lock_guard guard{mutex_};
  admitted.assign(records.size(), {});
  for (size_t i = 0; i < records.size(); ++i) {
    auto& r = records[i];
    auto name = r.build.str();
    auto [seen, first] = parts_[name].try_emplace(r.part, r.revision);
    if (!first && seen->second > r.revision)
      continue;
    bool again = !first && seen->second == r.revision;
    seen->second = r.revision;
    auto& notices = notified_[name];
    if (r.part.empty())
      notices.revision = r.revision;
    else if (first && r.job_notice)
      ++notices.jobs;
    for (auto& [id, doc] : r.entries) {
      if (again && !outbox_.count(id))
        continue;
      if (!again)
        outbox_[id] = doc;
      admitted[i].push_back(id);
    }
  }
  return true;
}

bool memory_store::outbox_apply(std::span<const outbox_change> changes) {
  std::lock_guard guard{mutex_};
  for (auto& c : changes)
    apply(c);
  return true;
}

void memory_store::apply(const outbox_change& c) {
  if (c.entry)
    outbox_[c.id] = *c.entry;
  if (c.remove)
    outbox_.erase(c.id);
  if (c.dead_letter)
    dead_letters_.push_back(*c.dead_letter);
  if (c.message_ref)
    messages_[c.build.str()][c.sink] = *c.message_ref;
  else if (c.forget_message)
    messages_[c.build.str()].erase(c.sink);
}

bool memory_store::outbox_load(std::vector<std::pair<std::string, std::string>>& out) {
  std::lock_guard guard{mutex_};
  out.assign(outbox_.begin(), outbox_.end());
  return true;
}

bool memory_store::notified(std::unordered_map<std::string, build_notices>& out) {
  std::lock_guard guard{mutex_};
  out = notified_;
  return true;
}

std::optional<std::string> memory_store::message_ref(const model::build_key& build,
                                                     const std::string& sink, bool& failed) {
  failed = false;
  std::lock_guard guard{mutex_};
  auto it = messages_.find(build.str());
  if (it == messages_.end())
    return std::nullopt;
  auto ref = it->second.find(sink);
  if (ref == it->second.end())
    return std::nullopt;
  return ref->second;
}

std::optional<model::build> memory_store::load(const model::build_key& key, bool& failed) {
  failed = false;
  std::lock_guard guard{mutex_};
  auto it = builds_.find(key.str());
  if (it == builds_.end())
    return std::nullopt;
  return it->second;
}

bool memory_store::for_each(const std::function<void(const model::build&)>& visit) {
  std::lock_guard guard{mutex_};
  for (auto& [_, b] : builds_)
    visit(b);
  return true;
}

bool memory_store::load_streaks(std::optional<model::streak_book>& out) {
  std::lock_guard guard{mutex_};
  out = streaks_;
  return true;
}

std::optional<std::vector<published>>
memory_store::exchange_publish(const std::string& exchange,
                               std::span<const exchange_publication> messages, std::size_t backlog) {
  std::lock_guard guard{mutex_};
  auto& b = exchanges_[exchange];
  std::vector<published> out;
  for (auto& m : messages) {
    bool deduplicated = !m.dedup_id.empty();
    if (auto it = b.positions.find(m.dedup_id); deduplicated && it != b.positions.end()) {
      out.push_back({it->second, false});
      continue;
    }
    auto id = std::to_string(++b.last) + "-0";
    b.messages.push_back({id, m.routing_key, m.payload});
    b.dedup_order.push_back(m.dedup_id);
    if (deduplicated)
      b.positions.emplace(m.dedup_id, id);
    while (b.messages.size() > backlog) {
      b.trimmed = true;
      b.messages.pop_front();
      b.positions.erase(b.dedup_order.front());
      b.dedup_order.pop_front();
    }
    out.push_back({std::move(id), true});
  }
  return out;
}

std::optional<std::vector<exchange_message>>
memory_store::exchange_read(const std::string& exchange, const std::string& after, std::size_t count) {
  std::lock_guard guard{mutex_};
  std::vector<exchange_message> out;
  auto it = exchanges_.find(exchange);
  if (it == exchanges_.end())
    return out;
  // Positions count from 1 without gaps: the one after `after` is found, not searched.
  auto& kept = it->second.messages;
  std::uint64_t first = it->second.last + 1 - kept.size();
  std::uint64_t from = after.empty() ? 0 : std::strtoull(after.c_str(), nullptr, 10);
  for (auto i = from < first ? 0 : from + 1 - first; i < kept.size() && out.size() < count; ++i)
    out.push_back(kept[i]);
  return out;
}

std::optional<backlog_span> memory_store::exchange_span(const std::string& exchange) {
  std::lock_guard guard{mutex_};
  auto it = exchanges_.find(exchange);
  if (it == exchanges_.end())
    return backlog_span{};
  auto& b = it->second;
  return backlog_span{b.messages.empty() ? "" : b.messages.front().id, b.trimmed};
}

} // namespace bt::store
