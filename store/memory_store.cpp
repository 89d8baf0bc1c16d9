#include "store/memory_store.hpp"

namespace bt::store {

void memory_store::append(const std::vector<model::envelope>&, std::function<void(bool)> done) {
  done(true);
}

void memory_store::save(const model::build& b) {
  std::lock_guard guard{mutex_};
  builds_[b.key.str()] = b;
}

std::optional<model::build> memory_store::load(const model::build_key& key) {
  std::lock_guard guard{mutex_};
  auto it = builds_.find(key.str());
  if (it == builds_.end())
    return std::nullopt;
  return it->second;
}

void memory_store::for_each(const std::function<void(const model::build&)>& visit) {
  std::lock_guard guard{mutex_};
  for (auto& [_, b] : builds_)
    visit(b);
}

} // namespace bt::store
