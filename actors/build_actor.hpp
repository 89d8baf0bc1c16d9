#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "actors/actors.hpp"
#include "model/build.hpp"
#include "model/index.hpp"

namespace bt::actors {

/// What every build actor is started with.
struct build_settings {
  /// A build's actor stops after this long without events.
  std::chrono::milliseconds idle_timeout{30'000};
  /// Branch globs the streak tracker judges: a notice for a build on one of them
  /// waits for its verdict.
  std::shared_ptr<const std::vector<std::string>> tracked_branches
    = std::make_shared<const std::vector<std::string>>();
  /// Bounds on one build's memory (`tracking.max_*`).
  model::build_limits limits;
  /// The sinks that wait for statistics (`wait_for`), by name.
  /// Waits for statistics, and whether a sink asks for `job_finished` notices.
  std::shared_ptr<const model::announce_rules> announce
    = std::make_shared<const model::announce_rules>();
  /// How long the registry keeps an event that names its build by source and id
  /// alone (a CDEvents taskRun) waiting for that build to show up
  /// (`store.abandoned_after`); its journal entry stays as long.
  std::chrono::milliseconds link_wait{std::chrono::hours{48}};
};

/// The actors a build actor hands its effects to.
struct build_peers {
  streak_tracker_actor tracker;       ///< judges finished outcomes
  catalog_actor catalog;              ///< keeps summaries for listings
  notify_dispatcher_actor dispatcher; ///< may be invalid: no sink listens, no notices
  timeout_supervisor_actor timeouts;  ///< holds the build's deadlines; may be invalid in tests
};

struct build_actor_state {
  static inline const char* name = "build";
  model::build build;
  registry_actor registry;
  build_peers peers;
  build_settings settings;
  std::uint64_t events = 0;  ///< events received, compared with what the registry routed
  bool idle_armed = false;   ///< an idle check is on its way
  std::uint64_t awaiting_verdicts = 0; ///< verdict requests not answered yet
  std::uint64_t noticed = 0; ///< the last revision a notice went out for (or needs none)
  /// By sink: the last revision a release notice went out for.
  std::map<std::string, std::uint64_t> released;
  model::build_summary summary; ///< last summary sent to the catalog
};

/// Shell around one build's pure model: applies events, carries out their effects
/// (verdict requests, roll-ups, notices, summaries), and asks the registry to stop
/// once idle for `idle_timeout`, finished or not (the registry keeps its state until
/// a snapshot has written it).
build_actor::behavior_type build_actor_impl(build_actor::stateful_pointer<build_actor_state> self,
                                            model::build initial, registry_actor registry,
                                            build_peers peers, build_settings settings);

} // namespace bt::actors
