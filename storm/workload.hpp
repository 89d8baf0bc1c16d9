#pragma once

// The storm's workload: every build's events as complete HTTP requests, shuffled the
// way CI systems deliver them (late jobs, a build.finished before its jobs, duplicate
// deliveries, retried jobs, waiting targets whose message comes first, statistics
// after the finish), and what the target must end up with. One generator for the
// `buildtrack storm` tool and the bench.

#include <cstddef>
#include <map>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace bt::storm {

/// The secret each source's requests carry.
struct credentials {
  std::string buildkite;   ///< X-Buildkite-Token
  std::string native;      ///< Bearer token of POST /api/v1/events (and commands, messages)
  std::string cdevents;    ///< Bearer token of POST /webhooks/cdevents
  std::string taskcluster; ///< Bearer token of POST /webhooks/taskcluster
};

/// The sources a storm can send, in the order their parts are generated.
inline const std::vector<std::string> all_sources{"buildkite", "native", "taskcluster", "cdevents"};

/// What to generate.
struct mix {
  int builds = 2000;  ///< builds of each source (Taskcluster: task groups)
  int jobs = 10;      ///< jobs per build (Taskcluster: tasks per group)
  std::set<std::string> sources{"buildkite"};
  unsigned seed = 42;
  /// Pipelines are `<pipeline_prefix><n>`, n in 0..7: a run of its own gets a prefix of
  /// its own, so that its builds and streaks are not another run's.
  std::string pipeline_prefix = "bench-";
  int first_build = 1;   ///< build numbers are first_build .. first_build + builds - 1
  /// Taskcluster task ids are numbered from here (groups from here + 500,000,000): a run
  /// of its own gets a range of its own, as the target caches task definitions by id.
  long first_task = 0;
  int batch = 1;         ///< native events per request (NDJSON when more than one)
  /// Native: three builds in four get a target that waits for a message. For one its
  /// message comes in the shuffled storm (before or after the target finishes); the
  /// others' come after it, in order per build: pause, pass, resume; or abort.
  bool targets = false;
  /// Native: every build publishes a statistic, shuffled with the rest (often after
  /// the build finished).
  bool statistics = false;
  credentials secrets;
  std::string host = "127.0.0.1"; ///< the Host header of every request
};

/// What a Taskcluster storm publishes on the Treeherder exchange: each job message's id
/// and routing key, and the task definitions the queue must answer with.
struct treeherder_expectation {
  std::vector<std::pair<std::string, std::string>> jobs; ///< (id, routing key)
  std::map<std::string, nlohmann::json> definitions;     ///< by task id
};

/// A generated storm.
struct workload {
  std::vector<std::string> requests; ///< complete HTTP requests, shuffled
  std::size_t events = 0;            ///< events in all requests
  /// API path (/api/v1/builds/<key>) -> the final state the build must have.
  std::map<std::string, std::string> expected;
  /// Index in `requests` of each request holding build.finished events -> their build keys.
  std::unordered_map<std::size_t, std::vector<std::string>> finish_of;
  /// After the storm: each build's requests in order (commands and messages), each
  /// answered 200, 202 or 409 (a command that does not apply to a settled build).
  std::vector<std::vector<std::string>> afterwards;
  /// API path -> the value of its statistic `duration`, when the storm sent one.
  std::map<std::string, double> statistics;
  treeherder_expectation treeherder;
};

/// The storm `m` describes: each source's part, shuffled among the others'.
workload generate(const mix& m);

/// Leaves out the requests finishing `n` builds (chosen by `seed`): those builds stay
/// running, which verification must catch. Fault injection for testing the storm.
/// Returns the keys of the builds whose finish was dropped.
std::vector<std::string> drop_finishes(workload& w, std::size_t n, unsigned seed);

/// Requests the generator makes per unit of `m.builds` (each source's builds together,
/// commands after the storm included), measured on a sample: what sizes a storm to a
/// rate and a duration.
double requests_per_build(mix m);

} // namespace bt::storm
