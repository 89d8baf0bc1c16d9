#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "actors/build_loader.hpp"
#include "actors/catalog.hpp"
#include "actors/registry.hpp"
#include "actors/streak_tracker.hpp"
#include "store/memory_store.hpp"
#include "tests/actor_fixture.hpp"

namespace bt::test {

/// A registry with its streak tracker (branch `main`), catalog, and a loader over a
/// memory store, on the deterministic test scheduler. The loader is not detached
/// here: the memory store never blocks, and the scheduler stays deterministic.
struct registry_fixture : actor_fixture {
  std::shared_ptr<store::memory_store> store = std::make_shared<store::memory_store>();
  std::shared_ptr<actors::registry_stats> stats = std::make_shared<actors::registry_stats>();
  actors::streak_tracker_actor tracker = sys->spawn(actors::streak_tracker,
                                                    std::vector<std::string>{"main"});
  std::shared_ptr<std::atomic<std::uint64_t>> listed
    = std::make_shared<std::atomic<std::uint64_t>>(0);
  actors::catalog_actor catalog = sys->spawn(actors::catalog, listed, actors::exchange_actor{});
  actors::build_loader_actor loader = sys->spawn(actors::build_loader, store);
  actors::registry_actor registry = spawn_registry(loader);

  /// A registry over `with` as its loader.
  actors::registry_actor spawn_registry(actors::build_loader_actor with) {
    return sys->spawn(actors::registry, std::move(with),
                      actors::build_peers{tracker, catalog, {}},
                      actors::build_settings{std::chrono::milliseconds{30'000},
                                             std::make_shared<const std::vector<std::string>>(
                                               std::vector<std::string>{"main"})},
                      stats);
  }

  /// Takes a snapshot and writes it to the store, as the snapshot supervisor does:
  /// the changed builds from the registry, then the streaks if they changed; then
  /// tells both whether it was written.
  store::snapshot snapshot(bool written = true, std::size_t limit = 1000) {
    auto batch = ask<actors::snapshot_batch>(registry, actors::snapshot_atom::value, limit, std::uint64_t{0});
    batch.state.streaks
      = ask<std::optional<model::streak_book>>(tracker, actors::snapshot_atom::value);
    if (written)
      store->write(batch.state);
    caf::anon_send(registry, actors::snapshot_atom::value, written);
    caf::anon_send(tracker, actors::snapshot_atom::value, written);
    run();
    return batch.state;
  }

  /// Expires builds as the snapshot supervisor does: the catalog picks them, the
  /// registry forgets those still idle, the catalog forgets what the registry did.
  /// `between` runs after the pick, before the registry is told.
  actors::expired_builds expire(const actors::expiry_rule& rule,
                                const std::function<void()>& between = [] {}) {
    auto picked = ask<actors::expired_builds>(catalog, actors::expire_atom::value, rule);
    between();
    auto gone = ask<actors::expired_builds>(registry, actors::forget_atom::value, picked);
    caf::anon_send(catalog, actors::forget_atom::value, gone);
    run();
    return gone;
  }

  ~registry_fixture() {
    // Registry and build actors hold each other's handles: shut down explicitly.
    caf::anon_send_exit(registry, caf::exit_reason::user_shutdown);
    for (auto h : {caf::actor_cast<caf::actor>(tracker), caf::actor_cast<caf::actor>(catalog),
                   caf::actor_cast<caf::actor>(loader)})
      caf::anon_send_exit(h, caf::exit_reason::user_shutdown);
    run();
  }
};

} // namespace bt::test
