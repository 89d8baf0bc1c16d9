#pragma once

// Sends a workload's requests over keep-alive connections, closed-loop (each connection
// sends its next request when the answer to the last came) or open-loop (requests at a
// fixed arrival rate, latency measured from when each was meant to be sent, so that a
// stalled server shows in the percentiles: no coordinated omission, as wrk2 does it).

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "storm/workload.hpp"

namespace bt::storm {

using steady = std::chrono::steady_clock;

/// Where a storm goes: host (a name or an address) and port.
struct endpoint {
  std::string host = "127.0.0.1";
  unsigned short port = 8080;
};

/// What the load looks like while it runs, for a progress line.
struct progress {
  double elapsed = 0;      ///< seconds since the first request
  std::size_t done = 0;    ///< requests answered (or failed)
  std::size_t total = 0;   ///< requests to send
  std::size_t errors = 0;  ///< answers that were not the expected status, or no answer
  double rate = 0;         ///< answers per second over the last window
  double p50 = 0, p99 = 0; ///< latency of the last window's answers, seconds
};

/// How to send.
struct load_options {
  endpoint target;
  int connections = 64;
  /// Requests per second, open-loop; 0 for closed-loop.
  double rate = 0;
  /// An answer slower than this counts as an error and its connection is opened anew.
  std::chrono::milliseconds timeout{30'000};
  /// Answers other than 202 that count as success: 200 and 409 for build commands.
  bool commands = false;
  /// Called about four times a second from the sending thread, when set.
  std::function<void(const progress&)> on_progress;
};

/// One answered request.
struct sample {
  double done_at = 0; ///< seconds from the load's start to the answer
  double latency = 0; ///< seconds: from the send (closed-loop) or the intended send (open-loop)
  bool ok = false;
};

/// What a load did.
struct load_result {
  double seconds = 0;           ///< first send to last answer
  std::size_t events = 0;       ///< events in the requests sent
  std::size_t errors = 0;
  std::vector<sample> samples;  ///< in the order answers came
  std::map<int, std::size_t> statuses; ///< HTTP status -> count; 0 for no answer
  std::string first_error;      ///< the first failure, said in words
  /// When each build.finished was accepted, by build key.
  std::map<std::string, steady::time_point> finished_at;
  double rate() const { return seconds > 0 ? static_cast<double>(samples.size()) / seconds : 0; }
  double event_rate() const { return seconds > 0 ? static_cast<double>(events) / seconds : 0; }
};

/// Sends every request of `w` as `o` says; returns when each was answered or failed (a
/// connection that breaks is opened anew). Throws std::runtime_error when the target's
/// host cannot be resolved.
load_result send_load(const workload& w, const load_options& o);

/// Sends each build's requests of `w.afterwards` in order, builds spread over the
/// connections, closed-loop.
load_result send_afterwards(const workload& w, const load_options& o);

/// Every answer's latency in `r`, sorted: what quantile() reads.
std::vector<double> sorted_latencies(const load_result& r);

/// The `q` quantile (0..1) of `sorted`, 0 when empty.
double quantile(const std::vector<double>& sorted, double q);

} // namespace bt::storm
