#pragma once

#include <string>
#include <vector>

#include "actors/actors.hpp"
#include "model/streak.hpp"

namespace bt::actors {

struct streak_tracker_state {
  static inline const char* name = "streak_tracker";
  model::streak_book book;
  std::vector<std::string> branches; ///< tracked branch globs
  bool changed = false;  ///< a verdict was recorded since the streaks were last taken
  bool in_flight = false; ///< the streaks last taken are being written
};

/// Judges finished builds of tracked branches against their streak (personal,
/// canceled and interrupted builds are not part of any streak), and knows whether
/// the streaks changed since a snapshot last took them.
streak_tracker_actor::behavior_type
streak_tracker(streak_tracker_actor::stateful_pointer<streak_tracker_state> self,
               std::vector<std::string> branches);

} // namespace bt::actors
