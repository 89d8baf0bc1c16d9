#pragma once

#include <cstdint>
#include <optional>

#include "actors/actors.hpp"
#include "model/build.hpp"
#include "model/index.hpp"

namespace bt::actors {

struct build_actor_state {
  static inline const char* name = "build";
  model::build build;
  registry_actor registry;
  std::chrono::milliseconds idle_timeout{};
  std::uint64_t events = 0;  ///< events received, compared with what the registry routed
  bool idle_armed = false;   ///< an idle check is on its way
  model::build_summary summary; ///< last summary sent to the registry
};

/// Shell around one build's pure model: applies events, hands effects to the
/// registry, and asks to stop once finished and idle for `idle_timeout`.
build_actor::behavior_type build_actor_impl(build_actor::stateful_pointer<build_actor_state> self,
                                            model::build initial, registry_actor registry,
                                            std::chrono::milliseconds idle_timeout);

} // namespace bt::actors
