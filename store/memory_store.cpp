#include "store/memory_store.hpp"

namespace bt::store {

void memory_store::append(const std::vector<model::envelope>&, std::function<void(bool)> done) {
  done(true);
}

bool memory_store::write(const snapshot& s) {
  std::lock_guard guard{mutex_};
  for (auto& b : s.builds)
    builds_[b.key.str()] = b;
  if (s.streaks)
    streaks_ = s.streaks;
  return true;
}

bool memory_store::erase(const std::vector<model::build_key>& keys) {
  std::lock_guard guard{mutex_};
  for (auto& k : keys) {
    auto name = k.str();
    builds_.erase(name);
    notified_.erase(name);
    messages_.erase(name);
  }
  return true;
}

bool memory_store::outbox_add(const model::build_key& build, std::uint64_t revision,
                              const std::vector<std::pair<std::string, std::string>>& entries,
                              bool& fresh) {
  std::lock_guard guard{mutex_};
  auto [it, first] = notified_.try_emplace(build.str(), revision);
  fresh = first || it->second < revision;
  if (!fresh)
    return true;
  it->second = revision;
  for (auto& [id, doc] : entries)
    outbox_[id] = doc;
  return true;
}

bool memory_store::outbox_apply(const outbox_change& c) {
  std::lock_guard guard{mutex_};
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
  return true;
}

bool memory_store::outbox_load(std::vector<std::pair<std::string, std::string>>& out) {
  std::lock_guard guard{mutex_};
  out.assign(outbox_.begin(), outbox_.end());
  return true;
}

bool memory_store::notified(std::unordered_map<std::string, std::uint64_t>& out) {
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

} // namespace bt::store
