// The `cdevents` sink end to end (SPEC §6): real buildtrackd processes on a real
// redis-server post CDEvents as CloudEvents, in binary and in structured mode, to a
// local receiver; each is checked against its CDEvents 0.4.1 schema. Sources and
// sinks are independent: Buildkite builds go out as CDEvents, CDEvents-fed builds
// to Slack.
#include <set>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "storm/payloads.hpp"
#include "storm/cdevents_events.hpp"
#include "tests/daemon_process.hpp"
#include "tests/eventually.hpp"
#include "tests/fake_receiver.hpp"
#include "tests/http_client.hpp"
#include "tests/redis_server.hpp"
#include "tests/schemas.hpp"

using namespace bt;
using bt::test::eventually;
using nlohmann::json;
using receiver = test::fake_receiver;
namespace fake = bt::storm::cdevents;

namespace {

const std::string cdevents_token = "cdevents-e2e-token";

/// A CloudEvents receiver that accepts everything.
receiver::answer_fn accept_all() {
  return [](const receiver::request&, std::size_t) { return receiver::answer_t{202, "", {}}; };
}

/// The CDEvent a request carries, checked as the CloudEvents HTTP binding and the
/// CDEvents schema of its type want it; null (with a test failure) when it is not.
json cdevent_of(const receiver::request& r) {
  auto header = [&](const std::string& name) {
    auto it = r.headers.find(name);
    return it == r.headers.end() ? std::string{} : it->second;
  };
  json event, attributes;
  if (r.target == "/structured") {
    EXPECT_EQ(header("Content-Type"), "application/cloudevents+json");
    auto ce = json::parse(r.body);
    event = ce["data"];
    attributes = {{"specversion", ce["specversion"]}, {"id", ce["id"]}, {"source", ce["source"]},
                  {"type", ce["type"]}, {"subject", ce["subject"]}};
    EXPECT_EQ(ce["datacontenttype"], "application/json");
  } else {
    EXPECT_EQ(header("Content-Type"), "application/json");
    event = json::parse(r.body);
    attributes = {{"specversion", header("ce-specversion")}, {"id", header("ce-id")},
                  {"source", header("ce-source")}, {"type", header("ce-type")},
                  {"subject", header("ce-subject")}};
  }
  EXPECT_EQ(attributes["specversion"], "1.0");
  EXPECT_EQ(attributes["id"], event["context"]["id"]);
  EXPECT_EQ(attributes["source"], event["context"]["source"]);
  EXPECT_EQ(attributes["type"], event["context"]["type"]);
  EXPECT_EQ(attributes["subject"], event["subject"]["id"]);
  auto type = event["context"]["type"].get<std::string>();
  auto name = type.starts_with("dev.cdevents.pipelinerun.finished.") ? "pipelinerunfinished"
                                                                      : "taskrunfinished";
  auto problems = test::schema(std::string{"cdevents-0.4.1/"} + name + ".json").problems(event);
  EXPECT_TRUE(problems.empty()) << problems.front() << "\n" << event.dump(2);
  return event;
}

/// The requests `r` got at `target` whose CDEvent is about pipelineRun `run`.
std::vector<json> about(const receiver& r, const std::string& target, const std::string& run) {
  std::vector<json> out;
  for (auto& q : r.requests())
    if (q.target == target) {
      auto e = cdevent_of(q);
      if (e["subject"]["id"] == run)
        out.push_back(std::move(e));
    }
  return out;
}

struct cdevents_e2e : ::testing::Test {
  test::redis_server redis{true};
  unsigned short port = test::redis_server::free_port();
  unsigned short sink_port = test::redis_server::free_port();
  unsigned short slack_port = test::redis_server::free_port();
  std::unique_ptr<test::daemon_process> daemon;

  void start_daemon() {
    std::ostringstream cfg;
    cfg << "server:\n  listen: 127.0.0.1:" << port
        << "\nstore:\n  kind: redis\n  redis:\n    url: " << redis.url()
        << "/0\n  snapshot_interval: 30ms\nsources:\n  buildkite:\n    token: " << payloads::token
        << "\n  cdevents:\n    token: " << cdevents_token
        << "\ntracking:\n  branches: [main]\n  actor_idle_timeout: 50ms"
        << "\nnotifications:"
        // CDEvents name no branch: sinks that want those builds say so.
        << "\n  - name: cd-binary\n    kind: cdevents\n    branches: ['*']"
        << "\n    on: [failed, passed, job_finished]"
        << "\n    url: http://127.0.0.1:" << sink_port << "/binary"
        << "\n    retry: {max_attempts: 20, initial_backoff: 50ms, max_backoff: 200ms}"
        << "\n  - name: cd-structured\n    kind: cdevents\n    mode: structured\n    branches: ['*']"
        << "\n    source: /ci/buildtrack"
        << "\n    url: http://127.0.0.1:" << sink_port << "/structured"
        << "\n    retry: {max_attempts: 20, initial_backoff: 50ms, max_backoff: 200ms}"
        << "\n  - name: slack\n    kind: slack\n    token: xoxb-test\n    channel: C-BUILDS"
        << "\n    branches: ['']\n    on: [failed, passed]"
        << "\n    api_url: http://127.0.0.1:" << slack_port << "/api"
        << "\nlog:\n  level: error\n";
    daemon = std::make_unique<test::daemon_process>(port, cfg.str());
    daemon->start();
  }

  void buildkite(const json& doc) {
    test::http_client c{port};
    auto r = c.post("/webhooks/buildkite", doc.dump(),
                    {{"X-Buildkite-Event", doc["event"].get<std::string>()},
                     {"X-Buildkite-Token", payloads::token}});
    ASSERT_EQ(r.status, 202u) << r.body;
  }

  /// Buildkite build `n` of pipeline `app` on main: one job, failing when told.
  void buildkite_build(int n, bool fails) {
    buildkite(payloads::build_delivery("build.running", "app", n, "running", "main"));
    buildkite(payloads::job_delivery("app", n, 0, 0, true, fails, "main"));
    buildkite(payloads::build_delivery("build.finished", "app", n, fails ? "failed" : "passed", "main"));
  }

  void cdevents(fake::request r) {
    r.headers["Authorization"] = "Bearer " + cdevents_token;
    test::http_client c{port};
    auto reply = c.post("/webhooks/cdevents", r.body, r.headers);
    ASSERT_EQ(reply.status, 202u) << reply.body;
  }

  /// PipelineRun `run` of pipeline `deploy`: two taskRuns, `test` failing when told.
  void pipeline(const std::string& run, bool fails) {
    cdevents(fake::binary(fake::pipeline_run("started", run + ":s", run, "deploy")));
    cdevents(fake::binary(fake::task_run("finished", run + ":b", run + "-build", "build", run, "success")));
    cdevents(fake::structured(fake::task_run("finished", run + ":t", run + "-test", "test", run,
                                             fails ? "failure" : "success")));
    cdevents(fake::binary(fake::pipeline_run("finished", run + ":f", run, "deploy",
                                             fails ? "failure" : "success")));
  }
};

} // namespace

// One schema-valid pipelinerun.finished per finished build in each mode, whatever
// source fed the build, with a taskrun.finished per finished job where the sink asks
// for job_finished; exactly once across a kill -9 between the outbox write and the
// delivery, and across another kill -9 after it.
TEST_F(cdevents_e2e, each_finished_build_is_one_valid_cdevent_per_sink_exactly_once_across_kill_9) {
  receiver sink{sink_port, accept_all()};
  receiver slack{slack_port, [](const receiver::request&, std::size_t n) {
                   return receiver::answer_t{200, json{{"ok", true}, {"channel", "C-BUILDS"},
                                                       {"ts", "1.000" + std::to_string(n)}}.dump(), {}};
                 }};
  sink.stop();
  start_daemon();
  buildkite_build(1, true);
  pipeline("deploy-1", false);
  // 2 builds for each sink, and 1 + 2 job notices for the binary one.
  ASSERT_TRUE(eventually([&] { return redis.integer("HLEN buildtrack:outbox") == 7; }))
    << redis.integer("HLEN buildtrack:outbox");
  daemon->kill9();
  sink.start();
  daemon->start();
  const std::string bk = "buildkite/app/1", cd = "cdevents/deploy/deploy-1";
  auto delivered = [&] {
    return about(sink, "/binary", bk).size() == 1 && about(sink, "/structured", bk).size() == 1
           && about(sink, "/binary", cd).size() == 1 && about(sink, "/structured", cd).size() == 1
           && sink.count() == 7;
  };
  ASSERT_TRUE(eventually(delivered)) << sink.count();
  ASSERT_TRUE(eventually([&] { return redis.integer("HLEN buildtrack:outbox") == 0; }));
  daemon->kill9();
  daemon->start();
  // A barrier: a later build, once it is out, nothing owed for the earlier ones is left.
  buildkite_build(2, false);
  ASSERT_TRUE(eventually([&] { return about(sink, "/structured", "buildkite/app/2").size() == 1
                                      && about(sink, "/binary", "buildkite/app/2").size() == 1; }));
  ASSERT_TRUE(eventually([&] { return sink.count() == 10; })) << "2 builds and a job notice";
  EXPECT_EQ(sink.count(), 10u);

  auto failed = about(sink, "/binary", bk).front();
  EXPECT_EQ(failed["context"]["type"], "dev.cdevents.pipelinerun.finished.0.2.0");
  EXPECT_EQ(failed["context"]["source"], "/buildtrack");
  EXPECT_EQ(failed["subject"]["content"]["outcome"], "failure");
  EXPECT_EQ(failed["subject"]["content"]["pipelineName"], "app");
  auto passed = about(sink, "/structured", cd).front();
  EXPECT_EQ(passed["context"]["source"], "/ci/buildtrack");
  EXPECT_EQ(passed["subject"]["content"]["outcome"], "success");
  EXPECT_EQ(passed["subject"]["content"]["pipelineName"], "deploy");
  // Every event has its own id, the same on each attempt: ids never repeat.
  std::set<std::string> ids;
  std::size_t tasks = 0;
  for (auto& r : sink.requests()) {
    auto e = cdevent_of(r);
    ids.insert(r.target + e["context"]["id"].get<std::string>());
    if (e["subject"]["type"] == "taskRun") {
      ++tasks;
      EXPECT_EQ(r.target, "/binary") << "only that sink asks for job_finished";
      auto& content = e["subject"]["content"];
      EXPECT_EQ(content["outcome"], content["pipelineRun"]["id"] == bk ? "failure" : "success")
        << e.dump(2);
    }
  }
  EXPECT_EQ(ids.size(), sink.count());
  EXPECT_EQ(tasks, 4u) << "app #1's job, deploy-1's two, app #2's job";
  // The CDEvents-fed build went to Slack too (its branch is empty), the Buildkite
  // ones (on main) did not.
  ASSERT_TRUE(eventually([&] { return slack.count() == 1; }));
  EXPECT_NE(slack.requests().front().body.find("deploy-1"), std::string::npos) << slack.requests().front().body;
}
