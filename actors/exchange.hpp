#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "actors/actors.hpp"

namespace bt::actors {

struct exchange_state {
  exchange_state() = default; // not an aggregate (see gateway_state)
  static inline const char* name = "exchange";
  std::shared_ptr<store::store> store;
  std::size_t backlog = 100'000; ///< messages kept per exchange (`exchanges.backlog`)
  std::map<std::uint64_t, subscription> subscribers;
  /// How many subscribers there are, for metrics.
  std::shared_ptr<std::atomic<std::uint64_t>> subscribed;
};

/// The frame a subscriber gets for one message:
/// `{"exchange","routingKey","payload","id"}`, the payload as published (JSON).
std::string exchange_frame(const std::string& exchange, const store::exchange_message& m);

/// Publishes on the topic exchanges and serves their subscribers. Detached: its store
/// calls block. Everything happens in its mailbox's order, so a subscriber's replay
/// of the backlog and what is published meet with no gap and nothing twice.
exchange_actor::behavior_type exchange(exchange_actor::stateful_pointer<exchange_state> self,
                                       std::shared_ptr<store::store> store, std::size_t backlog,
                                       std::shared_ptr<std::atomic<std::uint64_t>> subscribed);

} // namespace bt::actors
