#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <functional>
#include <map>
#include <string>
#include <unordered_map>
#include <utility>

#include "actors/actors.hpp"
#include "model/time.hpp"

namespace bt::actors {

/// What the timeout supervisor is started with.
struct timeout_settings {
  /// The wall clock deadlines are read against (the real one in the service; a test's
  /// own, moved in step with the deterministic scheduler's clock, in tests).
  std::function<model::timestamp()> now;
  /// Called on the supervisor's thread for each deadline that passed, in deadline
  /// order; it must not block. The deadline is forgotten before the call: the owner
  /// registers again if it still needs one.
  std::function<void(const model::build_key& key, const std::string& name, model::timestamp due)>
    passed;
  /// Whether deadlines wait for `start_atom` before they go off.
  bool held = false;
  /// How many deadlines are held, for metrics; may be null.
  std::shared_ptr<std::atomic<std::uint64_t>> count;
  /// How many of them have a name that starts with `counted_prefix`; may be null.
  std::shared_ptr<std::atomic<std::uint64_t>> prefixed;
  std::string counted_prefix;
};

struct timeout_supervisor_state {
  timeout_supervisor_state() = default; // not an aggregate (see gateway_state)
  static inline const char* name = "timeout-supervisor";
  timeout_settings settings;
  /// Deadlines in time order, each under `key|name`...
  std::multimap<model::timestamp, std::pair<model::build_key, std::string>> by_time;
  /// ...and where each is in it, to move or cancel one.
  std::unordered_map<std::string, decltype(by_time)::iterator> by_id;
  /// The timer armed for the earliest deadline: its due time and number (a timer that
  /// is not the latest goes off for nothing).
  std::optional<model::timestamp> armed_for;
  std::uint64_t timer = 0;
  std::uint64_t prefixed = 0; ///< deadlines named with settings.counted_prefix
};

/// Holds deadlines in order and reports each once it has passed. One timer, for the
/// earliest deadline, re-armed as deadlines come and go: release latency is the
/// scheduler's timer resolution, not a polling interval.
timeout_supervisor_actor::behavior_type
timeout_supervisor(timeout_supervisor_actor::stateful_pointer<timeout_supervisor_state> self,
                   timeout_settings settings);

} // namespace bt::actors
