#include "actors/build_actor.hpp"

#include <caf/all.hpp>
#include <nlohmann/json.hpp>

#include "model/json.hpp"
#include "model/notice.hpp"
#include "support/clock.hpp"
#include "support/log.hpp"
#include "support/metrics.hpp"

namespace bt::actors {
namespace {

using self_ptr = build_actor::stateful_pointer<build_actor_state>;

/// Every build's actor stops once idle, running or finished: a build that never
/// finishes must not hold an actor until it expires.
void arm_idle_check(self_ptr self) {
  auto& st = self->state;
  if (st.idle_armed)
    return;
  st.idle_armed = true;
  self->delayed_send(self, st.settings.idle_timeout, caf::idle_atom::value, st.events);
}

/// Asks the streak tracker for the verdict on a finished outcome; the verdict comes
/// back through the registry as an ordinary event, so that it is counted and written
/// like any other. The actor does not offer to stop while a verdict is on its way.
void ask_verdict(self_ptr self, model::finished_effect f) {
  auto& st = self->state;
  ++st.awaiting_verdicts;
  auto key = f.key;
  self->request(st.peers.tracker, caf::infinite, std::move(f))
    .then(
      [=](std::optional<model::streak_result> verdict) {
        --self->state.awaiting_verdicts;
        if (verdict)
          self->send(self->state.registry, model::envelope{key, "", support::wall_clock(),
                                                           std::nullopt, *verdict});
      },
      [=](caf::error& err) {
        --self->state.awaiting_verdicts;
        support::log(support::log_level::error, "streak tracker failed",
                     {{"build", key.str()}, {"reason", caf::to_string(err)}});
      });
}

/// Applies one event and carries out its effects. Returns whether it was a duplicate.
/// A command's outcome goes into its request's tally. The build takes what it keeps of
/// `e` (a job's report), so `e` is not read after it is applied.
bool apply_event(self_ptr self, model::envelope& e, ingest_tally* tally = nullptr) {
  auto& st = self->state;
  ++st.events;
  auto now = e.received;
  bool command = std::holds_alternative<model::build_command>(e.body);
  auto result = model::apply(st.build, std::move(e), now, st.settings.limits, *st.settings.announce);
  if (tally && command)
    tally->command = command_outcome{true, result.changed, result.ignored, st.build.state,
                                     st.build.generation};
  if (!result.ignored.empty())
    support::log(support::log_level::warn, "event ignored",
                 {{"build", st.build.key.str()}, {"reason", result.ignored}});
  if (!result.trimmed.empty()) {
    support::metrics()
      .get_counter("buildtrack_build_limit_trims_total",
                   "Jobs, attempts or statistics let go at a per-build limit (tracking.max_*).",
                   "limit=\"" + std::string{result.trimmed} + "\"")
      .inc();
    support::log(support::log_level::warn, "build limit reached; kept what decides the outcome",
                 {{"build", st.build.key.str()}, {"limit", result.trimmed}});
  }
  for (auto& effect : result.effects) {
    if (auto* f = std::get_if<model::finished_effect>(&effect)) {
      if (model::streak_judges(*f, *st.settings.tracked_branches))
        ask_verdict(self, std::move(*f));
      else if (model::streak_forgets(*f, *st.settings.tracked_branches))
        self->send(st.peers.tracker, forget_atom::value, std::move(*f));
    } else if (auto* r = std::get_if<model::rollup_effect>(&effect)) {
      self->send(st.registry, model::envelope{r->parent, "", now, std::nullopt,
                                              std::move(r->job)});
    } else if (auto* d = std::get_if<model::deadline_effect>(&effect)) {
      if (st.peers.timeouts)
        self->send(st.peers.timeouts, deadline_atom::value, d->key, d->name, d->due);
    } else if (auto* r = std::get_if<model::release_effect>(&effect)) {
      support::metrics()
        .get_counter("buildtrack_collation_releases_total",
                     "Waits for statistics that ended with a send, by sink and criterion.",
                     "sink=\"" + support::label_value(r->sink) + "\",released_by=\""
                       + std::string{model::to_string(r->reason)} + "\"")
        .inc();
    } else if (auto* j = std::get_if<model::job_finished_effect>(&effect)) {
      if (st.peers.dispatcher)
        self->send(st.peers.dispatcher, model::job_notice(st.build, std::move(j->attempt)));
    } else if (auto* w = std::get_if<model::wait_dropped_effect>(&effect)) {
      support::metrics()
        .get_counter("buildtrack_collation_dropped_total",
                     "Waits for statistics dropped without a send (interrupted, or past the "
                     "failure timeout unfinished), by sink.",
                     "sink=\"" + support::label_value(w->sink) + "\"")
        .inc();
      support::log(support::log_level::warn, "wait for statistics dropped",
                   {{"build", w->key.str()}, {"sink", w->sink}, {"reason", w->why}});
    }
  }
  if (result.changed) {
    // Without sinks there is no dispatcher and nobody to tell: no notice is made (each
    // carries a copy of the build).
    if (st.peers.dispatcher) {
      if (auto n = model::due_notice(st.build, st.noticed, *st.settings.tracked_branches)) {
        st.noticed = st.build.revision;
        self->send(st.peers.dispatcher, std::move(*n));
      }
      for (auto& n : model::due_releases(st.build, st.released, *st.settings.tracked_branches)) {
        st.released[*n.sink] = st.build.revision;
        self->send(st.peers.dispatcher, std::move(n));
      }
    }
    // Every change moves `updated`; tell the catalog about those at most once a
    // second, and about everything else at once.
    auto& b = st.build;
    bool recent = b.updated && st.summary.updated
                  && *b.updated - *st.summary.updated < std::chrono::seconds{1};
    auto summary = model::summarize(b, &st.settings.announce->waits);
    if (!recent || !model::same_listing(st.summary, summary)) {
      st.summary = std::move(summary);
      self->send(st.peers.catalog, caf::put_atom::value, st.summary);
    }
  }
  arm_idle_check(self);
  return result.duplicate;
}

} // namespace

build_actor::behavior_type build_actor_impl(self_ptr self, model::build initial,
                                            registry_actor registry, build_peers peers,
                                            build_settings settings) {
  auto& st = self->state;
  st.build = std::move(initial);
  st.registry = std::move(registry);
  st.peers = std::move(peers);
  st.settings = std::move(settings);
  st.summary = model::summarize(st.build, &st.settings.announce->waits);
  // A state that was settled when it was written had its notice then (recovery sends
  // what a crash may have lost); an unsettled one still owes it.
  auto revision = st.build.revision;
  bool settled = model::settled(st.build, *st.settings.tracked_branches);
  st.noticed = settled || revision == 0 ? revision : revision - 1;
  if (settled)
    for (auto& [sink, c] : st.build.collations)
      if (c.released && c.released_revision == revision)
        st.released[sink] = revision;
  return {
    [=](model::envelope& e) { apply_event(self, e); },
    [=](model::envelope& e, const tally_ptr& tally) {
      if (apply_event(self, e, tally.get()) && tally)
        tally->duplicates.fetch_add(1, std::memory_order_relaxed);
    },
    [=](replay_atom, model::envelope& e) {
      apply_event(self, e);
      return true;
    },
    [=](caf::get_atom) -> std::string { return model::build_text(self->state.build); },
    [=](snapshot_atom) -> model::build { return self->state.build; },
    [=](caf::idle_atom, std::uint64_t seen) {
      auto& st = self->state;
      st.idle_armed = false;
      if (seen != st.events || st.awaiting_verdicts != 0) {
        arm_idle_check(self);
        return;
      }
      // The registry keeps this state until a snapshot has written it: once it
      // agrees, a new actor for this build may start from it at any moment.
      self->send(st.registry, caf::idle_atom::value, st.build, st.events);
    },
    [=](stop_atom) { self->quit(); },
  };
}

} // namespace bt::actors
