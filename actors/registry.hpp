#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "actors/actors.hpp"
#include "actors/build_actor.hpp"
#include "support/marks.hpp"

namespace bt::actors {

/// Counts the registry publishes for metrics, readable from any thread.
struct registry_stats {
  std::atomic<std::uint64_t> live{0};    ///< running build actors
  std::atomic<std::uint64_t> tracked{0}; ///< builds in memory or in the store
  std::atomic<std::uint64_t> dirty{0};   ///< builds changed since the last snapshot
  std::atomic<std::uint64_t> loading{0}; ///< builds whose stored state is being read
  std::atomic<std::uint64_t> unlinked{0}; ///< events waiting for the build their id names
};

struct registry_state {
  registry_state() = default; // not an aggregate (see gateway_state)
  static inline const char* name = "registry";
  /// A running build actor and how many events the registry sent it.
  struct live_build {
    build_actor handle;
    std::uint64_t routed = 0;
    /// Not 0: `dirty` holds this build with this cycle or an older one, so that an
    /// event for it need not look there (one hash lookup less per event). 0: not
    /// known, look.
    std::uint64_t dirty_since = 0;
  };
  /// The last state of a stopped build actor, kept until a snapshot has written it.
  struct parked_build {
    model::build build;
    std::uint64_t generation = 0;
  };
  /// An event waiting for its build's stored state, with its request's tally.
  struct waiting_event {
    model::envelope event;
    tally_ptr tally;
    caf::typed_response_promise<bool> replay; ///< answered once applied (replayed events)
    /// The snapshot cycle in which it began to wait (behind a read, or for its
    /// build), 0 when it never did: its build is dirty since then, so the journal
    /// behind it stays until the build is written.
    std::uint64_t since = 0;
  };
  build_loader_actor loader;
  build_peers peers;
  build_settings settings;
  std::unordered_map<std::string, live_build> live;     ///< by build key
  std::unordered_map<std::string, parked_build> parked; ///< by build key
  /// Builds with nothing in memory but a stored state: their next event loads it.
  /// A build in none of live, parked and stored is new and starts empty.
  std::unordered_set<std::string> stored;
  std::uint64_t generation = 0; ///< of the newest parked state
  /// Builds whose stored state is being read, by key, with their pipeline's key.
  std::unordered_map<std::string, std::string> loading;
  /// Events of pipelines (`source/pipeline`) in which a build's stored state is being
  /// read, in arrival order. A pipeline's events wait behind such a read, all of
  /// them: streak verdicts depend on the order in which a pipeline's builds finish,
  /// and that order must stay the journal's. Other pipelines go on.
  /// The journal behind a held event must stay until the event is applied and
  /// written: `since` is the snapshot cycle in which the first of them arrived.
  struct held_events {
    std::deque<waiting_event> events;
    std::uint64_t since = 0;
  };
  std::unordered_map<std::string, held_events> held;
  /// An event may name its build by source and id alone (a key with no pipeline: a
  /// CDEvents taskRun knows only its pipelineRun's id). Each build the registry
  /// knows, as `source/id` → pipeline (the newest, should two pipelines share one).
  std::unordered_map<std::string, std::string> pipeline_by_id;
  /// Such events whose build is not known yet, by `source/id`, in arrival order: they
  /// follow the build's first event. Kept (and the journal behind them) for at most
  /// `settings.link_wait`.
  std::unordered_map<std::string, held_events> unlinked;
  std::uint64_t unlinked_events = 0;
  std::uint64_t cycle = 1; ///< number of the next snapshot
  /// Builds changed since they were last written, with the cycle of their first change.
  support::marks dirty;
  /// A build in the snapshot being written: its first-change cycle, and its parked
  /// generation (0 when its actor is live).
  struct in_flight_build {
    std::uint64_t cycle = 0;
    std::uint64_t generation = 0;
  };
  std::unordered_map<std::string, in_flight_build> in_flight;
  std::shared_ptr<registry_stats> stats;
  std::string scratch; ///< the key of the event being routed, reused to spare allocations

  /// Publishes the sizes after a change.
  void publish() {
    stats->live.store(live.size(), std::memory_order_relaxed);
    stats->tracked.store(live.size() + parked.size() + stored.size() + loading.size(),
                         std::memory_order_relaxed);
    stats->dirty.store(dirty.size(), std::memory_order_relaxed);
    stats->loading.store(loading.size(), std::memory_order_relaxed);
    stats->unlinked.store(unlinked_events, std::memory_order_relaxed);
  }
};

/// Routes every event to its build's actor: one per build key, spawned on its first
/// event (from its parked state, or from its stored state read by the loader while
/// other pipelines' events go on), stopped when idle. Every event passes through it,
/// so it knows which builds a snapshot must write. It never touches the store itself.
registry_actor::behavior_type registry(registry_actor::stateful_pointer<registry_state> self,
                                       build_loader_actor loader, build_peers peers,
                                       build_settings settings,
                                       std::shared_ptr<registry_stats> stats);

} // namespace bt::actors
