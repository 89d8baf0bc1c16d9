#include "actors/timeout_supervisor.hpp"

#include <caf/all.hpp>

namespace bt::actors {
namespace {

using self_ptr = timeout_supervisor_actor::stateful_pointer<timeout_supervisor_state>;

std::uint64_t counted(const timeout_supervisor_state& st, const std::string& name) {
  return !st.settings.counted_prefix.empty() && name.starts_with(st.settings.counted_prefix);
}

std::string id_of(const model::build_key& key, const std::string& name) {
  return key.str() + "|" + name;
}

/// Arms the timer for the earliest deadline, unless one is armed for it already.
void arm(self_ptr self) {
  auto& st = self->state;
  if (st.settings.count)
    st.settings.count->store(st.by_time.size(), std::memory_order_relaxed);
  if (st.settings.prefixed)
    st.settings.prefixed->store(st.prefixed, std::memory_order_relaxed);
  if (st.settings.held || st.by_time.empty()) {
    st.armed_for.reset();
    return;
  }
  auto due = st.by_time.begin()->first;
  if (st.armed_for && *st.armed_for <= due)
    return; // the armed timer goes off first; it re-arms for the rest
  st.armed_for = due;
  auto wait = due - st.settings.now();
  if (wait <= model::timestamp::duration::zero())
    self->send(self, tick_atom::value, ++st.timer); // passed already: at once
  else
    self->delayed_send(self, wait, tick_atom::value, ++st.timer);
}

/// Reports every deadline that has passed, earliest first, then re-arms.
void fire(self_ptr self) {
  auto& st = self->state;
  auto now = st.settings.now();
  while (!st.by_time.empty() && st.by_time.begin()->first <= now) {
    auto node = st.by_time.extract(st.by_time.begin());
    auto& [key, name] = node.mapped();
    st.by_id.erase(id_of(key, name));
    st.prefixed -= counted(st, name);
    st.settings.passed(key, name, node.key());
  }
  st.armed_for.reset();
  arm(self);
}

} // namespace

timeout_supervisor_actor::behavior_type
timeout_supervisor(timeout_supervisor_actor::stateful_pointer<timeout_supervisor_state> self,
                   timeout_settings settings) {
  self->state.settings = std::move(settings);
  return {
    [=](deadline_atom, const model::build_key& key, const std::string& name,
        const std::optional<model::timestamp>& due) {
      auto& st = self->state;
      auto id = id_of(key, name);
      if (auto it = st.by_id.find(id); it != st.by_id.end()) {
        st.by_time.erase(it->second);
        st.by_id.erase(it);
        st.prefixed -= counted(st, name);
      }
      if (due) {
        st.by_id.emplace(std::move(id), st.by_time.emplace(*due, std::pair{key, name}));
        st.prefixed += counted(st, name);
      }
      arm(self);
    },
    [=](caf::get_atom) { return self->state.by_time.size(); },
    [=](start_atom) {
      self->state.settings.held = false;
      arm(self);
    },
    [=](tick_atom, std::uint64_t timer) {
      // A timer re-armed for an earlier deadline since: only the latest counts.
      if (timer == self->state.timer)
        fire(self);
    },
  };
}

} // namespace bt::actors
