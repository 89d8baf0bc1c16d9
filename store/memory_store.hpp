#pragma once

#include <mutex>
#include <string>
#include <unordered_map>

#include "store/store.hpp"

namespace bt::store {

/// A store that lives and dies with the process: for tests and throwaway runs.
/// Its journal keeps nothing; appends are "durable" at once.
class memory_store final : public store {
public:
  std::string_view kind() const override { return "memory"; }
  void append(const std::vector<model::envelope>& events,
              std::function<void(bool)> done) override;
  void save(const model::build& b) override;
  std::optional<model::build> load(const model::build_key& key) override;
  void for_each(const std::function<void(const model::build&)>& visit) override;
  bool ready() const override { return true; }

private:
  mutable std::mutex mutex_;
  std::unordered_map<std::string, model::build> builds_;
};

} // namespace bt::store
