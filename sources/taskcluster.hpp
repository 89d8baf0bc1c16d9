#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "model/event.hpp"
#include "sources/rejection.hpp"
#include "sources/source.hpp"
#include "sources/treeherder.hpp"

/// Taskcluster queue pulse messages as `POST /webhooks/taskcluster` takes them (SPEC
/// §3.2): checked, and read as the model's job events. A task group is a build, a task
/// a job, a run an attempt.
namespace bt::sources::taskcluster {

/// One run of the task, as the message's status lists it.
struct run {
  std::int64_t id = 0;
  std::string state;           ///< pending, running, completed, failed, exception
  std::string reason_created;  ///< scheduled, retry, task-retry, rerun, exception
  std::string reason_resolved; ///< completed, failed, canceled, deadline-exceeded, ...
  std::optional<model::timestamp> started, resolved;
};

/// A checked queue message: `{exchange, routingKey, routes, payload}`.
struct task_message {
  treeherder::queue_event event = treeherder::queue_event::pending;
  std::string task_id;    ///< a slug
  std::string task_group; ///< a slug
  std::string scheduler;  ///< `schedulerId`
  std::int64_t run_id = -1; ///< -1 for task-defined
  std::vector<run> runs;    ///< in run order
  std::string payload;      ///< the payload's JSON text, for the Treeherder mapping
};

/// Checks a message: 400 when it is not one JSON object, 422 naming the field
/// (`exchange`, `payload.status.taskId`, `payload.runId`, ...) when it is not a queue
/// task message.
checked<task_message> parse_message(std::string_view body);

/// The build a task belongs to: `taskcluster/<schedulerId>/<taskGroupId>`. The group's
/// project is only known from task definitions, which the queue's messages do not
/// carry; the scheduler (e.g. `gecko-level-3`) is in every one.
model::build_key build_of(const task_message& m);

/// A job event per run the message lists, in run order, each with the run's state as
/// of this message: a message of one era or the other, early or late, brings every
/// run up to date (the model drops what it knew already).
std::vector<model::job_event> job_events(const task_message& m);

/// The envelopes of an accepted message: its job events for build_of(m), then the
/// message itself (`body`) for the Treeherder publisher, all received at `now`.
/// `root_url` (may be empty) gives the build its task group's link.
std::vector<model::envelope> envelopes(const task_message& m, std::string_view body,
                                       model::timestamp now, std::string_view root_url);

/// Who takes the message envelopes() relays: the Treeherder publisher.
inline constexpr std::string_view relay = "treeherder";

} // namespace bt::sources::taskcluster

namespace bt::sources {

/// `POST /webhooks/taskcluster` (`Authorization: Bearer <sources.taskcluster.token>`):
/// queue pulse messages; task-defined is acknowledged and ignored.
std::unique_ptr<source> make_taskcluster_source(const config::taskcluster_config& cfg);

} // namespace bt::sources
