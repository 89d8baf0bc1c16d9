#pragma once

#include "actors/actors.hpp"

namespace bt::actors {

struct gateway_state {
  // Not an aggregate: CAF would otherwise try to build the state from the self
  // pointer (C++20 parenthesised aggregate init) and fail on the handle member.
  gateway_state() = default;
  static inline const char* name = "gateway";
  registry_actor registry;
  catalog_actor catalog;
  streak_tracker_actor tracker;
  notify_dispatcher_actor dispatcher; ///< invalid when no sink is configured
};

/// Answers HTTP reads: one request to the owning actor, then the HTTP reply.
gateway_actor::behavior_type gateway(gateway_actor::stateful_pointer<gateway_state> self,
                                     registry_actor registry, catalog_actor catalog,
                                     streak_tracker_actor tracker, notify_dispatcher_actor dispatcher);

} // namespace bt::actors
