#pragma once

#include <memory>
#include <string>
#include <vector>

#include "actors/registry.hpp"
#include "actors/streak_tracker.hpp"
#include "store/memory_store.hpp"
#include "tests/actor_fixture.hpp"

namespace bt::test {

/// A registry with its streak tracker (branch `main`) and a memory store, on the
/// deterministic test scheduler.
struct registry_fixture : actor_fixture {
  std::shared_ptr<store::memory_store> store = std::make_shared<store::memory_store>();
  std::shared_ptr<actors::registry_stats> stats = std::make_shared<actors::registry_stats>();
  actors::streak_tracker_actor tracker = sys->spawn(actors::streak_tracker,
                                                    std::vector<std::string>{"main"});
  actors::registry_actor registry = sys->spawn(
    actors::registry, store, tracker, actors::notify_dispatcher_actor{},
    actors::build_settings{std::chrono::milliseconds{30'000},
                           std::make_shared<const std::vector<std::string>>(
                             std::vector<std::string>{"main"})},
    stats);

  ~registry_fixture() {
    // Registry and build actors hold each other's handles: shut down explicitly.
    caf::anon_send_exit(registry, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(tracker, caf::exit_reason::user_shutdown);
    run();
  }
};

} // namespace bt::test
