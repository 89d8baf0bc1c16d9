#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "actors/actors.hpp"
#include "model/index.hpp"

namespace bt::actors {

struct catalog_state {
  static inline const char* name = "catalog";
  model::build_index index;
  std::shared_ptr<std::atomic<std::uint64_t>> listed; ///< the index's size, for metrics
  exchange_actor feed; ///< where build changes go (the `builds` exchange); may be invalid
  std::vector<store::exchange_publication> unpublished; ///< changes since the last flush
};

/// Keeps the summary of every tracked build, as build actors report them, so that
/// listings and expiry never wake a build actor nor wait behind routing. Publishes
/// how many builds it lists in `listed`. Every change it hears of goes to the `builds`
/// exchange through `feed` (when valid): what arrived together in one publication.
catalog_actor::behavior_type catalog(catalog_actor::stateful_pointer<catalog_state> self,
                                     std::shared_ptr<std::atomic<std::uint64_t>> listed,
                                     exchange_actor feed);

} // namespace bt::actors
