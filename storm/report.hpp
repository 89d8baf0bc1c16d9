#pragma once

// What a storm reports: a summary as JSON (its format is documented in README and
// versioned by "format"), thresholds on it that decide the exit status, and a
// self-contained HTML report with throughput and latency over time and a latency
// histogram drawn as inline SVG.

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "storm/load.hpp"
#include "storm/verify.hpp"
#include "storm/workload.hpp"

namespace bt::storm {

/// One step of a ramp: the rate asked for and what the target did at it.
struct ramp_step {
  double rate = 0;
  double achieved = 0; ///< answers per second
  double p99 = 0;      ///< seconds, from the intended send time
  std::size_t errors = 0;
  bool within_slo = false;
};

/// Everything a storm measured, for the JSON summary and the HTML report.
struct summary {
  std::string target;      ///< http://host:port
  std::string run;         ///< the run id, in every pipeline's name
  mix workload_mix;
  std::size_t requests = 0; ///< requests of the workload (after --drop)
  int connections = 0;
  double rate = 0;         ///< asked for, open-loop; 0 for closed-loop
  load_result load;        ///< the storm (every ramp step, one after the other)
  std::size_t afterwards = 0;        ///< commands and messages sent after the storm
  std::size_t afterwards_errors = 0;
  std::optional<verification> verified;
  std::vector<double> notify_latencies; ///< seconds, sorted (with --sink-listen)
  std::vector<ramp_step> ramp;
  double slo_p99 = 0;      ///< seconds, the ramp's bound
  std::vector<std::string> dropped; ///< builds whose finish --drop left out
};

/// The summary as JSON, "format": 1.
nlohmann::json to_json(const summary& s);

/// One threshold of --check: `metric op value`, e.g. p99<10ms, errors=0, verified=100%.
struct check {
  std::string text;
  std::string metric;
  std::string op; ///< <, <=, >, >=, =
  double value = 0;
};

/// The metrics --check knows, with their unit, for --help and errors.
extern const char* const check_metrics_help;

/// Parses a comma-separated list of checks. Throws std::invalid_argument naming the
/// check that is not understood.
std::vector<check> parse_checks(const std::string& text);

/// A check's result against a summary.
struct check_result {
  check c;
  double actual = 0;
  bool passed = false;
};

/// Evaluates `checks` against the JSON summary `j`.
std::vector<check_result> evaluate(const std::vector<check>& checks, const nlohmann::json& j);

/// A self-contained HTML page (no script, no external resource) of the summary.
std::string render_html(const nlohmann::json& j);

/// Parses a duration: 250us, 10ms, 1.5s, 2m; a bare number is milliseconds. Throws
/// std::invalid_argument.
std::chrono::duration<double> parse_duration(const std::string& text);

} // namespace bt::storm
