// POST /webhooks/cdevents end to end (SPEC §3.5): the whole service on a real
// redis-server behind the real Beast server, CDEvents posted as CloudEvents in both
// HTTP modes.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/api_fixture.hpp"
#include "storm/cdevents_events.hpp"
#include "tests/eventually.hpp"
#include "tests/fixtures.hpp"
#include "tests/redis_server.hpp"

using namespace bt;
using nlohmann::json;
namespace fake = bt::storm::cdevents;

namespace {

const std::string token = "cdevents-secret";

struct cdevents_api : test::api_fixture {
  test::redis_server redis;

  cdevents_api()
    : api_fixture{[] {
        config::config c;
        c.cdevents.token = token;
        return c;
      }()} {}
  void SetUp() override {
    store = redis_store_on(redis);
    api_fixture::SetUp();
  }

  test::http_client::reply post(fake::request r, const std::string& auth = "Bearer " + token) {
    r.headers["Authorization"] = auth;
    return client().post("/webhooks/cdevents", r.body, r.headers);
  }

  /// Posts `r` and expects it accepted.
  void accept(const fake::request& r) {
    auto reply = post(r);
    ASSERT_EQ(reply.status, 202) << reply.body;
  }

  json build(const std::string& key) {
    auto r = client().get("/api/v1/builds/" + key);
    return r.status == 200 ? json::parse(r.body) : json{};
  }

  long long metric(const std::string& series) {
    auto text = client().get("/metrics").body;
    auto at = text.find("\n" + series + " ");
    return at == std::string::npos ? 0 : std::stoll(text.substr(at + series.size() + 2));
  }
};

/// A job of a build document by name.
json job_named(const json& build, const std::string& name) {
  for (auto& j : build["jobs"])
    if (j["name"] == name)
      return j;
  return json{};
}

} // namespace

// Each conformance example of the spec is accepted in both modes. They all share one
// CloudEvent id, so past the first each is a redelivery of it; given ids of their
// own, the pipelineRun ones make the build and the taskRun ones its job. A CDEvent
// of another type is acknowledged and counted.
TEST_F(cdevents_api, conformance_examples_are_accepted_in_both_modes) {
  std::vector<json> examples;
  for (auto name : {"pipelinerun_queued", "pipelinerun_started", "pipelinerun_finished",
                    "taskrun_started", "taskrun_finished"}) {
    examples.push_back(json::parse(test::fixture(std::string{"cdevents/"} + name + ".json")));
    for (auto& r : {fake::binary(examples.back()), fake::structured(examples.back())}) {
      auto reply = post(r);
      EXPECT_EQ(reply.status, 202) << name << ": " << reply.body;
    }
  }
  ASSERT_TRUE(test::eventually([&] { return build("cdevents/myPipeline/mySubject123")["pipeline_name"] == "myPipeline"; }));
  int n = 0;
  for (auto& doc : examples) {
    doc["context"]["id"] = "own-" + std::to_string(++n);
    if (doc["subject"]["type"] == "taskRun") {
      doc["subject"]["content"]["pipelineRun"]["id"] = "run-2";
      doc["subject"]["id"] = "task-run-2";
    } else {
      doc["subject"]["id"] = "run-2";
    }
    accept(n % 2 ? fake::binary(doc) : fake::structured(doc));
  }
  ASSERT_TRUE(test::eventually([&] { return build("cdevents/myPipeline/run-2")["jobs"].size() == 1; }));
  auto b = build("cdevents/myPipeline/run-2");
  EXPECT_EQ(b["state"], "failed") << "the example's outcome: " << b.dump(2);
  EXPECT_EQ(b["url"], "https://www.example.com/mySubject123");
  EXPECT_EQ(job_named(b, "myTask")["state"], "failed") << "its taskRun's outcome is failure";
  auto other = post(fake::binary(fake::event("artifact.published", "a1", "pkg:oci/app", json::object())));
  EXPECT_EQ(other.status, 200) << other.body;
  EXPECT_EQ(json::parse(other.body)["status"], "ignored");
  EXPECT_EQ(metric(R"(buildtrack_events_total{source="cdevents",type="other",outcome="ignored"})"), 1);
  EXPECT_EQ(metric(R"(buildtrack_events_total{source="cdevents",type="pipelinerun.finished",outcome="accepted"})"), 3);
}

// A pipeline run with three tasks, one failing and one retried green, some taskRuns
// before the pipelineRun itself (kept, not dropped), in a batch and one by one; a
// redelivered CloudEvent changes nothing.
TEST_F(cdevents_api, a_pipeline_run_with_a_failing_and_a_retried_task_ends_failed_with_its_jobs) {
  const std::string run = "deploy-x7k2p";
  // Out of order: the first taskRuns come before the pipelineRun is known.
  accept(fake::batch({fake::task_run("started", "e1", run + "-build", "build", run),
                      fake::task_run("finished", "e2", run + "-build", "build", run, "success")}));
  // The retry's event comes first; the sender's clock puts it after the failed run.
  auto retry = fake::task_run("finished", "e4", run + "-test-2", "test", run, "success");
  retry["context"]["timestamp"] = "2026-11-30T10:05:00Z";
  accept(fake::binary(retry));
  accept(fake::structured(fake::task_run("finished", "e3", run + "-test-1", "test", run, "failure")));
  accept(fake::binary(fake::pipeline_run("started", "e0", run, "deploy")));
  accept(fake::binary(fake::task_run("finished", "e5", run + "-lint", "lint", run, "failure")));
  accept(fake::structured(fake::pipeline_run("finished", "e6", run, "deploy", "failure")));
  auto key = "cdevents/deploy/" + run;
  ASSERT_TRUE(test::eventually([&] {
    auto b = build(key);
    return b["state"] == "failed" && b["jobs"].size() == 3;
  })) << build(key).dump(2);
  auto b = build(key);
  EXPECT_EQ(b["failed_jobs"], json::array({"lint"}));
  EXPECT_EQ(b["fixed_jobs"], json::array({"test"}));
  EXPECT_EQ(job_named(b, "build")["state"], "passed");
  EXPECT_EQ(job_named(b, "test")["attempts"].size(), 2u);
  EXPECT_EQ(job_named(b, "test")["state"], "passed");
  EXPECT_EQ(metric("buildtrack_unlinked_events"), 0);
  // Redelivered: the same CloudEvent id is a duplicate, whatever mode it comes in.
  auto revision = b["revision"];
  accept(fake::binary(fake::task_run("finished", "e5", run + "-lint", "lint", run, "failure")));
  accept(fake::structured(fake::task_run("finished", "e3", run + "-test-1", "test", run, "failure")));
  accept(fake::binary(fake::pipeline_run("finished", "e6", run, "deploy", "failure")));
  // One more event behind them, in the same build: once it shows, they were applied.
  accept(fake::binary(fake::task_run("started", "e7", run + "-docs", "docs", run)));
  ASSERT_TRUE(test::eventually([&] { return build(key)["jobs"].size() == 4; }));
  auto again = build(key);
  EXPECT_EQ(again["revision"], revision);
  EXPECT_EQ(job_named(again, "test")["attempts"], job_named(b, "test")["attempts"]);
  EXPECT_EQ(job_named(again, "lint"), job_named(b, "lint"));
}

// Credentials first: a wrong token is 401 before the body is looked at; an invalid
// CDEvent is 422 naming its field, and nothing of it is kept.
TEST_F(cdevents_api, a_wrong_token_is_401_and_an_invalid_cdevent_is_422_with_the_field) {
  auto good = fake::pipeline_run("started", "e1", "run-1", "deploy");
  auto denied = post(fake::binary(good), "Bearer wrong");
  EXPECT_EQ(denied.status, 401);
  EXPECT_EQ(json::parse(denied.body)["error"]["field"], "Authorization");
  auto no_auth = client().post("/webhooks/cdevents", "{not json", {{"Content-Type", "application/json"}});
  EXPECT_EQ(no_auth.status, 401) << "credentials before anything else";
  auto bad = good;
  bad["subject"]["content"]["url"] = json::array();
  auto refused = post(fake::structured(bad));
  EXPECT_EQ(refused.status, 422) << refused.body;
  EXPECT_EQ(json::parse(refused.body)["error"]["field"], "data.subject.content.url");
  auto mismatch = fake::binary(good);
  mismatch.headers["ce-id"] = "e2";
  auto refused_header = post(mismatch);
  EXPECT_EQ(refused_header.status, 422);
  EXPECT_EQ(json::parse(refused_header.body)["error"]["field"], "ce-id");
  EXPECT_EQ(client().get("/api/v1/builds/cdevents/deploy/run-1").status, 404);
}
