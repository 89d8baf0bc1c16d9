// Taskcluster queue messages as the source reads them (SPEC §3.2): checked, then the
// model's job events (task group = build, task = job, run = attempt).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "model/build.hpp"
#include "sources/taskcluster.hpp"
#include "tests/fixtures.hpp"

using namespace bt;
using namespace bt::sources::taskcluster;
using nlohmann::json;

namespace {

task_message parsed(const std::string& body) {
  auto m = parse_message(body);
  if (auto* r = std::get_if<sources::rejection>(&m))
    throw std::runtime_error{r->field + ": " + r->message};
  return std::get<task_message>(m);
}

std::string fixture(const std::string& name) {
  return test::fixture("taskcluster/" + name + ".json");
}

/// The field a refused message is refused for, with its status.
std::pair<int, std::string> refusal(const json& message) {
  auto m = parse_message(message.dump());
  auto* r = std::get_if<sources::rejection>(&m);
  return r ? std::pair{r->status, r->field} : std::pair{0, std::string{"accepted"}};
}

} // namespace

TEST(taskcluster_source, every_fixture_is_read_with_its_build_and_run) {
  for (auto name : {"task-defined", "task-pending", "task-running", "task-completed", "task-failed",
                    "task-exception-canceled", "task-exception-deadline"}) {
    auto body = fixture(name);
    auto m = parsed(body);
    auto doc = json::parse(body);
    EXPECT_EQ(std::string{"task-"} + std::string{sources::treeherder::to_string(m.event)},
              std::string{name}.substr(0, std::string{name}.find('-', 5)))
      << name;
    EXPECT_EQ(m.task_id, doc["payload"]["status"]["taskId"]);
    EXPECT_EQ(build_of(m).str(), "taskcluster/" + doc["payload"]["status"]["schedulerId"].get<std::string>()
                                   + "/" + doc["payload"]["status"]["taskGroupId"].get<std::string>());
    EXPECT_EQ(json::parse(m.payload), doc["payload"]) << "the payload is kept whole";
  }
  EXPECT_EQ(parsed(fixture("task-defined")).run_id, -1);
  EXPECT_TRUE(parsed(fixture("task-defined")).runs.empty());
  EXPECT_EQ(parsed(fixture("task-completed")).run_id, 0);
}

TEST(taskcluster_source, runs_become_attempts_with_the_queue_s_outcome) {
  auto one = [](const std::string& name) {
    auto events = job_events(parsed(fixture(name)));
    EXPECT_EQ(events.size(), 1u) << name;
    return events.at(0);
  };
  using model::job_state;
  auto completed = one("task-completed");
  EXPECT_EQ(completed.group, "B3EheQ-IQ5aPzw34KS_a6g");
  EXPECT_EQ(completed.report.id, "B3EheQ-IQ5aPzw34KS_a6g/0");
  EXPECT_EQ(completed.report.state, job_state::passed);
  EXPECT_FALSE(completed.report.fails);
  EXPECT_TRUE(completed.report.started && completed.report.finished);
  EXPECT_EQ(one("task-pending").report.state, job_state::scheduled);
  EXPECT_EQ(one("task-running").report.state, job_state::running);
  EXPECT_TRUE(one("task-failed").report.fails);
  auto canceled = one("task-exception-canceled");
  EXPECT_EQ(canceled.report.state, job_state::canceled);
  EXPECT_FALSE(canceled.report.fails);
  EXPECT_EQ(canceled.report.source_state, "exception:canceled");
  auto deadline = one("task-exception-deadline");
  EXPECT_EQ(deadline.report.state, job_state::timed_out);
  EXPECT_TRUE(deadline.report.fails);
}

// A retry in either queue era: whichever message comes, every run is brought up to
// date, and the retry that passes fixes the task.
TEST(taskcluster_source, a_retried_task_is_a_job_fixed_by_its_second_run) {
  auto doc = json::parse(fixture("task-completed"));
  auto& runs = doc["payload"]["status"]["runs"];
  runs[0]["state"] = "exception";
  runs[0]["reasonResolved"] = "worker-shutdown";
  runs.push_back({{"runId", 1}, {"state", "pending"}, {"reasonCreated", "retry"},
                  {"scheduled", "2019-06-26T19:37:00.000Z"}});
  doc["exchange"] = "exchange/taskcluster-queue/v1/task-pending";
  doc["payload"]["runId"] = 1;
  auto pending = job_events(parsed(doc.dump()));
  ASSERT_EQ(pending.size(), 2u);
  EXPECT_EQ(pending[0].report.state, model::job_state::failed);
  EXPECT_EQ(pending[1].report.state, model::job_state::scheduled);
  runs[1]["state"] = "completed";
  runs[1]["reasonResolved"] = "completed";
  doc["exchange"] = "exchange/taskcluster-queue/v1/task-completed";
  model::build b;
  auto key = build_of(parsed(doc.dump()));
  for (auto& e : job_events(parsed(doc.dump())))
    model::apply(b, model::envelope{key, "", {}, std::nullopt, e}, {});
  auto& job = b.jobs.at("B3EheQ-IQ5aPzw34KS_a6g");
  EXPECT_EQ(job.attempts.size(), 2u);
  EXPECT_TRUE(job.fixed());
  EXPECT_FALSE(job.failed());
}

TEST(taskcluster_source, messages_that_are_not_queue_task_messages_are_refused_naming_the_field) {
  auto base = json::parse(fixture("task-completed"));
  auto with = [&](auto change) {
    auto doc = base;
    change(doc);
    return refusal(doc);
  };
  EXPECT_EQ(refusal(base), (std::pair{0, std::string{"accepted"}}));
  EXPECT_EQ(with([](json& d) { d["exchange"] = "exchange/taskcluster-queue/v1/artifact-created"; }),
            (std::pair{422, std::string{"exchange"}}));
  EXPECT_EQ(with([](json& d) { d.erase("payload"); }), (std::pair{422, std::string{"payload"}}));
  EXPECT_EQ(with([](json& d) { d["payload"]["status"]["taskId"] = "not/a-slug"; }),
            (std::pair{422, std::string{"payload.status.taskId"}}));
  EXPECT_EQ(with([](json& d) { d["payload"]["status"]["taskGroupId"] = 7; }),
            (std::pair{422, std::string{"payload.status.taskGroupId"}}));
  EXPECT_EQ(with([](json& d) { d["payload"]["status"]["schedulerId"] = "a/b"; }),
            (std::pair{422, std::string{"payload.status.schedulerId"}}));
  EXPECT_EQ(with([](json& d) { d["payload"]["runId"] = 3; }), (std::pair{422, std::string{"payload.runId"}}));
  EXPECT_EQ(with([](json& d) { d["payload"].erase("runId"); }), (std::pair{422, std::string{"payload.runId"}}));
  EXPECT_EQ(with([](json& d) { d["payload"]["status"]["runs"][0]["runId"] = 4; }),
            (std::pair{422, std::string{"payload.status.runs[0].runId"}}));
  EXPECT_EQ(with([](json& d) { d["payload"]["status"]["runs"][0]["state"] = "done"; }),
            (std::pair{422, std::string{"payload.status.runs[0].state"}}));
  EXPECT_EQ(with([](json& d) { d["payload"]["status"]["runs"][0]["started"] = "yesterday"; }),
            (std::pair{422, std::string{"payload.status.runs[0].started"}}));
  EXPECT_EQ(refusal(json::array()).first, 400);
  EXPECT_EQ(parse_message(R"({"exchange":"a","exchange":"b"})").index(), 1u) << "a duplicate key";
}
