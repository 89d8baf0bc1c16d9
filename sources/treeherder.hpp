#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

namespace bt::support {
class json_schema;
}

/// Taskcluster task events as Treeherder job messages (SPEC §3.2): the mapping of
/// taskcluster-treeherder (its reference §3), pure, with the fixes its reference marks.
/// The Taskcluster source and the exchange publisher do the I/O around it.
namespace bt::sources::treeherder {

/// The queue exchanges a task event comes from (`exchange/taskcluster-queue/v1/task-*`).
enum class queue_event { defined, pending, running, completed, failed, exception };
std::string_view to_string(queue_event e);
/// The event of a queue exchange name; none for any other exchange.
std::optional<queue_event> event_of_exchange(std::string_view exchange);

/// Why a task event, or one of its job messages, is acknowledged but not published.
/// A bounded metric label each. New values go last.
enum class skip_reason {
  missing_route,   ///< no route starts with the prefix
  ambiguous_route, ///< more than one does
  v1_route,        ///< `<prefix>.<project>.<revision>`, dropped by Treeherder in 2018
  malformed_route, ///< not `<prefix>.v2.<project>.<revision>[.<pushId>]`
  missing_config,  ///< no `extra.treeherder`
  invalid_config,  ///< `extra.treeherder` fails task-treeherder-config
  invalid_job,     ///< the job message fails pulse-job
  routing_key,     ///< a routing key word is over 25 characters
  exception_run,   ///< a run the queue made only to record an exception
  unreadable_task, ///< the queue refused to give the task's definition (a 4xx)
};
std::string_view to_string(skip_reason r);

/// A reason with what exactly was wrong, for the log.
struct skip {
  skip_reason reason;
  std::string detail;
};

/// A slugid (22 characters of URL-safe base64, 16 bytes) as a lower-case UUID;
/// none when it is not one.
std::optional<std::string> slug_to_uuid(std::string_view slug);

/// A v2 Treeherder route: `<destination>.v2.<project>.<revision>[.<pushId>]`, where a
/// GitHub project is `<owner>/<repo>`.
struct route {
  std::string destination;
  std::string project; ///< the repository alone for GitHub
  std::string owner;   ///< GitHub's owner; empty for hg
  std::string revision;
  std::optional<std::int64_t> push_id; ///< pushLogID (hg) or pullRequestID (GitHub)
};

/// The one route of `routes` whose first word is `prefix`, parsed.
std::variant<route, skip> parse_route(const std::vector<std::string>& routes,
                                      std::string_view prefix);

/// What the mapping needs besides the event.
struct settings {
  std::string route_prefix = "tc-treeherder";
  /// The deployment's root URL (e.g. `https://firefox-ci-tc.services.mozilla.com`):
  /// log and artifact links go to its queue. No trailing slash.
  std::string root_url;
  const support::json_schema* config_schema = nullptr; ///< task-treeherder-config
  const support::json_schema* job_schema = nullptr;    ///< pulse-job
};

/// One message for the exchange.
struct job_message {
  /// Identifies the message whatever delivered it: the same task run in the same
  /// state with the same result, `<taskId uuid>/<runId>:<state>:<result>[:retried]`.
  /// A redelivered event, or the retried run both queue eras report, makes the same one.
  std::string id;
  std::string routing_key; ///< `<destination>.<project>._`
  nlohmann::json payload;  ///< a pulse-job document
};

/// What one task event becomes: the messages to publish, in order, and what was
/// skipped and why.
struct mapping {
  std::vector<job_message> jobs;
  std::vector<skip> skipped;
};

/// The runs whose artifact listings the mapping links to for this event: the event's
/// run once it ended, and the run a retry replaced.
std::vector<std::int64_t> runs_to_list(queue_event e, const nlohmann::json& payload);

/// The job messages for queue event `e` with pulse `payload` (`runId`, `status`, ...)
/// of the task defined by `task`. `artifacts` holds the artifact names of the runs
/// runs_to_list() named, by run, when listing them worked (else no links).
mapping map_task_event(queue_event e, const nlohmann::json& payload, const nlohmann::json& task,
                       const std::map<std::int64_t, std::vector<std::string>>& artifacts,
                       const settings& s);

} // namespace bt::sources::treeherder
