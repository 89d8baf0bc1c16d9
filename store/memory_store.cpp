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
  for (auto& k : keys)
    builds_.erase(k.str());
  return true;
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
