#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "actors/actors.hpp"
#include "actors/build_actor.hpp"
#include "model/index.hpp"
#include "store/store.hpp"

namespace bt::actors {

/// Counts the registry publishes for metrics, readable from any thread.
struct registry_stats {
  std::atomic<std::uint64_t> live{0};    ///< running build actors
  std::atomic<std::uint64_t> tracked{0}; ///< builds in the index
  std::atomic<std::uint64_t> dirty{0};   ///< builds changed since the last snapshot
};

struct registry_state {
  static inline const char* name = "registry";
  /// A running build actor and how many events the registry sent it.
  struct live_build {
    build_actor handle;
    std::uint64_t routed = 0;
  };
  /// The last state of a stopped build actor, kept until a snapshot has written it.
  struct parked_build {
    model::build build;
    std::uint64_t generation = 0;
  };
  std::shared_ptr<store::store> store;
  streak_tracker_actor tracker;
  notify_dispatcher_actor dispatcher; ///< may be invalid: no notifications then
  build_settings settings;
  std::unordered_map<std::string, live_build> live;     ///< by build key
  std::unordered_map<std::string, parked_build> parked; ///< by build key
  std::uint64_t generation = 0;                         ///< of the newest parked state
  /// Events for builds whose stored state could not be read yet, in arrival order.
  std::unordered_map<std::string, std::vector<model::envelope>> awaiting_load;
  std::uint64_t cycle = 1; ///< number of the next snapshot
  /// Builds changed since they were last written, with the cycle of their first change.
  std::unordered_map<std::string, std::uint64_t> dirty;
  bool streaks_dirty = false; ///< a verdict was asked for since the streaks were taken
  /// A build in the snapshot being written: its first-change cycle, and its parked
  /// generation (0 when its actor is live).
  struct in_flight_build {
    std::uint64_t cycle = 0;
    std::uint64_t generation = 0;
  };
  std::unordered_map<std::string, in_flight_build> in_flight;
  bool streaks_in_flight = false;
  model::build_index index;
  std::shared_ptr<registry_stats> stats;

  /// Publishes the sizes after a change.
  void publish() {
    stats->live.store(live.size(), std::memory_order_relaxed);
    stats->tracked.store(index.size(), std::memory_order_relaxed);
    stats->dirty.store(dirty.size(), std::memory_order_relaxed);
  }
};

/// Owns the build actors: one per build key, spawned on its first event (from its
/// parked or stored state when it had stopped), stopped when finished and idle.
/// Every event passes through it, so it knows which builds a snapshot must write.
registry_actor::behavior_type registry(registry_actor::stateful_pointer<registry_state> self,
                                       std::shared_ptr<store::store> store,
                                       streak_tracker_actor tracker,
                                       notify_dispatcher_actor dispatcher,
                                       build_settings settings,
                                       std::shared_ptr<registry_stats> stats);

} // namespace bt::actors
