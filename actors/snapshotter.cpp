#include "actors/snapshotter.hpp"

#include <algorithm>
#include <map>

#include <caf/all.hpp>
#include <nlohmann/json.hpp>

#include "support/clock.hpp"
#include "support/log.hpp"
#include "support/metrics.hpp"

namespace bt::actors {
namespace {

using self_ptr = snapshotter_actor::stateful_pointer<snapshotter_state>;
using steady = std::chrono::steady_clock;

struct snapshot_metrics {
  support::counter& written;
  support::counter& failed;
  support::counter& builds;
  support::histogram& seconds;
  support::counter& expired_finished;
  support::counter& expired_abandoned;
};

snapshot_metrics& metrics() {
  auto& m = support::metrics();
  static snapshot_metrics instance{
    m.get_counter("buildtrack_snapshots_total", "Snapshots by result.", R"(result="written")"),
    m.get_counter("buildtrack_snapshots_total", "Snapshots by result.", R"(result="failed")"),
    m.get_counter("buildtrack_snapshot_builds_total", "Build states written by snapshots."),
    m.get_histogram("buildtrack_snapshot_seconds", "Time to write one snapshot."),
    m.get_counter("buildtrack_builds_expired_total", "Builds removed by expiry.",
                  R"(reason="retention")"),
    m.get_counter("buildtrack_builds_expired_total", "Builds removed by expiry.",
                  R"(reason="abandoned")"),
  };
  return instance;
}

void schedule_next(self_ptr self) {
  self->delayed_send(self, self->state.policy.interval, tick_atom::value);
}

/// Removes expired builds: the catalog picks them, the registry forgets those that
/// stayed idle (a build with an event since the pick is kept), then the catalog and
/// the store forget what the registry did.
void sweep(self_ptr self) {
  auto& st = self->state;
  st.next_sweep = self->home_system().clock().now() + st.policy.sweep_interval();
  expiry_rule rule{support::wall_clock(), st.policy.retention, st.policy.abandoned_after};
  auto failed = [=](caf::error& err) {
    support::log(support::log_level::error, "expiry sweep failed",
                 {{"reason", caf::to_string(err)}});
    schedule_next(self);
  };
  self->request(st.catalog, caf::infinite, expire_atom::value, rule)
    .then(
      [=](expired_builds& picked) {
        if (picked.finished.empty() && picked.abandoned.empty())
          return schedule_next(self);
        self->request(self->state.registry, caf::infinite, forget_atom::value, picked)
          .then(
            [=](expired_builds& gone) {
              auto& m = metrics();
              m.expired_finished.inc(gone.finished.size());
              m.expired_abandoned.inc(gone.abandoned.size());
              self->send(self->state.catalog, forget_atom::value, gone);
              auto keys = std::move(gone.finished);
              keys.insert(keys.end(), gone.abandoned.begin(), gone.abandoned.end());
              if (!keys.empty() && !self->state.store->erase(keys))
                support::log(support::log_level::error,
                             "expired builds stay stored; they expire again after a restart",
                             {{"count", keys.size()}});
              schedule_next(self);
            },
            failed);
      },
      failed);
}

/// How far the journal may be trimmed once `batch` is written: up to this
/// snapshot's mark when no changed build waits, else up to the mark of the snapshot
/// taken before the longest-waiting build first changed (its events all follow it).
std::string trim_point(snapshotter_state& st, const snapshot_batch& batch) {
  if (!batch.oldest_waiting) {
    auto mark = st.marks[batch.cycle];
    st.marks.clear();
    st.marks[batch.cycle] = mark; // the next batch may need it
    return mark;
  }
  auto before = *batch.oldest_waiting - 1;
  st.marks.erase(st.marks.begin(), st.marks.lower_bound(before));
  auto it = st.marks.find(before);
  // Not known (a failed write came between): trim no further than before.
  return it == st.marks.end() ? st.last_trim : it->second;
}

/// After a snapshot: sweep when one is due, else wait for the next tick.
void after_snapshot(self_ptr self) {
  // The actor clock, not steady_clock, so that tests can move time.
  if (self->home_system().clock().now() >= self->state.next_sweep)
    sweep(self);
  else
    schedule_next(self);
}

/// Tells the registry, the streak tracker and the relay how the snapshot went.
void report(self_ptr self, bool written) {
  self->send(self->state.registry, snapshot_atom::value, written);
  self->send(self->state.tracker, snapshot_atom::value, written);
  if (self->state.relay)
    self->send(self->state.relay, snapshot_atom::value, written);
}

/// Writes a snapshot: the builds collected from the registry, the streaks if they
/// changed, and the journal trimmed behind both.
void write(self_ptr self, snapshot_batch& batch, const std::string& mark) {
  auto& st = self->state;
  st.marks[batch.cycle] = mark;
  auto& snap = batch.state;
  snap.journal_mark = trim_point(st, batch);
  if (snap.builds.empty() && !snap.streaks && snap.relays.empty() && snap.journal_mark == st.last_trim)
    return after_snapshot(self);
  auto started = steady::now();
  // While the store is down, do not even try: the registry keeps it all dirty.
  bool written = st.store->ready() && st.store->write(snap);
  auto& m = metrics();
  if (written) {
    st.last_trim = snap.journal_mark;
    m.written.inc();
    m.builds.inc(snap.builds.size());
    m.seconds.observe(std::chrono::duration<double>(steady::now() - started).count());
  } else {
    m.failed.inc();
  }
  report(self, written);
  after_snapshot(self);
}

/// The store lost its data since the last tick: the registry and the tracker mark
/// everything they hold to be written again, and the catalog forgets builds that
/// only the store held. Sent before this tick's requests, so they see it first.
void write_back(self_ptr self) {
  auto& st = self->state;
  self->send(st.tracker, rewrite_atom::value);
  if (st.relay)
    self->send(st.relay, rewrite_atom::value);
  self->request(st.registry, caf::infinite, rewrite_atom::value)
    .then([=](lost_builds& lost) {
      self->send(self->state.catalog, forget_atom::value, std::move(lost));
    });
}

} // namespace

std::uint64_t snapshot_policy::delay_in_snapshots() const {
  if (delay <= std::chrono::milliseconds::zero())
    return 0;
  auto tick = std::max(interval, std::chrono::milliseconds{1});
  return static_cast<std::uint64_t>((delay + tick - std::chrono::milliseconds{1}) / tick);
}

std::chrono::milliseconds snapshot_policy::sweep_interval() const {
  auto quarter = std::min(retention, abandoned_after) / 4;
  return std::clamp<std::chrono::milliseconds>(quarter, interval, std::chrono::minutes{1});
}

snapshotter_actor::behavior_type
snapshotter(snapshotter_actor::stateful_pointer<snapshotter_state> self,
            std::shared_ptr<store::store> store, registry_actor registry,
            streak_tracker_actor tracker, catalog_actor catalog, treeherder_publisher_actor relay,
            snapshot_policy policy) {
  auto& st = self->state;
  st.store = std::move(store);
  st.registry = std::move(registry);
  st.tracker = std::move(tracker);
  st.catalog = std::move(catalog);
  st.relay = std::move(relay);
  st.policy = policy;
  st.data_epoch = st.store->data_epoch();
  st.next_sweep = self->home_system().clock().now() + policy.sweep_interval();
  schedule_next(self);
  return {
    [=](tick_atom) {
      if (auto epoch = self->state.store->data_epoch(); epoch != self->state.data_epoch) {
        self->state.data_epoch = epoch;
        write_back(self);
      }
      // Read the mark first: every entry up to it has been routed to the registry,
      // so the registry (and the relay) see those events before this request. The
      // streaks are asked for after the builds: verdicts asked for by the events in
      // the builds reached the tracker before the builds' states were answered.
      auto mark = self->state.store->journal_mark();
      auto failed = [=](caf::error& err) {
        support::log(support::log_level::error, "snapshot could not be collected",
                     {{"reason", caf::to_string(err)}});
        report(self, false);
        schedule_next(self);
      };
      self->request(self->state.registry, caf::infinite, snapshot_atom::value,
                    self->state.policy.max_builds, self->state.policy.delay_in_snapshots())
        .then(
          [=](snapshot_batch& taken) {
            auto batch = std::make_shared<snapshot_batch>(std::move(taken));
            self->request(self->state.tracker, caf::infinite, snapshot_atom::value)
              .then(
                [=](std::optional<model::streak_book>& streaks) {
                  batch->state.streaks = std::move(streaks);
                  if (!self->state.relay)
                    return write(self, *batch, mark);
                  self->request(self->state.relay, caf::infinite, snapshot_atom::value)
                    .then(
                      [=](std::vector<store::relay_change>& relays) {
                        batch->state.relays = std::move(relays);
                        write(self, *batch, mark);
                      },
                      failed);
                },
                failed);
          },
          failed);
    },
  };
}

} // namespace bt::actors
