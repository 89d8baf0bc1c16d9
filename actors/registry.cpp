#include "actors/registry.hpp"

#include <caf/all.hpp>
#include <nlohmann/json.hpp>

#include "actors/build_actor.hpp"
#include "model/json.hpp"
#include "support/clock.hpp"
#include "support/log.hpp"

namespace bt::actors {
namespace {

using self_ptr = registry_actor::stateful_pointer<registry_state>;

registry_state::live_build& wake(self_ptr self, const model::build_key& key) {
  auto& st = self->state;
  auto name = key.str();
  auto it = st.live.find(name);
  if (it != st.live.end())
    return it->second;
  model::build initial;
  if (auto saved = st.store->load(key))
    initial = std::move(*saved);
  else
    initial.key = key;
  auto handle = self->spawn(build_actor_impl, std::move(initial),
                            caf::actor_cast<registry_actor>(self), st.store, st.idle_timeout);
  self->monitor(handle);
  auto& entry = st.live.emplace(std::move(name), registry_state::live_build{handle, 0}).first->second;
  st.publish();
  return entry;
}

void route(self_ptr self, model::envelope e) {
  auto& target = wake(self, e.key);
  ++target.routed;
  self->send(target.handle, std::move(e));
}

} // namespace

registry_actor::behavior_type registry(registry_actor::stateful_pointer<registry_state> self,
                                       std::shared_ptr<store::store> store,
                                       streak_tracker_actor tracker,
                                       std::chrono::milliseconds idle_timeout,
                                       std::shared_ptr<registry_stats> stats) {
  auto& st = self->state;
  st.stats = std::move(stats);
  st.store = std::move(store);
  st.tracker = std::move(tracker);
  st.idle_timeout = idle_timeout;
  st.store->for_each([&](const model::build& b) { st.index.upsert(model::summarize(b)); });
  st.publish();
  // On shutdown, take every build actor down too: they are not linked, so that one
  // failing build never takes the registry with it.
  self->set_exit_handler([=](const caf::exit_msg& msg) {
    for (auto& [_, b] : self->state.live)
      self->send_exit(b.handle, msg.reason);
    self->state.live.clear();
    self->state.publish();
    self->quit(msg.reason);
  });
  self->set_down_handler([=](const caf::down_msg& down) {
    auto& live = self->state.live;
    for (auto it = live.begin(); it != live.end(); ++it)
      if (it->second.handle.address() == down.source) {
        if (down.reason)
          support::log(support::log_level::error, "build actor died",
                       {{"build", it->first}, {"reason", caf::to_string(down.reason)}});
        live.erase(it);
        self->state.publish();
        return;
      }
  });
  return {
    [=](model::envelope& e) { route(self, std::move(e)); },
    [=](caf::get_atom, const model::build_key& key) -> caf::result<std::string> {
      auto& st = self->state;
      if (auto it = st.live.find(key.str()); it != st.live.end())
        return self->delegate(it->second.handle, caf::get_atom::value);
      if (auto saved = st.store->load(key))
        return model::to_text(model::to_json(*saved));
      return caf::make_error(errc::not_found);
    },
    [=](caf::get_atom, const model::build_query& q) -> std::string {
      auto out = nlohmann::json::array();
      for (auto& s : self->state.index.list(q))
        out.push_back(model::to_json(s));
      return model::to_text(out);
    },
    [=](caf::put_atom, const model::build_summary& s) {
      self->state.index.upsert(s);
      self->state.publish();
    },
    [=](const model::finished_effect& f) {
      self->request(self->state.tracker, caf::infinite, f)
        .then(
          [=](std::optional<model::streak_result> verdict) {
            if (verdict)
              route(self, model::envelope{f.key, "", support::wall_clock(), std::nullopt, *verdict});
          },
          [=](caf::error& err) {
            support::log(support::log_level::error, "streak tracker failed",
                         {{"build", f.key.str()}, {"reason", caf::to_string(err)}});
          });
    },
    [=](caf::idle_atom, const model::build_key& key, std::uint64_t seen) {
      auto& live = self->state.live;
      auto it = live.find(key.str());
      // More events are on their way to the actor: it stays and re-arms.
      if (it == live.end() || it->second.routed != seen)
        return;
      self->demonitor(it->second.handle.address());
      self->send(it->second.handle, stop_atom::value);
      live.erase(it);
      self->state.publish();
    },
  };
}

} // namespace bt::actors
