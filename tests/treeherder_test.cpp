// Taskcluster task events → Treeherder job messages (SPEC §3.2, the reference
// mapping of taskcluster-treeherder with its marked bugs fixed). Every message a test
// expects published is checked against pulse-job.schema.yml with valijson.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "sources/treeherder.hpp"
#include "support/json_schema.hpp"
#include "tests/fixtures.hpp"
#include "tests/schemas.hpp"

using namespace bt::sources::treeherder;
using nlohmann::json;

namespace {

const std::string root = "https://tc.example.com";
const std::string revision = "918d7c84da371bda26460fb4b50f161d32107880";

using bt::test::schema;

const bt::support::json_schema& job_schema() {
  static auto s = schema("pulse-job.schema.yml");
  return s;
}
const bt::support::json_schema& config_schema() {
  static auto s = schema("task-treeherder-config.schema.yml");
  return s;
}

settings mapping_settings() {
  return {"tc-treeherder", root, &config_schema(), &job_schema()};
}

/// A task definition as the queue answers it, routed to mozilla-central (hg).
json task(const std::string& route = "tc-treeherder.v2.mozilla-central." + revision + ".123") {
  return {{"created", "2019-06-26T19:26:00.000Z"},
          {"workerType", "gecko-t-osx-1014"},
          {"routes", {"index.gecko.v2.mozilla-central.latest", route}},
          {"metadata",
           {{"name", "test-macosx1014-64-shippable/opt-raptor-tp6-7"},
            {"owner", "ffxbld@mozilla.com"},
            {"description", "Raptor tp6-7"},
            {"source", "https://hg.mozilla.org/mozilla-central"}}},
          {"extra",
           {{"treeherder",
             {{"symbol", "tp6-7"},
              {"groupSymbol", "Rap"},
              {"groupName", "Raptor performance tests on Firefox"},
              {"machine", {{"platform", "macosx1014-64-shippable"}}},
              {"collection", {{"opt", true}}},
              {"tier", 1},
              {"jobKind", "test"}}}}}};
}

/// A fixture's pulse envelope.
json envelope(const std::string& name) {
  return json::parse(bt::test::fixture("taskcluster/" + name + ".json"));
}

mapping map(const json& env, const json& definition = task(),
            const std::map<std::int64_t, std::vector<std::string>>& artifacts = {}) {
  auto e = event_of_exchange(env.at("exchange").get<std::string>());
  EXPECT_TRUE(e);
  return map_task_event(*e, env.at("payload"), definition, artifacts, mapping_settings());
}

/// The one message of a mapping, checked against the schema.
json only_job(const mapping& m) {
  EXPECT_TRUE(m.skipped.empty()) << to_string(m.skipped.front().reason) << " "
                                 << m.skipped.front().detail;
  EXPECT_EQ(m.jobs.size(), 1u);
  if (m.jobs.empty())
    return {};
  EXPECT_TRUE(job_schema().accepts(m.jobs[0].payload)) << m.jobs[0].payload.dump(2);
  return m.jobs[0].payload;
}

std::string log_url(const std::string& slug, int run) {
  return root + "/api/queue/v1/task/" + slug + "/runs/" + std::to_string(run)
         + "/artifacts/public/logs/live_backing.log";
}

} // namespace

TEST(treeherder, slugs_decode_to_uuids) {
  EXPECT_EQ(slug_to_uuid("5UMTRzgESFG3Bn8kCBwxxQ"), "e5431347-3804-4851-b706-7f24081c31c5");
  EXPECT_EQ(slug_to_uuid("A35mWTRuQmyj88yMnIF0fA"), "037e6659-346e-426c-a3f3-cc8c9c81747c");
  EXPECT_EQ(slug_to_uuid("B3EheQ-IQ5aPzw34KS_a6g"), "07712179-0f88-4396-8fcf-0df8292fdaea");
  EXPECT_EQ(slug_to_uuid("AJBb7wqZT6K9kz4niYAatg"), "00905bef-0a99-4fa2-bd93-3e2789801ab6");
  EXPECT_FALSE(slug_to_uuid("AJBb7wqZT6K9kz4niYAat"));   // 21 characters
  EXPECT_FALSE(slug_to_uuid("AJBb7wqZT6K9kz4niYAat+"));  // not URL-safe base64
  EXPECT_FALSE(slug_to_uuid("AJBb7wqZT6K9kz4niYAath"));  // padding bits set
}

TEST(treeherder, routes) {
  auto parsed = [](std::vector<std::string> routes) { return parse_route(routes, "tc-treeherder"); };
  auto reason = [&](std::vector<std::string> routes) {
    auto r = parsed(std::move(routes));
    return std::holds_alternative<skip>(r) ? to_string(std::get<skip>(r).reason) : "parsed";
  };
  auto hg = std::get<route>(parsed({"index.x", "tc-treeherder.v2.try.abc.455891"}));
  EXPECT_EQ(hg.destination, "tc-treeherder");
  EXPECT_EQ(hg.project, "try");
  EXPECT_EQ(hg.revision, "abc");
  EXPECT_EQ(hg.push_id, 455891);
  EXPECT_TRUE(hg.owner.empty());
  EXPECT_FALSE(std::get<route>(parsed({"tc-treeherder.v2.autoland.abc"})).push_id);
  EXPECT_FALSE(std::get<route>(parsed({"tc-treeherder.v2.autoland.abc."})).push_id);
  EXPECT_EQ(std::get<route>(parsed({"tc-treeherder.v2.autoland.abc.0"})).push_id, 0);
  auto gh = std::get<route>(parsed({"tc-treeherder.v2.mozilla-mobile/fenix.abc.7"}));
  EXPECT_EQ(gh.owner, "mozilla-mobile");
  EXPECT_EQ(gh.project, "fenix");
  EXPECT_EQ(gh.push_id, 7);
  EXPECT_EQ(std::get<route>(parsed({"tc-treeherder.v2._/servo-auto.abc"})).owner, "_");
  EXPECT_EQ(reason({}), "missing_route");
  EXPECT_EQ(reason({"tc-treeherder-staging.v2.try.abc"}), "missing_route") << "whole words";
  EXPECT_EQ(reason({"tc-treeherder.v2.try.abc", "tc-treeherder.v2.try.def"}), "ambiguous_route");
  EXPECT_EQ(reason({"tc-treeherder.try.abc"}), "v1_route");
  EXPECT_EQ(reason({"tc-treeherder.try"}), "malformed_route");
  EXPECT_EQ(reason({"tc-treeherder"}), "malformed_route");
  EXPECT_EQ(reason({"tc-treeherder.v3.try.abc.1"}), "malformed_route");
  EXPECT_EQ(reason({"tc-treeherder.v2.try.abc.1.extra"}), "malformed_route");
  EXPECT_EQ(reason({"tc-treeherder.v2.try.abc.12x"}), "malformed_route");
  EXPECT_EQ(reason({"tc-treeherder.v2.try.abc.-1"}), "malformed_route");
  EXPECT_EQ(reason({"tc-treeherder.v2.a/b/c.abc"}), "malformed_route");
  EXPECT_EQ(reason({"tc-treeherder.v2.a/.abc"}), "malformed_route");
  EXPECT_EQ(reason({"tc-treeherder.v2..abc"}), "malformed_route");
}

// The reference's §7.1 job, in full: the completed fixture of a task routed to
// mozilla-central with a push id.
TEST(treeherder, a_completed_task_is_the_reference_job) {
  auto m = map(envelope("task-completed"), task(),
               {{0, {"public/logs/live_backing.log", "public/build/target.dmg",
                     "private/logs/live_backing.log", "public/dir/"}}});
  auto job = only_job(m);
  ASSERT_EQ(m.jobs.size(), 1u);
  EXPECT_EQ(m.jobs[0].routing_key, "tc-treeherder.mozilla-central._");
  EXPECT_EQ(m.jobs[0].id, "07712179-0f88-4396-8fcf-0df8292fdaea/0:completed:success");
  auto artifact = [](const std::string& name) {
    return root + "/api/queue/v1/task/B3EheQ-IQ5aPzw34KS_a6g/runs/0/artifacts/" + name;
  };
  json expected = {
    {"buildSystem", "taskcluster"},
    {"owner", "ffxbld@mozilla.com"},
    {"taskId", "07712179-0f88-4396-8fcf-0df8292fdaea/0"},
    {"retryId", 0},
    {"isRetried", false},
    {"display",
     {{"jobSymbol", "tp6-7"},
      {"groupSymbol", "Rap"},
      {"groupName", "Raptor performance tests on Firefox"},
      {"jobName", "test-macosx1014-64-shippable/opt-raptor-tp6-7"}}},
    {"state", "completed"},
    {"result", "success"},
    {"tier", 1},
    {"timeScheduled", "2019-06-26T19:26:00.000Z"},
    {"timeStarted", "2019-06-26T19:27:48.307Z"},
    {"timeCompleted", "2019-06-26T19:36:10.521Z"},
    {"jobKind", "test"},
    {"reason", "scheduled"},
    {"jobInfo",
     {{"summary", "Raptor tp6-7"},
      {"links",
       {{{"label", "artifact uploaded"}, {"linkText", "live_backing.log"},
         {"url", artifact("public/logs/live_backing.log")}},
        {{"label", "artifact uploaded"}, {"linkText", "target.dmg"},
         {"url", artifact("public/build/target.dmg")}},
        {{"label", "artifact uploaded"}, {"linkText", "live_backing.log (1)"},
         {"url", artifact("private/logs/live_backing.log")}}}}}},
    {"origin",
     {{"kind", "hg.mozilla.org"}, {"project", "mozilla-central"}, {"revision", revision},
      {"pushLogID", 123}}},
    {"labels", {"opt"}},
    {"buildMachine",
     {{"name", "t-mojave-r7-153"}, {"platform", "macosx1014-64-shippable"}, {"os", "-"},
      {"architecture", "-"}}},
    {"logs", {{{"name", "builds-4h"}, {"url", log_url("B3EheQ-IQ5aPzw34KS_a6g", 0)}}}},
    {"version", 1},
  };
  EXPECT_EQ(job, expected) << job.dump(2);
}

TEST(treeherder, pending_and_running_have_no_logs_or_links) {
  auto pending = only_job(map(envelope("task-pending")));
  EXPECT_EQ(pending["state"], "pending");
  EXPECT_EQ(pending["result"], "unknown");
  EXPECT_EQ(pending["taskId"], "037e6659-346e-426c-a3f3-cc8c9c81747c/0");
  EXPECT_EQ(pending["buildMachine"]["name"], "unknown");
  EXPECT_FALSE(pending.contains("logs"));
  EXPECT_FALSE(pending.contains("timeStarted"));
  auto running = only_job(map(envelope("task-running")));
  EXPECT_EQ(running["state"], "running");
  EXPECT_EQ(running["result"], "unknown");
  EXPECT_EQ(running["timeStarted"], "2019-06-26T19:36:11.066Z");
  EXPECT_EQ(running["buildMachine"]["name"], "i-0429b6e2c0ac7474d");
  EXPECT_FALSE(running.contains("logs"));
  EXPECT_FALSE(running.contains("timeCompleted"));
}

TEST(treeherder, failed_and_exceptions) {
  auto failed = only_job(map(envelope("task-failed")));
  EXPECT_EQ(failed["state"], "completed");
  EXPECT_EQ(failed["result"], "fail");
  EXPECT_EQ(failed["logs"][0]["url"], log_url("KYZKwkbvRc-qPE22g286yQ", 0));
  auto canceled = only_job(map(envelope("task-exception-canceled")));
  EXPECT_EQ(canceled["state"], "completed");
  EXPECT_EQ(canceled["result"], "canceled");
  EXPECT_EQ(canceled["logs"], json::array()) << "no link to a log that may not exist";
  EXPECT_EQ(canceled["timeStarted"], "2019-06-26T18:48:50.697Z");
  EXPECT_FALSE(canceled["isRetried"]);
  // A run the queue made only to record the deadline: nothing to report.
  auto deadline = map(envelope("task-exception-deadline"));
  EXPECT_TRUE(deadline.jobs.empty());
  ASSERT_EQ(deadline.skipped.size(), 1u);
  EXPECT_EQ(deadline.skipped[0].reason, skip_reason::exception_run);
  // task-defined is read and publishes nothing (Treeherder skips unscheduled jobs).
  auto defined = map(envelope("task-defined"));
  EXPECT_TRUE(defined.jobs.empty());
  EXPECT_TRUE(defined.skipped.empty());
}

TEST(treeherder, a_github_route_gives_a_github_origin) {
  auto definition = task("tc-treeherder.v2.mozilla-mobile/fenix." + revision + ".42");
  auto m = map(envelope("task-running"), definition);
  auto job = only_job(m);
  EXPECT_EQ(job["origin"], (json{{"kind", "github.com"}, {"project", "fenix"}, {"owner", "mozilla-mobile"},
                                 {"revision", revision}, {"pullRequestID", 42}}));
  EXPECT_EQ(m.jobs.at(0).routing_key, "tc-treeherder.fenix._");
}

namespace {

/// A task that ran twice: run 0 ended by worker-shutdown, run 1 was created for
/// `created` (`retry` when the queue retried it). `run_id` is the run the message on
/// `exchange` is about: the queue sends an exception for run 0 (since 2024-09), then
/// the pending of run 1 (in both eras).
json retried(const std::string& exchange, int run_id, const std::string& created = "retry") {
  json runs = {{{"runId", 0},
                {"state", "exception"},
                {"reasonCreated", "scheduled"},
                {"reasonResolved", "worker-shutdown"},
                {"scheduled", "2019-06-26T19:20:15.078Z"},
                {"started", "2019-06-26T19:23:49.524Z"},
                {"resolved", "2019-06-26T19:30:04.986Z"},
                {"workerGroup", "us-west-1"},
                {"workerId", "i-0123"}},
               {{"runId", 1},
                {"state", "pending"},
                {"reasonCreated", created},
                {"scheduled", "2019-06-26T19:30:05.000Z"}}};
  return {{"exchange", "exchange/taskcluster-queue/v1/" + exchange},
          {"payload",
           {{"runId", run_id},
            {"version", 1},
            {"status",
             {{"taskId", "5UMTRzgESFG3Bn8kCBwxxQ"},
              {"state", "pending"},
              {"retriesLeft", 4},
              {"runs", runs}}}}}};
}

} // namespace

// Before 2024-09 the queue sent only run 1's pending: the run it replaces is reported
// retried from it. Since then the exception for run 0 comes first, saying so itself;
// the pending that follows makes the very same message (same id), which the exchange
// takes once.
TEST(treeherder, retries_are_reported_in_both_queue_eras_as_one_message) {
  std::map<std::int64_t, std::vector<std::string>> artifacts{{0, {"public/logs/live.log"}}};
  auto before_2024 = map(retried("task-pending", 1), task(), artifacts);
  ASSERT_EQ(before_2024.jobs.size(), 2u);
  auto& old_run = before_2024.jobs[0];
  EXPECT_EQ(old_run.id, "e5431347-3804-4851-b706-7f24081c31c5/0:completed:exception:retried");
  EXPECT_TRUE(old_run.payload["isRetried"]);
  EXPECT_EQ(old_run.payload["retryId"], 0);
  EXPECT_EQ(old_run.payload["logs"], json::array());
  EXPECT_EQ(old_run.payload["jobInfo"]["links"].size(), 1u);
  EXPECT_EQ(before_2024.jobs[1].id, "e5431347-3804-4851-b706-7f24081c31c5/1:pending:unknown");
  EXPECT_EQ(before_2024.jobs[1].payload["retryId"], 1);
  for (auto& j : before_2024.jobs)
    EXPECT_TRUE(job_schema().accepts(j.payload)) << j.payload.dump(2);
  auto since_2024 = map(retried("task-exception", 0), task(), artifacts);
  ASSERT_EQ(since_2024.jobs.size(), 1u);
  EXPECT_EQ(since_2024.jobs[0].id, old_run.id);
  EXPECT_EQ(since_2024.jobs[0].payload, old_run.payload);
  // The same exception with no retry after it: plain exception, not retried.
  auto last = retried("task-exception", 0);
  last["payload"]["status"]["runs"].erase(1);
  auto job = only_job(map(last));
  EXPECT_EQ(job["result"], "exception");
  EXPECT_FALSE(job["isRetried"]);
  // A manual rerun is not a retry: the run before it was reported when it ended.
  auto rerun = map(retried("task-pending", 1, "rerun"));
  ASSERT_EQ(rerun.jobs.size(), 1u);
  EXPECT_EQ(rerun.jobs[0].payload["state"], "pending");
  EXPECT_EQ(runs_to_list(queue_event::pending, retried("task-pending", 1, "rerun")["payload"]),
            std::vector<std::int64_t>{});
  EXPECT_EQ(runs_to_list(queue_event::pending, retried("task-pending", 1)["payload"]),
            std::vector<std::int64_t>{0});
}

TEST(treeherder, configs_that_fail_are_skipped_with_the_reason) {
  auto reason_for = [](json definition) {
    auto m = map(envelope("task-completed"), definition);
    EXPECT_TRUE(m.jobs.empty());
    return m.skipped.empty() ? std::string{"published"} : std::string{to_string(m.skipped[0].reason)};
  };
  auto with = [](auto change) {
    auto t = task();
    change(t);
    return t;
  };
  EXPECT_EQ(reason_for(with([](json& t) { t.erase("extra"); })), "missing_config");
  EXPECT_EQ(reason_for(with([](json& t) { t["extra"]["treeherder"].erase("symbol"); })), "invalid_config");
  EXPECT_EQ(reason_for(with([](json& t) { t["extra"]["treeherder"]["symbol"] = 3; })), "invalid_config");
  EXPECT_EQ(reason_for(with([](json& t) { t["extra"]["treeherder"]["tier"] = 4; })), "invalid_config");
  EXPECT_EQ(reason_for(with([](json& t) { t["extra"]["treeherder"]["groupSymbol"] = ""; })), "invalid_config");
  EXPECT_EQ(reason_for(with([](json& t) { t["extra"]["treeherder"]["machine"] = json::object(); })),
            "invalid_config");
  EXPECT_EQ(reason_for(with([](json& t) { t["extra"]["treeherder"] = "tp6"; })), "invalid_config");
  EXPECT_EQ(reason_for(with([](json& t) { t["routes"] = json::array(); })), "missing_route");
  EXPECT_EQ(reason_for(task("tc-treeherder.mozilla-central." + revision)), "v1_route");
  // Valid configs can still make invalid jobs: a collection key is not a label, an
  // hg revision must be 40 hex digits; a project longer than a routing key word.
  EXPECT_EQ(reason_for(with([](json& t) {
              t["extra"]["treeherder"]["collection"] = {{"not a label", true}};
            })),
            "invalid_job");
  EXPECT_EQ(reason_for(task("tc-treeherder.v2.mozilla-central.abc")), "invalid_job");
  EXPECT_EQ(reason_for(task("tc-treeherder.v2.a-project-name-over-25-chars." + revision)),
            "routing_key");
}

TEST(treeherder, names_are_cut_to_the_schema_and_links_are_uris) {
  auto definition = task();
  definition["metadata"]["name"] = std::string(98, 'n') + "é€x"; // 101 code points
  definition["metadata"]["owner"] = std::string(60, 'o');
  auto m = map(envelope("task-completed"), definition, {{0, {"public/a b?.txt"}}});
  auto job = only_job(m);
  EXPECT_EQ(job["display"]["jobName"], std::string(98, 'n') + "é€");
  EXPECT_EQ(job["owner"], std::string(50, 'o'));
  EXPECT_EQ(job["jobInfo"]["links"][0]["linkText"], "a b?.txt");
  EXPECT_EQ(job["jobInfo"]["links"][0]["url"],
            root + "/api/queue/v1/task/B3EheQ-IQ5aPzw34KS_a6g/runs/0/artifacts/public/a%20b%3F.txt");
}

TEST(json_schema, yaml_scalars_keep_their_types_and_problems_name_the_place) {
  auto doc = bt::support::yaml_to_json("a: '1'\nb: 1\nc: true\nd: ~\ne: 1.5\nf: [x, \"2\"]\n");
  EXPECT_EQ(doc, (json{{"a", "1"}, {"b", 1}, {"c", true}, {"d", nullptr}, {"e", 1.5}, {"f", {"x", "2"}}}));
  std::string error;
  auto s = bt::support::json_schema::parse(
    "type: object\nproperties:\n  when: {type: string, format: date-time}\n"
    "  tags: {type: array, items: {type: string, pattern: '^[a-z]+$'}}\n",
    error);
  ASSERT_TRUE(s) << error;
  EXPECT_TRUE(s->accepts(json{{"when", "2019-06-26T19:26:00.000Z"}, {"tags", {"ok"}}}));
  auto problems = s->problems(json{{"when", "yesterday"}, {"tags", {"ok", "Not/ok"}}});
  ASSERT_FALSE(problems.empty());
  std::string all;
  for (auto& p : problems)
    all += p + "\n";
  EXPECT_NE(all.find("/when"), std::string::npos) << all;
  EXPECT_NE(all.find("/tags/1"), std::string::npos) << all;
  // Date and time formats are checked as valijson checks them (as patterns, which it
  // compiles once): months have their lengths, offsets their hours.
  auto times = bt::support::json_schema::parse(
    "type: object\nproperties:\n  at: {type: string, format: date-time}\n"
    "  day: {type: string, format: date, pattern: '^2019'}\n  clock: {type: string, format: time}\n",
    error);
  ASSERT_TRUE(times) << error;
  for (auto good : {"2019-02-29T23:59:60.5Z", "2019-12-31t00:00:00+02:00", "2019-04-30T10:00:00-11:30"})
    EXPECT_TRUE(times->accepts(json{{"at", good}})) << good;
  for (auto bad : {"2019-02-30T00:00:00Z", "2019-04-31T00:00:00Z", "2019-13-01T00:00:00Z",
                   "2019-01-01T24:00:00Z", "2019-01-01 00:00:00Z", "2019-01-01T00:00:00"})
    EXPECT_FALSE(times->accepts(json{{"at", bad}})) << bad;
  EXPECT_TRUE(times->accepts(json{{"day", "2019-06-30"}, {"clock", "16:52:45Z"}}));
  EXPECT_FALSE(times->accepts(json{{"day", "2019-06-31"}}));
  EXPECT_FALSE(times->accepts(json{{"day", "2020-06-30"}})) << "its own pattern still holds";
  EXPECT_FALSE(times->accepts(json{{"clock", "16:52"}}));
  EXPECT_FALSE(bt::support::json_schema::parse("- just\n- a list\n", error));
  EXPECT_FALSE(bt::support::json_schema::parse("type: [unclosed\n", error));
  EXPECT_FALSE(error.empty());
  EXPECT_FALSE(bt::support::json_schema::load("/nonexistent/schema.yml", error));
  EXPECT_NE(error.find("/nonexistent/schema.yml"), std::string::npos);
}
