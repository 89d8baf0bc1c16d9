#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

#include "actors/actors.hpp"
#include "model/index.hpp"
#include "store/store.hpp"

namespace bt::actors {

/// Counts the registry publishes for metrics, readable from any thread.
struct registry_stats {
  std::atomic<std::uint64_t> live{0};    ///< running build actors
  std::atomic<std::uint64_t> tracked{0}; ///< builds in the index
};

struct registry_state {
  static inline const char* name = "registry";
  /// A running build actor and how many events the registry sent it.
  struct live_build {
    build_actor handle;
    std::uint64_t routed = 0;
  };
  std::shared_ptr<store::store> store;
  streak_tracker_actor tracker;
  std::chrono::milliseconds idle_timeout{};
  std::unordered_map<std::string, live_build> live; ///< by build key
  model::build_index index;
  std::shared_ptr<registry_stats> stats;

  /// Publishes the sizes after a change.
  void publish() {
    stats->live.store(live.size(), std::memory_order_relaxed);
    stats->tracked.store(index.size(), std::memory_order_relaxed);
  }
};

/// Owns the build actors: one per build key, spawned on its first event (from its
/// saved state when it had stopped), stopped when finished and idle.
registry_actor::behavior_type registry(registry_actor::stateful_pointer<registry_state> self,
                                       std::shared_ptr<store::store> store,
                                       streak_tracker_actor tracker,
                                       std::chrono::milliseconds idle_timeout,
                                       std::shared_ptr<registry_stats> stats);

} // namespace bt::actors
