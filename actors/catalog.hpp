#pragma once

#include "actors/actors.hpp"
#include "model/index.hpp"

namespace bt::actors {

struct catalog_state {
  static inline const char* name = "catalog";
  model::build_index index;
};

/// Keeps the summary of every tracked build, as build actors report them, so that
/// listings and expiry never wake a build actor nor wait behind routing.
catalog_actor::behavior_type catalog(catalog_actor::stateful_pointer<catalog_state> self);

} // namespace bt::actors
