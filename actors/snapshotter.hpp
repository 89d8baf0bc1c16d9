#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>

#include "actors/actors.hpp"
#include "store/store.hpp"

namespace bt::actors {

/// When the snapshot supervisor writes and what it expires.
struct snapshot_policy {
  std::chrono::milliseconds interval{200};      ///< between snapshots
  std::chrono::milliseconds retention{std::chrono::hours{24}};       ///< finished builds
  std::chrono::milliseconds abandoned_after{std::chrono::hours{48}}; ///< unfinished builds
  /// Builds written per snapshot at most, longest waiting first. Under a storm every
  /// build changes between snapshots; the journal holds the rest meanwhile, so the
  /// cost of snapshots stays bounded whatever the load.
  std::size_t max_builds = 1000;
  /// How long a changed build waits before it is written: the changes that come
  /// meanwhile are written with it, once. Under a storm each build changes every
  /// second or so, and a write per change cost more than the rest of ingest.
  std::chrono::milliseconds delay{5000};
  /// `delay` in snapshots (rounded up): a build is written no sooner than this many
  /// snapshots after the first one it missed.
  std::uint64_t delay_in_snapshots() const;
  /// Between expiry sweeps: a quarter of the shorter age limit, within [interval, 1 min].
  std::chrono::milliseconds sweep_interval() const;
};

struct snapshotter_state {
  snapshotter_state() = default; // not an aggregate (see gateway_state)
  static inline const char* name = "snapshotter";
  std::shared_ptr<store::store> store;
  registry_actor registry;
  streak_tracker_actor tracker;
  catalog_actor catalog;
  treeherder_publisher_actor relay; ///< invalid when there is none
  snapshot_policy policy;
  std::map<std::uint64_t, std::string> marks; ///< journal mark read for each snapshot
  std::string last_trim;                      ///< how far the journal has been trimmed
  std::chrono::steady_clock::time_point next_sweep;
  std::uint64_t data_epoch = 0; ///< the store's data_epoch() as last seen
};

/// The snapshot supervisor: every `policy.interval` it collects changed builds (at
/// most `policy.max_builds`) from the registry and the streaks from the streak
/// tracker, and the inputs the Treeherder publisher has not published, writes them in
/// pipelined batches and trims the journal behind what every stored build holds; now and then it has the catalog pick expired builds, the
/// registry forget them and the store delete them. When the store lost its data, it
/// has everything in memory written again. Its store calls block, so it runs on a
/// thread of its own (spawn it detached).
snapshotter_actor::behavior_type
snapshotter(snapshotter_actor::stateful_pointer<snapshotter_state> self,
            std::shared_ptr<store::store> store, registry_actor registry,
            streak_tracker_actor tracker, catalog_actor catalog, treeherder_publisher_actor relay,
            snapshot_policy policy);

} // namespace bt::actors
