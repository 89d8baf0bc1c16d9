#include "actors/registry.hpp"

#include <algorithm>
#include <limits>

#include <caf/all.hpp>
#include <nlohmann/json.hpp>

#include "actors/build_actor.hpp"
#include "model/json.hpp"
#include "support/clock.hpp"
#include "support/log.hpp"
#include "support/metrics.hpp"

namespace bt::actors {
namespace {

using self_ptr = registry_actor::stateful_pointer<registry_state>;
using waiting_event = registry_state::waiting_event;

/// Sent to a build actor to have it check for idleness again later: it differs from
/// any count of events the actor has seen.
constexpr std::uint64_t recheck_idle = std::numeric_limits<std::uint64_t>::max();

/// How long to wait before reading a build's stored state again after a failure.
constexpr auto load_retry = std::chrono::milliseconds{200};

registry_state::live_build& spawn_build(self_ptr self, const std::string& name,
                                        model::build initial) {
  auto& st = self->state;
  auto handle = self->spawn(build_actor_impl, std::move(initial),
                            caf::actor_cast<registry_actor>(self), st.peers, st.settings);
  self->monitor(handle);
  auto& entry = st.live.emplace(name, registry_state::live_build{handle, 0}).first->second;
  st.publish();
  return entry;
}

/// Asks the loader for a build's stored state; its answer comes back as a
/// load_atom message, so the registry goes on routing meanwhile.
void start_load(self_ptr self, const model::build_key& key) {
  self->request(self->state.loader, caf::infinite, load_atom::value, key)
    .then(
      [=](std::optional<model::build>& saved) {
        self->send(self, load_atom::value, key, std::move(saved));
      },
      [=](caf::error& err) {
        support::log(support::log_level::error, "build state unreadable; its events wait",
                     {{"build", key.str()}, {"reason", caf::to_string(err)}});
        self->delayed_send(self, load_retry, retry_atom::value, key);
      });
}

/// Hands one event to a live build actor, counting it as routed.
void deliver(self_ptr self, registry_state::live_build& target, const std::string& name,
             waiting_event&& w) {
  auto& st = self->state;
  ++target.routed;
  auto cycle = w.since ? w.since : st.cycle;
  if (target.dirty_since == 0 || cycle < target.dirty_since) {
    target.dirty_since = st.dirty.lower(name, cycle);
  }
  if (w.replay.pending()) {
    auto rp = std::move(w.replay);
    self->request(target.handle, caf::infinite, replay_atom::value, std::move(w.event))
      .then([rp](bool applied) mutable { rp.deliver(applied); },
            [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
  } else if (w.tally) {
    self->send(target.handle, std::move(w.event), std::move(w.tally));
  } else {
    self->send(target.handle, std::move(w.event));
  }
}

/// Whether an event may be a build's first: a command or a deadline is about a build
/// that exists.
bool makes_builds(const model::envelope& e) {
  return !std::holds_alternative<model::build_command>(e.body)
         && !std::holds_alternative<model::deadline_passed>(e.body);
}

/// The key of a build's pipeline: `source/pipeline`.
std::string pipeline_of(const model::build_key& k) {
  return k.source + "/" + k.pipeline;
}

/// `source/id`: how an event that names its build without the pipeline finds it.
std::string id_of(const model::build_key& k) {
  return k.source + "/" + k.id;
}

void route(self_ptr self, waiting_event&& w);

/// Keeps an event that names its build by source and id until that build shows up.
/// A replayed one counts as applied: it is in the registry's hands.
void wait_for_build(self_ptr self, waiting_event&& w) {
  auto& st = self->state;
  auto& waiting = st.unlinked[id_of(w.event.key)];
  if (waiting.events.empty())
    waiting.since = st.cycle;
  if (w.replay.pending())
    w.replay.deliver(true);
  if (!w.since)
    w.since = st.cycle;
  waiting.events.push_back(std::move(w));
  ++st.unlinked_events;
  st.publish();
}

/// Notes that `k` is the build of its source and id; events that waited for it
/// follow, in the order they came.
void learn(self_ptr self, const model::build_key& k) {
  auto& st = self->state;
  auto id = id_of(k);
  st.pipeline_by_id.insert_or_assign(id, k.pipeline);
  if (st.unlinked.empty())
    return;
  auto waiting = st.unlinked.find(id);
  if (waiting == st.unlinked.end())
    return;
  auto events = std::move(waiting->second.events);
  st.unlinked.erase(waiting);
  st.unlinked_events -= events.size();
  for (auto& w : events)
    route(self, std::move(w));
  st.publish();
}

/// Drops events that waited longer than `settings.link_wait` for their build: the
/// journal behind them may go.
void drop_stale_unlinked(self_ptr self, model::timestamp now) {
  auto& st = self->state;
  for (auto it = st.unlinked.begin(); it != st.unlinked.end();) {
    auto& first = it->second.events.front().event;
    if (now - first.received < st.settings.link_wait) {
      ++it;
      continue;
    }
    support::metrics()
      .get_counter("buildtrack_unlinked_events_dropped_total",
                   "Events that named a build by id that never showed up within "
                   "store.abandoned_after.")
      .inc(it->second.events.size());
    support::log(support::log_level::error, "events for a build that never showed up dropped",
                 {{"build", it->first}, {"events", it->second.events.size()}});
    st.unlinked_events -= it->second.events.size();
    it = st.unlinked.erase(it);
  }
  st.publish();
}

/// Holds an event behind its pipeline's reads, and starts the read of its own build
/// when only the store has it: the reads of a held pipeline's builds overlap, while
/// their events still go in the order they came.
void hold(self_ptr self, waiting_event&& w) {
  auto& st = self->state;
  auto key = w.event.key;
  auto pipeline = pipeline_of(key);
  auto& held = st.held[pipeline];
  if (held.events.empty())
    held.since = st.cycle;
  if (!w.since)
    w.since = st.cycle;
  held.events.push_back(std::move(w));
  auto name = key.str();
  if (st.stored.erase(name) == 0)
    return;
  st.loading.emplace(std::move(name), std::move(pipeline));
  st.publish();
  start_load(self, key);
}

/// Routes one event: to the build's live actor; to a new actor started from its
/// parked state, or empty when the build is new; or, when only the store holds the
/// build, behind a read of its stored state. While a read is out, the pipeline's
/// later events wait behind it in arrival order (the reads of their own builds start
/// at once). An event that names its build by source and id alone goes to the build
/// known by them, or waits for it.
void route(self_ptr self, waiting_event&& w) {
  auto& st = self->state;
  auto& k = w.event.key;
  if (k.pipeline.empty()) {
    auto known = st.pipeline_by_id.find(id_of(k));
    if (known == st.pipeline_by_id.end())
      return wait_for_build(self, std::move(w));
    k.pipeline = known->second;
  }
  if (!st.held.empty() && st.held.contains(pipeline_of(k)))
    return hold(self, std::move(w));
  // Most events go to a live actor: look it up without building a new string.
  st.scratch.clear();
  st.scratch.append(k.source).append(1, '/').append(k.pipeline).append(1, '/').append(k.id);
  if (auto it = st.live.find(st.scratch); it != st.live.end())
    return deliver(self, it->second, it->first, std::move(w));
  auto name = st.scratch;
  if (auto parked = st.parked.find(name); parked != st.parked.end()) {
    auto initial = std::move(parked->second.build);
    st.parked.erase(parked);
    return deliver(self, spawn_build(self, name, std::move(initial)), name, std::move(w));
  }
  // A build not in memory: known by its source and id from now on (live and parked
  // builds were learnt when they were first seen).
  auto seen = k;
  if (!st.stored.contains(name) && !makes_builds(w.event)) {
    // A command or a passed deadline needs a build: it does not make one (a deadline
    // may outlive its build's expiry). Replayed, it meets the same.
    if (w.tally)
      w.tally->command = command_outcome{};
    if (w.replay.pending())
      w.replay.deliver(false);
    return;
  }
  if (!st.stored.contains(name)) {
    model::build fresh;
    fresh.key = k;
    deliver(self, spawn_build(self, name, std::move(fresh)), name, std::move(w));
    return learn(self, seen);
  }
  hold(self, std::move(w));
  learn(self, seen);
}

/// Routes a held pipeline's events in the order they came, until one waits for a read
/// still out or needs a new one: it and those after it stay held, where they are
/// (moving them again on every read would make a long queue quadratic).
void release_held(self_ptr self, const std::string& pipeline) {
  auto& st = self->state;
  auto it = st.held.find(pipeline);
  if (it == st.held.end())
    return;
  // Out of the map while routing: route() must not hold these behind themselves.
  auto waiting = std::move(it->second);
  st.held.erase(it);
  auto& events = waiting.events;
  while (!events.empty() && !st.loading.contains(events.front().event.key.str())) {
    auto w = std::move(events.front());
    events.pop_front();
    route(self, std::move(w));
    if (auto again = st.held.find(pipeline); again != st.held.end()) {
      // It needs a read: it goes first, the rest behind it. They wait since the
      // older cycle.
      for (auto first = again->second.events.rbegin(); first != again->second.events.rend(); ++first)
        events.push_front(std::move(*first));
      again->second = std::move(waiting);
      return;
    }
  }
  if (!events.empty())
    st.held.emplace(pipeline, std::move(waiting));
}

/// Stops a live build actor the registry no longer routes to.
void retire(self_ptr self, std::unordered_map<std::string, registry_state::live_build>::iterator it) {
  self->demonitor(it->second.handle.address());
  self->send(it->second.handle, stop_atom::value);
  self->state.live.erase(it);
}

/// Takes a snapshot of at most `limit` changed builds that have waited `delay`
/// snapshots at least, those waiting longest first, each state from its actor, so
/// every event routed before the request is in it.
caf::result<snapshot_batch> take_snapshot(self_ptr self, std::size_t limit, std::uint64_t delay) {
  auto& st = self->state;
  auto rp = self->make_response_promise<snapshot_batch>();
  auto batch = std::make_shared<snapshot_batch>();
  batch->cycle = st.cycle++;
  // What this snapshot leaves unwritten, changed since `cycle`: the journal after the
  // snapshot before that cycle must stay.
  auto still_waits = [&](std::uint64_t cycle) {
    if (!batch->oldest_waiting || cycle < *batch->oldest_waiting)
      batch->oldest_waiting = cycle;
  };
  // The longest waiting, changed `delay` snapshots ago at least; what stays (changed
  // too recently, or past `limit`) waits since the oldest mark left.
  std::vector<std::pair<std::uint64_t, std::string>> waiting;
  if (batch->cycle >= delay)
    waiting = st.dirty.take(batch->cycle - delay, limit);
  if (auto* oldest = st.dirty.oldest())
    still_waits(*oldest);
  // Events held behind a read are journaled but in no build yet; so are events
  // waiting for the build their id names.
  drop_stale_unlinked(self, support::wall_clock());
  for (auto* waiting : {&st.held, &st.unlinked})
    for (auto& [_, held] : *waiting)
      still_waits(held.since);
  std::vector<build_actor> ask;
  st.in_flight.clear();
  for (auto& [cycle, name] : waiting) {
    if (auto it = st.live.find(name); it != st.live.end()) {
      it->second.dirty_since = 0;
      st.in_flight.emplace(name, registry_state::in_flight_build{cycle, 0});
      ask.push_back(it->second.handle);
    } else if (auto p = st.parked.find(name); p != st.parked.end()) {
      st.in_flight.emplace(name, registry_state::in_flight_build{cycle, p->second.generation});
      batch->state.builds.push_back(p->second.build);
    }
  }
  st.publish();
  if (ask.empty()) {
    rp.deliver(std::move(*batch));
    return rp;
  }
  auto remaining = std::make_shared<size_t>(ask.size());
  auto one_done = [rp, batch, remaining]() mutable {
    if (--*remaining == 0)
      rp.deliver(std::move(*batch));
  };
  for (auto& handle : ask)
    self->request(handle, caf::infinite, snapshot_atom::value)
      .then(
        [=](model::build& b) mutable {
          batch->state.builds.push_back(std::move(b));
          one_done();
        },
        [=](caf::error& err) mutable {
          // The actor died (the down handler logs it); the rest is still written.
          support::log(support::log_level::error, "build left out of a snapshot",
                       {{"reason", caf::to_string(err)}});
          one_done();
        });
  return rp;
}

} // namespace

registry_actor::behavior_type registry(registry_actor::stateful_pointer<registry_state> self,
                                       build_loader_actor loader, build_peers peers,
                                       build_settings settings,
                                       std::shared_ptr<registry_stats> stats) {
  auto& st = self->state;
  st.stats = std::move(stats);
  st.loader = std::move(loader);
  st.peers = std::move(peers);
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
    [=](model::envelope& e) { route(self, {std::move(e), nullptr, {}}); },
    [=](std::vector<model::envelope>& events, tally_ptr& tally) {
      for (auto& e : events)
        route(self, {std::move(e), tally, {}});
    },
    [=](replay_atom, model::envelope& e) -> caf::result<bool> {
      auto rp = self->make_response_promise<bool>();
      route(self, {std::move(e), nullptr, rp});
      return rp;
    },
    [=](caf::get_atom, const model::build_key& key) -> caf::result<std::string> {
      auto& st = self->state;
      auto name = key.str();
      if (auto it = st.live.find(name); it != st.live.end())
        return self->delegate(it->second.handle, caf::get_atom::value);
      if (auto it = st.parked.find(name); it != st.parked.end())
        return model::build_text(it->second.build);
      if (st.stored.contains(name) || st.loading.contains(name))
        return self->delegate(st.loader, caf::get_atom::value, key);
      return caf::make_error(errc::not_found);
    },
    [=](caf::put_atom, std::vector<model::build_key>& keys) {
      for (auto& key : keys) {
        auto name = key.str();
        if (!self->state.live.contains(name) && !self->state.parked.contains(name))
          self->state.stored.insert(std::move(name));
        learn(self, key);
      }
      self->state.publish();
    },
    [=](caf::idle_atom, model::build& last, std::uint64_t seen) {
      auto& st = self->state;
      auto name = last.key.str();
      auto it = st.live.find(name);
      // More events are on their way to the actor: it stays and re-arms.
      if (it == st.live.end() || it->second.routed != seen)
        return;
      // Its pipeline's events wait behind a read: it stays, so that they do not find
      // it gone to the store and need a read each; it checks again later.
      if (st.held.contains(pipeline_of(last.key))) {
        self->send(it->second.handle, caf::idle_atom::value, recheck_idle);
        return;
      }
      retire(self, it);
      st.parked[name] = registry_state::parked_build{std::move(last), ++st.generation};
      // Changed since its last snapshot or not, the parked state is what must be written.
      st.dirty.add(name, st.cycle);
      st.publish();
    },
    [=](snapshot_atom, std::size_t limit, std::uint64_t delay) {
      return take_snapshot(self, limit, delay);
    },
    [=](snapshot_atom, bool written) {
      auto& st = self->state;
      if (written) {
        // Parked states written are in the store now, unless parked again since. One
        // whose pipeline's events wait behind a read stays parked (and is written
        // again later), so that those events find it without a read of their own.
        for (auto& [name, b] : st.in_flight)
          if (auto p = st.parked.find(name);
              b.generation != 0 && p != st.parked.end() && p->second.generation == b.generation) {
            if (st.held.contains(pipeline_of(p->second.build.key))) {
              st.dirty.add(name, b.cycle);
              continue;
            }
            st.parked.erase(p);
            st.stored.insert(name);
          }
      } else {
        // Waiting since their first change, not since now: the journal behind them stays.
        for (auto& [name, b] : st.in_flight)
          st.dirty.lower(name, b.cycle);
      }
      st.in_flight.clear();
      st.publish();
    },
    [=](forget_atom, const expired_builds& picked) -> expired_builds {
      auto& st = self->state;
      expired_builds forgotten;
      for (auto [from, to] : {std::pair{&picked.finished, &forgotten.finished},
                              std::pair{&picked.abandoned, &forgotten.abandoned}})
        for (auto& key : *from) {
          auto name = key.str();
          // A live actor got an event (or awaits a verdict) since its last summary;
          // a read in progress has events waiting: the build is not idle after all.
          if (st.live.contains(name) || st.loading.contains(name))
            continue;
          st.parked.erase(name);
          st.stored.erase(name);
          st.dirty.erase(name);
          st.in_flight.erase(name);
          if (auto known = st.pipeline_by_id.find(id_of(key));
              known != st.pipeline_by_id.end() && known->second == key.pipeline)
            st.pipeline_by_id.erase(known);
          to->push_back(key);
        }
      st.publish();
      return forgotten;
    },
    [=](rewrite_atom) -> lost_builds {
      auto& st = self->state;
      for (auto& [name, _] : st.live)
        st.dirty.add(name, st.cycle);
      for (auto& [name, _] : st.parked)
        st.dirty.add(name, st.cycle);
      lost_builds lost;
      for (auto& name : st.stored)
        if (auto key = model::parse_build_key(name))
          lost.keys.push_back(std::move(*key));
      st.stored.clear();
      support::log(support::log_level::error, "builds written back after the store lost its data",
                   {{"written_back", st.live.size() + st.parked.size()},
                    {"lost", lost.keys.size()}});
      st.publish();
      return lost;
    },
    [=](load_atom, const model::build_key& key, std::optional<model::build>& saved) {
      auto& st = self->state;
      auto name = key.str();
      auto loading = st.loading.find(name);
      if (loading == st.loading.end())
        return;
      auto pipeline = std::move(loading->second);
      st.loading.erase(loading);
      model::build initial;
      if (saved)
        initial = std::move(*saved);
      else
        initial.key = key; // written once, gone since (expired by another process)
      spawn_build(self, name, std::move(initial));
      release_held(self, pipeline);
      st.publish();
    },
    [=](retry_atom, const model::build_key& key) {
      if (self->state.loading.contains(key.str()))
        start_load(self, key);
    },
  };
}

} // namespace bt::actors
