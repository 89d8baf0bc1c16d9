#pragma once

// Taskcluster as buildtrack meets it, for the storm, tests and benches: queue messages
// of task lives and task definitions routed to Treeherder.

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace bt::storm::taskcluster {


using nlohmann::json;

inline const std::string revision = "5a4f1ba7f4a6e8b1f8e7b5c6d9d0c1b2a3f4e5d6";
inline const std::string exchange = "exchange/taskcluster-treeherder/v1/jobs";
/// Where subscribers of `exchange` connect (the name URL-encoded).
inline const std::string subscribe_path =
  "/api/v1/exchanges/exchange%2Ftaskcluster-treeherder%2Fv1%2Fjobs/subscribe";

/// A slug (22 characters of URL-safe base64 whose last two bits are zero) that
/// differs for each `n`.
inline std::string slug(long n) {
  auto s = std::to_string(n);
  return std::string(21 - s.size(), 'A') + s + "A";
}

/// A task definition routed to Treeherder with `route` (mozilla-central on hg unless
/// told), as the queue answers it; `treeherder` null leaves `extra.treeherder` out.
inline json task_definition(const std::string& route = "tc-treeherder.v2.mozilla-central." + revision + ".123",
                            json treeherder = {{"symbol", "tp6"}, {"groupSymbol", "Rap"},
                                               {"machine", {{"platform", "macosx1014-64-shippable"}}},
                                               {"collection", {{"opt", true}}}, {"tier", 1}}) {
  json t = {{"created", "2019-06-26T19:26:00.000Z"},
            {"workerType", "gecko-t-osx-1014"},
            {"routes", {"index.gecko.v2.mozilla-central.latest", route}},
            {"metadata", {{"name", "test-macosx1014-64-shippable/opt-raptor-tp6"},
                          {"owner", "ffxbld@mozilla.com"},
                          {"description", "Raptor tp6"},
                          {"source", "https://hg.mozilla.org/mozilla-central"}}},
            {"extra", json::object()}};
  if (!treeherder.is_null())
    t["extra"]["treeherder"] = std::move(treeherder);
  return t;
}

/// One run of a task, as a queue message lists it.
inline json run(int id, const std::string& state, const std::string& created,
                const std::string& resolved = "") {
  json r = {{"runId", id}, {"state", state}, {"reasonCreated", created},
            {"scheduled", "2019-06-26T19:26:10.905Z"}};
  if (state != "pending")
    r["started"] = "2019-06-26T19:27:48.307Z";
  if (!resolved.empty()) {
    r["reasonResolved"] = resolved;
    r["resolved"] = "2019-06-26T19:36:10.521Z";
  }
  return r;
}

/// A queue message of `event` (pending, running, completed, failed, exception) about
/// run `run_id` of task `task_id` in group `group`, with the runs as they stand.
inline json queue_message(const std::string& event, const std::string& task_id,
                          const std::string& group, int run_id, json runs) {
  return {{"exchange", "exchange/taskcluster-queue/v1/task-" + event},
          {"routingKey", "primary." + task_id + "." + std::to_string(run_id) + "._._._._._._._"},
          {"routes", json::array()},
          {"payload",
           {{"runId", run_id},
            {"version", 1},
            {"workerGroup", "mdc2"},
            {"workerId", "t-1"},
            {"task", {{"tags", {{"kind", "test"}}}}},
            {"status",
             {{"taskId", task_id},
              {"provisionerId", "releng-hardware"},
              {"workerType", "gecko-t-osx-1014"},
              {"schedulerId", "gecko-level-3"},
              {"taskGroupId", group},
              {"state", runs.back()["state"]},
              {"retriesLeft", 5},
              {"runs", std::move(runs)}}}}}};
}

/// The queue messages of one task's life, in the order the queue sends them. `kind`
/// picks it: 0 passes, 1 fails, 2 is retried after a worker shutdown (the 2024 era:
/// the exception of run 0, then run 1's pending) and passes, 3 is canceled, 4 is
/// rerun by hand after it failed.
inline std::vector<json> task_life(const std::string& task_id, const std::string& group, int kind) {
  std::vector<json> out;
  auto msg = [&](const std::string& event, int run_id, json runs) {
    out.push_back(queue_message(event, task_id, group, run_id, std::move(runs)));
  };
  json runs = json::array({run(0, "pending", "scheduled")});
  // Run 1, created for `why`, from its pending to its completion.
  auto second_run = [&](const std::string& why) {
    runs.push_back(run(1, "pending", why));
    msg("pending", 1, runs);
    runs[1] = run(1, "running", why);
    msg("running", 1, runs);
    runs[1] = run(1, "completed", why, "completed");
    msg("completed", 1, runs);
  };
  msg("pending", 0, runs);
  runs[0] = run(0, "running", "scheduled");
  msg("running", 0, runs);
  switch (kind % 5) {
    case 0:
      runs[0] = run(0, "completed", "scheduled", "completed");
      msg("completed", 0, runs);
      break;
    case 1:
      runs[0] = run(0, "failed", "scheduled", "failed");
      msg("failed", 0, runs);
      break;
    case 2:
      // The 2024 era: the exception names the retry run the queue made already.
      runs[0] = run(0, "exception", "scheduled", "worker-shutdown");
      msg("exception", 0, json::array({runs[0], run(1, "pending", "retry")}));
      second_run("retry");
      break;
    case 3:
      runs[0] = run(0, "exception", "scheduled", "canceled");
      msg("exception", 0, runs);
      break;
    default:
      runs[0] = run(0, "failed", "scheduled", "failed");
      msg("failed", 0, runs);
      second_run("rerun");
      break;
  }
  return out;
}

/// A published job message's id as the publisher names it: `<taskId>:<state>:<result>`
/// and `:retried` for a run a retry replaced.
inline std::string job_id(const json& payload) {
  auto id = payload.at("taskId").get<std::string>() + ":" + payload.at("state").get<std::string>()
            + ":" + payload.at("result").get<std::string>();
  if (payload.value("isRetried", false))
    id += ":retried";
  return id;
}

} // namespace bt::storm::taskcluster
