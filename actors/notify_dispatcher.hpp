#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "actors/actors.hpp"
#include "config/config.hpp"
#include "notify/delivery_log.hpp"
#include "notify/sink.hpp"
#include "store/store.hpp"
#include "support/metrics.hpp"

namespace bt::actors {

/// Sends one request and calls back once, from any thread, with the answer.
using transport = std::function<void(net::outbound_request, std::chrono::milliseconds timeout,
                                     std::function<void(net::inbound_response)>)>;

/// A transport over a real HTTP(S) client with its own I/O thread.
transport http_transport();

/// Counts the dispatcher publishes, readable from any thread.
struct dispatcher_stats {
  std::atomic<std::uint64_t> outbox{0}; ///< entries not yet delivered or dead-lettered
};

struct notify_dispatcher_state {
  notify_dispatcher_state() = default; // not an aggregate (see gateway_state)
  static inline const char* name = "notify-dispatcher";

  /// An outbox entry and where it is in its life.
  struct pending {
    notify::outbox_entry entry;
    bool in_flight = false;
    bool queued = false;     ///< in its lane's ready queue
    std::uint64_t wait = 0;  ///< the retry timer it waits for; 0 when none
  };
  /// One sink with its ready queue and metrics.
  struct lane {
    std::unique_ptr<notify::sink> sink;
    std::deque<std::string> ready;
    int in_flight = 0;
    support::counter* delivered = nullptr;
    support::counter* failed = nullptr;
    support::counter* retries = nullptr;
    support::counter* dead = nullptr;
  };

  std::shared_ptr<store::store> store;
  transport send;
  std::vector<lane> lanes;
  std::unordered_map<std::string, pending> outbox; ///< by entry id
  std::deque<model::notice> unrecorded;       ///< to record in the next store write
  std::deque<store::outbox_change> unwritten; ///< to apply in the next store write, in order
  bool loaded = false;                             ///< the stored outbox was read
  bool tick_armed = false; ///< a store write is scheduled
  std::uint64_t waits = 0;
  std::mt19937_64 random{std::random_device{}()};
  std::shared_ptr<dispatcher_stats> stats;
  notify::delivery_log deliveries; ///< each entry's latest state, for the status page
};

/// The notification dispatcher. A notice is recorded in the store's outbox, once
/// per build revision, for every sink that wants it, before any attempt (what
/// arrives together is written in one round trip); entries
/// left from before a restart are sent again at start. Each sink has at most
/// `concurrency` deliveries in flight; failures wait (exponential backoff with
/// jitter, or the receiver's Retry-After) and end in the dead-letter list after
/// `retry.max_attempts`. A newer revision of a build replaces its entry. Its store
/// calls block: spawn it detached.
notify_dispatcher_actor::behavior_type
notify_dispatcher(notify_dispatcher_actor::stateful_pointer<notify_dispatcher_state> self,
                  std::shared_ptr<store::store> store, std::vector<config::sink_config> sinks,
                  std::vector<config::person_config> people, transport send,
                  std::shared_ptr<dispatcher_stats> stats);

} // namespace bt::actors
