#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "actors/actors.hpp"
#include "model/index.hpp"

namespace bt::actors {

struct catalog_state {
  static inline const char* name = "catalog";
  model::build_index index;
  std::shared_ptr<std::atomic<std::uint64_t>> listed; ///< the index's size, for metrics
};

/// Keeps the summary of every tracked build, as build actors report them, so that
/// listings and expiry never wake a build actor nor wait behind routing. Publishes
/// how many builds it lists in `listed`.
catalog_actor::behavior_type catalog(catalog_actor::stateful_pointer<catalog_state> self,
                                     std::shared_ptr<std::atomic<std::uint64_t>> listed);

} // namespace bt::actors
