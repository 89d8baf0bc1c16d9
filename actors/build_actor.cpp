#include "actors/build_actor.hpp"

#include <caf/all.hpp>
#include <nlohmann/json.hpp>

#include "model/json.hpp"
#include "model/notice.hpp"
#include "support/log.hpp"
#include "support/metrics.hpp"

namespace bt::actors {
namespace {

/// Every build's actor stops once idle, running or finished: a build that never
/// finishes must not hold an actor until it expires.
void arm_idle_check(build_actor::stateful_pointer<build_actor_state> self) {
  auto& st = self->state;
  if (st.idle_armed)
    return;
  st.idle_armed = true;
  self->delayed_send(self, st.settings.idle_timeout, caf::idle_atom::value, st.events);
}

/// Applies one event and hands its effects to the registry.
void apply_event(build_actor::stateful_pointer<build_actor_state> self, const model::envelope& e) {
  auto& st = self->state;
  ++st.events;
  auto result = model::apply(st.build, e, e.received, st.settings.limits);
  if (!result.ignored.empty())
    support::log(support::log_level::warn, "event ignored",
                 {{"build", e.key.str()}, {"reason", result.ignored}});
  if (!result.trimmed.empty()) {
    support::metrics()
      .get_counter("buildtrack_build_limit_trims_total",
                   "Jobs, attempts or statistics let go at a per-build limit (tracking.max_*).",
                   "limit=\"" + std::string{result.trimmed} + "\"")
      .inc();
    support::log(support::log_level::warn, "build limit reached; kept what decides the outcome",
                 {{"build", e.key.str()}, {"limit", result.trimmed}});
  }
  // A notice goes out once the outcome is settled: at once when no streak judges
  // the build, else when the verdict for this revision comes back.
  bool settled = false;
  if (auto* verdict = std::get_if<model::streak_result>(&e.body))
    settled = result.changed && verdict->revision == st.build.revision;
  for (auto& effect : result.effects) {
    if (auto* f = std::get_if<model::finished_effect>(&effect)) {
      if (model::streak_judges(*f, *st.settings.tracked_branches))
        self->send(st.registry, std::move(*f));
      else
        settled = true;
    } else if (auto* r = std::get_if<model::rollup_effect>(&effect))
      self->send(st.registry, model::envelope{r->parent, "", e.received, std::nullopt,
                                              std::move(r->job)});
  }
  if (settled && st.settings.notices)
    if (auto kind = model::notice_kind_of(st.build))
      self->send(st.registry, model::notice{st.build, *kind});
  if (result.changed) {
    // Every change moves `updated`; tell the registry about those at most once
    // a second, and about everything else at once.
    auto summary = model::summarize(st.build);
    bool recent = summary.updated && st.summary.updated
                  && *summary.updated - *st.summary.updated < std::chrono::seconds{1};
    if (!recent || !model::same_but_time(summary, st.summary)) {
      st.summary = summary;
      self->send(st.registry, caf::put_atom::value, std::move(summary));
    }
  }
  arm_idle_check(self);
}

} // namespace

build_actor::behavior_type build_actor_impl(build_actor::stateful_pointer<build_actor_state> self,
                                            model::build initial, registry_actor registry,
                                            build_settings settings) {
  auto& st = self->state;
  st.build = std::move(initial);
  st.registry = std::move(registry);
  st.settings = std::move(settings);
  st.summary = model::summarize(st.build);
  return {
    [=](const model::envelope& e) { apply_event(self, e); },
    [=](replay_atom, const model::envelope& e) {
      apply_event(self, e);
      return true;
    },
    [=](caf::get_atom) -> std::string { return model::to_text(model::to_json(self->state.build)); },
    [=](snapshot_atom) -> model::build { return self->state.build; },
    [=](caf::idle_atom, std::uint64_t seen) {
      auto& st = self->state;
      st.idle_armed = false;
      if (seen != st.events) {
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
