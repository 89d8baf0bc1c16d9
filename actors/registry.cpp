#include "actors/registry.hpp"

#include <algorithm>

#include <caf/all.hpp>
#include <nlohmann/json.hpp>

#include "actors/build_actor.hpp"
#include "model/json.hpp"
#include "support/clock.hpp"
#include "support/log.hpp"

namespace bt::actors {
namespace {

using self_ptr = registry_actor::stateful_pointer<registry_state>;

/// How long to wait before reading a build's stored state again after a failure.
constexpr auto load_retry = std::chrono::milliseconds{200};

/// The build's running actor, spawned from its parked or stored state if needed.
/// Null when the stored state could not be read.
registry_state::live_build* wake(self_ptr self, const model::build_key& key,
                                 const std::string& name) {
  auto& st = self->state;
  if (auto it = st.live.find(name); it != st.live.end())
    return &it->second;
  model::build initial;
  if (auto parked = st.parked.find(name); parked != st.parked.end()) {
    initial = std::move(parked->second.build);
    st.parked.erase(parked);
  } else {
    bool failed = false;
    auto saved = st.store->load(key, failed);
    if (failed)
      return nullptr;
    if (saved)
      initial = std::move(*saved);
    else
      initial.key = key;
  }
  auto handle = self->spawn(build_actor_impl, std::move(initial),
                            caf::actor_cast<registry_actor>(self), st.settings);
  self->monitor(handle);
  auto& entry = st.live.emplace(name, registry_state::live_build{handle, 0}).first->second;
  st.publish();
  return &entry;
}

/// The actor `e` goes to, counting it as routed; null when `e` must wait for its
/// build's stored state (it is queued then).
registry_state::live_build* target_of(self_ptr self, model::envelope& e) {
  auto& st = self->state;
  auto name = e.key.str();
  // Events wait behind a failed read, so the build still sees them in order.
  if (auto waiting = st.awaiting_load.find(name); waiting != st.awaiting_load.end()) {
    waiting->second.push_back(std::move(e));
    return nullptr;
  }
  if (auto* target = wake(self, e.key, name)) {
    ++target->routed;
    st.dirty.try_emplace(std::move(name), st.cycle);
    return target;
  }
  support::log(support::log_level::error, "build state unreadable; its events wait",
               {{"build", name}});
  auto key = e.key;
  st.awaiting_load[name].push_back(std::move(e));
  self->delayed_send(self, load_retry, retry_atom::value, std::move(key));
  return nullptr;
}

void route(self_ptr self, model::envelope e) {
  if (auto* target = target_of(self, e))
    self->send(target->handle, std::move(e));
}

/// Stops a live build actor the registry no longer routes to.
void retire(self_ptr self, std::unordered_map<std::string, registry_state::live_build>::iterator it) {
  self->demonitor(it->second.handle.address());
  self->send(it->second.handle, stop_atom::value);
  self->state.live.erase(it);
}

bool finished_state(model::build_state s) {
  using model::build_state;
  return s == build_state::passed || s == build_state::failed || s == build_state::canceled
         || s == build_state::interrupted;
}

/// Sends a finished build's verdict request to the streak tracker and routes the
/// verdict back to the build.
void judge(self_ptr self, const model::finished_effect& f) {
  self->state.streaks_dirty = true;
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
}

/// Takes a snapshot of at most `limit` changed builds, those waiting longest first:
/// each state from its actor, so every event routed before the request is in it, then
/// the streaks. Effects reach the registry before their actor's reply, so the
/// streaks asked for last include their verdicts.
caf::result<snapshot_batch> take_snapshot(self_ptr self, std::size_t limit) {
  auto& st = self->state;
  auto rp = self->make_response_promise<snapshot_batch>();
  auto batch = std::make_shared<snapshot_batch>();
  batch->cycle = st.cycle++;
  std::vector<std::pair<std::uint64_t, std::string>> waiting;
  waiting.reserve(st.dirty.size());
  for (auto& [name, cycle] : st.dirty)
    waiting.emplace_back(cycle, name);
  if (waiting.size() > limit) {
    std::nth_element(waiting.begin(), waiting.begin() + static_cast<std::ptrdiff_t>(limit),
                     waiting.end());
    batch->oldest_waiting = std::min_element(waiting.begin() + static_cast<std::ptrdiff_t>(limit),
                                             waiting.end())
                              ->first;
    waiting.resize(limit);
  }
  std::vector<build_actor> ask;
  st.in_flight.clear();
  for (auto& [cycle, name] : waiting) {
    st.dirty.erase(name);
    if (auto it = st.live.find(name); it != st.live.end()) {
      st.in_flight.emplace(name, registry_state::in_flight_build{cycle, 0});
      ask.push_back(it->second.handle);
    } else if (auto p = st.parked.find(name); p != st.parked.end()) {
      st.in_flight.emplace(name, registry_state::in_flight_build{cycle, p->second.generation});
      batch->state.builds.push_back(p->second.build);
    }
  }
  st.publish();
  auto finish = [self, rp, batch]() mutable {
    auto& st = self->state;
    st.streaks_in_flight = st.streaks_dirty;
    st.streaks_dirty = false;
    if (!st.streaks_in_flight)
      return rp.deliver(std::move(*batch)), void();
    self->request(st.tracker, caf::infinite, snapshot_atom::value)
      .then([rp, batch](model::streak_book& book) mutable {
              batch->state.streaks = std::move(book);
              rp.deliver(std::move(*batch));
            },
            [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
  };
  if (ask.empty()) {
    finish();
    return rp;
  }
  auto remaining = std::make_shared<size_t>(ask.size());
  for (auto& handle : ask)
    self->request(handle, caf::infinite, snapshot_atom::value)
      .then(
        [=](model::build& b) mutable {
          batch->state.builds.push_back(std::move(b));
          if (--*remaining == 0)
            finish();
        },
        [=](caf::error& err) mutable {
          // The actor died (the down handler logs it); the rest is still written.
          support::log(support::log_level::error, "build left out of a snapshot",
                       {{"reason", caf::to_string(err)}});
          if (--*remaining == 0)
            finish();
        });
  return rp;
}

} // namespace

registry_actor::behavior_type registry(registry_actor::stateful_pointer<registry_state> self,
                                       std::shared_ptr<store::store> store,
                                       streak_tracker_actor tracker,
                                       notify_dispatcher_actor dispatcher,
                                       build_settings settings,
                                       std::shared_ptr<registry_stats> stats) {
  auto& st = self->state;
  st.stats = std::move(stats);
  st.store = std::move(store);
  st.tracker = std::move(tracker);
  st.dispatcher = std::move(dispatcher);
  st.settings = std::move(settings);
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
    [=](replay_atom, model::envelope& e) -> caf::result<bool> {
      if (auto* target = target_of(self, e))
        return self->delegate(target->handle, replay_atom::value, std::move(e));
      return true; // queued behind a failed read: applied once it succeeds
    },
    [=](caf::get_atom, const model::build_key& key) -> caf::result<std::string> {
      auto& st = self->state;
      auto name = key.str();
      if (auto it = st.live.find(name); it != st.live.end())
        return self->delegate(it->second.handle, caf::get_atom::value);
      if (auto it = st.parked.find(name); it != st.parked.end())
        return model::to_text(model::to_json(it->second.build));
      bool failed = false;
      auto saved = st.store->load(key, failed);
      if (failed)
        return caf::make_error(errc::store_unavailable);
      if (saved)
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
    [=](caf::put_atom, const std::vector<model::build_summary>& all) {
      for (auto& s : all)
        self->state.index.upsert(s);
      self->state.publish();
    },
    [=](const model::finished_effect& f) { judge(self, f); },
    [=](model::notice& n) {
      if (self->state.dispatcher)
        self->send(self->state.dispatcher, std::move(n));
    },
    [=](caf::idle_atom, model::build& last, std::uint64_t seen) {
      auto& st = self->state;
      auto name = last.key.str();
      auto it = st.live.find(name);
      // More events are on their way to the actor: it stays and re-arms.
      if (it == st.live.end() || it->second.routed != seen)
        return;
      retire(self, it);
      st.parked[name] = registry_state::parked_build{std::move(last), ++st.generation};
      // Changed since its last snapshot or not, the parked state is what must be written.
      st.dirty.try_emplace(name, st.cycle);
      st.publish();
    },
    [=](snapshot_atom, std::size_t limit) { return take_snapshot(self, limit); },
    [=](snapshot_atom, bool written) {
      auto& st = self->state;
      if (written) {
        // Parked states written are in the store now, unless parked again since.
        for (auto& [name, b] : st.in_flight)
          if (auto p = st.parked.find(name);
              b.generation != 0 && p != st.parked.end() && p->second.generation == b.generation)
            st.parked.erase(p);
      } else {
        // Waiting since their first change, not since now: the journal behind them stays.
        for (auto& [name, b] : st.in_flight) {
          auto [it, fresh] = st.dirty.try_emplace(name, b.cycle);
          if (!fresh)
            it->second = std::min(it->second, b.cycle);
        }
        st.streaks_dirty = st.streaks_dirty || st.streaks_in_flight;
      }
      st.in_flight.clear();
      st.streaks_in_flight = false;
      st.publish();
    },
    [=](expire_atom, const expiry_rule& rule) -> expired_builds {
      auto& st = self->state;
      expired_builds out;
      st.index.for_each([&](const model::build_summary& s) {
        if (!s.updated)
          return;
        auto age = rule.now - *s.updated;
        bool finished = finished_state(s.state);
        if (finished ? age < rule.retention : age < rule.abandoned_after)
          return;
        (finished ? out.finished : out.abandoned).push_back(s.key);
      });
      for (auto* keys : {&out.finished, &out.abandoned})
        for (auto& key : *keys) {
          auto name = key.str();
          if (auto it = st.live.find(name); it != st.live.end())
            retire(self, it);
          st.parked.erase(name);
          st.dirty.erase(name);
          st.in_flight.erase(name);
          st.index.erase(key);
        }
      st.publish();
      return out;
    },
    [=](rewrite_atom) {
      auto& st = self->state;
      for (auto& [name, _] : st.live)
        st.dirty.try_emplace(name, st.cycle);
      for (auto& [name, _] : st.parked)
        st.dirty.try_emplace(name, st.cycle);
      st.streaks_dirty = true;
      std::vector<model::build_key> gone;
      st.index.for_each([&](const model::build_summary& s) {
        auto name = s.key.str();
        if (!st.live.contains(name) && !st.parked.contains(name))
          gone.push_back(s.key);
      });
      for (auto& key : gone)
        st.index.erase(key);
      support::log(support::log_level::error, "builds written back after the store lost its data",
                   {{"written_back", st.live.size() + st.parked.size()}, {"lost", gone.size()}});
      st.publish();
    },
    [=](retry_atom, const model::build_key& key) {
      auto& st = self->state;
      auto name = key.str();
      auto waiting = st.awaiting_load.find(name);
      if (waiting == st.awaiting_load.end())
        return;
      auto* target = wake(self, key, name);
      if (!target) {
        self->delayed_send(self, load_retry, retry_atom::value, key);
        return;
      }
      auto events = std::move(waiting->second);
      st.awaiting_load.erase(waiting);
      for (auto& e : events)
        route(self, std::move(e));
    },
  };
}

} // namespace bt::actors
