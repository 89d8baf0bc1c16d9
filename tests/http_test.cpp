// Drives the real server over loopback HTTP: Beast server, actors, memory store.
#include <chrono>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "actors/service.hpp"
#include "net/routes.hpp"
#include "net/server.hpp"
#include "sources/buildkite.hpp"
#include "store/memory_store.hpp"
#include "tests/fixtures.hpp"
#include "tests/http_client.hpp"

using namespace bt;
using bt::test::fixture;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

const std::string token = "test-token-0123456789";

struct http_test : ::testing::Test {
  config::config cfg = [] {
    config::config c;
    c.server.listen = "127.0.0.1:0";
    c.server.read_timeout = 500ms;
    c.buildkite.token = token;
    return c;
  }();
  std::shared_ptr<store::memory_store> store = std::make_shared<store::memory_store>();
  std::unique_ptr<actors::service> service;
  std::unique_ptr<net::api> api;
  std::unique_ptr<net::server> server;
  unsigned short port = 0;

  void start() {
    service = std::make_unique<actors::service>(cfg, store);
    api = std::make_unique<net::api>(cfg, *service, *store);
    server = std::make_unique<net::server>(cfg.server, *api);
    port = server->start();
  }

  void SetUp() override { start(); }

  void TearDown() override {
    server->stop();
    service.reset();
  }

  std::map<std::string, std::string> hook(const std::string& event) {
    return {{"X-Buildkite-Event", event}, {"X-Buildkite-Token", token}};
  }

  test::http_client client() { return test::http_client{port}; }

  static json with_job(std::string file, std::function<void(json&)> edit) {
    auto doc = json::parse(fixture(file));
    edit(doc);
    return doc;
  }

  static long long unix_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
  }
};

json error_of(const test::http_client::reply& r) {
  return json::parse(r.body)["error"];
}

} // namespace

TEST_F(http_test, missing_and_wrong_token_are_401_good_token_is_202) {
  auto c = client();
  auto body = fixture("buildkite/job.finished.json");
  auto missing = c.post("/webhooks/buildkite", body, {{"X-Buildkite-Event", "job.finished"}});
  EXPECT_EQ(missing.status, 401);
  EXPECT_EQ(error_of(missing)["code"], "missing_credentials");
  auto wrong = c.post("/webhooks/buildkite", body,
                      {{"X-Buildkite-Event", "job.finished"}, {"X-Buildkite-Token", "nope"}});
  EXPECT_EQ(wrong.status, 401);
  EXPECT_EQ(error_of(wrong)["field"], "X-Buildkite-Token");
  // Nothing refused was stored.
  EXPECT_EQ(c.get("/api/v1/builds/buildkite/web-app/4242").status, 404);
  auto good = c.post("/webhooks/buildkite", body, hook("job.finished"));
  EXPECT_EQ(good.status, 202);
  EXPECT_EQ(json::parse(good.body)["accepted"], 1);
  auto read = c.get("/api/v1/builds/buildkite/web-app/4242");
  ASSERT_EQ(read.status, 200);
  auto doc = json::parse(read.body);
  EXPECT_EQ(doc["state"], "running");
  EXPECT_EQ(doc["jobs"][0]["group"], "go-unit");
  EXPECT_EQ(doc["jobs"][0]["attempts"][0]["exit_status"], 1);
}

TEST_F(http_test, good_stale_and_forged_signatures) {
  auto c = client();
  auto body = fixture("buildkite/job.finished.json");
  auto sign = [&](std::string secret, long long at) {
    return std::map<std::string, std::string>{
      {"X-Buildkite-Event", "job.finished"},
      {"X-Buildkite-Signature", sources::buildkite_signature(secret, at, body)}};
  };
  auto stale = c.post("/webhooks/buildkite", body, sign(token, unix_now() - 600));
  EXPECT_EQ(stale.status, 401);
  EXPECT_EQ(error_of(stale)["code"], "stale_signature");
  auto forged = c.post("/webhooks/buildkite", body, sign("guessed", unix_now()));
  EXPECT_EQ(forged.status, 401);
  EXPECT_EQ(error_of(forged)["code"], "bad_signature");
  EXPECT_EQ(c.get("/api/v1/builds/buildkite/web-app/4242").status, 404);
  auto good = c.post("/webhooks/buildkite", body, sign(token, unix_now()));
  EXPECT_EQ(good.status, 202);
  EXPECT_EQ(c.get("/api/v1/builds/buildkite/web-app/4242").status, 200);
}

TEST_F(http_test, malformed_json_is_400_and_unknown_event_is_422) {
  auto c = client();
  auto bad = c.post("/webhooks/buildkite", "{\"event\": ", hook("job.finished"));
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(error_of(bad)["code"], "malformed_json");
  auto unknown = c.post("/webhooks/buildkite", fixture("buildkite/build.finished.json"),
                        hook("build.exploded"));
  EXPECT_EQ(unknown.status, 422);
  EXPECT_EQ(error_of(unknown)["field"], "X-Buildkite-Event");
  auto invalid = c.post("/webhooks/buildkite",
                        with_job("buildkite/job.finished.json",
                                 [](json& d) { d["build"]["number"] = "x"; })
                          .dump(),
                        hook("job.finished"));
  EXPECT_EQ(invalid.status, 422);
  EXPECT_EQ(error_of(invalid)["field"], "build.number");
  auto media = c.send(boost::beast::http::verb::post, "/webhooks/buildkite", "a=b",
                      {{"Content-Type", "application/x-www-form-urlencoded"},
                       {"X-Buildkite-Token", token}});
  EXPECT_EQ(media.status, 415);
}

TEST_F(http_test, body_over_the_limit_is_413) {
  auto c = client();
  std::string huge(cfg.server.body_limit + 1, ' ');
  auto r = c.post("/webhooks/buildkite", huge, hook("job.finished"));
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(error_of(r)["code"], "body_too_large");
  // A body exactly at the limit is read (and then judged on its content).
  auto c2 = client();
  std::string at_limit(cfg.server.body_limit, ' ');
  EXPECT_EQ(c2.post("/webhooks/buildkite", at_limit, hook("job.finished")).status, 400);
}

TEST_F(http_test, ping_and_agent_events_change_nothing) {
  auto c = client();
  EXPECT_EQ(c.post("/webhooks/buildkite", fixture("buildkite/ping.json"), hook("ping")).status,
            200);
  auto agent = c.post("/webhooks/buildkite", fixture("buildkite/agent.disconnected.json"),
                      hook("agent.disconnected"));
  EXPECT_EQ(agent.status, 200);
  EXPECT_EQ(json::parse(agent.body)["status"], "ignored");
  EXPECT_EQ(json::parse(c.get("/api/v1/builds").body).size(), 0u);
}

TEST_F(http_test, a_whole_build_with_a_retry_and_a_late_failure_reads_back) {
  auto c = client();
  auto post = [&](const std::string& event, const json& doc) {
    EXPECT_EQ(c.post("/webhooks/buildkite", doc.dump(), hook(event)).status, 202) << event;
  };
  auto finished = json::parse(fixture("buildkite/build.finished.json"));
  post("job.finished", json::parse(fixture("buildkite/job.finished.json")));
  post("job.finished", json::parse(fixture("buildkite/job.finished.retry-passed.json")));
  post("job.finished", json::parse(fixture("buildkite/job.finished.soft-failed.json")));
  // Duplicate delivery changes nothing.
  post("job.finished", json::parse(fixture("buildkite/job.finished.json")));
  post("build.finished", finished);
  auto doc = json::parse(c.get("/api/v1/builds/buildkite/web-app/4242").body);
  EXPECT_EQ(doc["state"], "passed");
  EXPECT_EQ(doc["source_state"], "failed");
  EXPECT_EQ(doc["fixed_jobs"], json::array({":go: Unit tests"}));
  EXPECT_EQ(doc["revision"], 1);
  EXPECT_EQ(doc["jobs"].size(), 2u);
  // The failing job.finished that arrives after build.finished still counts.
  post("job.finished", with_job("buildkite/job.finished.json", [](json& d) {
         d["job"]["id"] = "late-job";
         d["job"]["step_key"] = "e2e";
       }));
  doc = json::parse(c.get("/api/v1/builds/buildkite/web-app/4242").body);
  EXPECT_EQ(doc["state"], "failed");
  EXPECT_EQ(doc["revision"], 2);
  EXPECT_EQ(doc["failed_jobs"].size(), 1u);
  // Streak verdicts arrive asynchronously, in revision order: revision 1 (passed)
  // may still be the one shown; wait for revision 2's.
  for (int i = 0; i < 1000 && (doc["streak"].is_null() || doc["streak"]["verdict"] != "broken");
       ++i) {
    std::this_thread::sleep_for(10ms);
    doc = json::parse(c.get("/api/v1/builds/buildkite/web-app/4242").body);
  }
  EXPECT_EQ(doc["streak"]["verdict"], "broken");
}

TEST_F(http_test, same_number_in_two_pipelines_stays_apart) {
  auto c = client();
  auto other = with_job("buildkite/job.finished.json", [](json& d) {
    d["pipeline"]["slug"] = "api";
    d["job"]["state"] = "passed";
    d["job"]["exit_status"] = 0;
  });
  EXPECT_EQ(c.post("/webhooks/buildkite", fixture("buildkite/job.finished.json"),
                   hook("job.finished")).status, 202);
  EXPECT_EQ(c.post("/webhooks/buildkite", other.dump(), hook("job.finished")).status, 202);
  auto web = json::parse(c.get("/api/v1/builds/buildkite/web-app/4242").body);
  auto api = json::parse(c.get("/api/v1/builds/buildkite/api/4242").body);
  EXPECT_EQ(web["jobs"][0]["attempts"][0]["state"], "failed");
  EXPECT_EQ(api["jobs"][0]["attempts"][0]["state"], "passed");
  auto list = json::parse(c.get("/api/v1/builds?pipeline=api").body);
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["key"], "buildkite/api/4242");
}

TEST_F(http_test, reads_errors_and_operational_endpoints) {
  auto c = client();
  auto missing = c.get("/api/v1/builds/buildkite/web-app/1");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(error_of(missing)["code"], "not_found");
  EXPECT_EQ(c.get("/api/v1/builds/only-two/parts").status, 404);
  auto limit = c.get("/api/v1/builds?limit=0");
  EXPECT_EQ(limit.status, 400);
  EXPECT_EQ(error_of(limit)["field"], "limit");
  EXPECT_EQ(error_of(c.get("/api/v1/builds?state=sad"))["field"], "state");
  EXPECT_EQ(c.get("/api/v1/streaks").status, 200);
  EXPECT_EQ(c.get("/healthz").status, 200);
  EXPECT_EQ(c.get("/readyz").status, 200);
  EXPECT_EQ(c.get("/nowhere").status, 404);
  auto wrong = c.send(boost::beast::http::verb::get, "/webhooks/buildkite");
  EXPECT_EQ(wrong.status, 405);
  EXPECT_EQ(wrong.headers["Allow"], "POST");
  c.post("/webhooks/buildkite", fixture("buildkite/ping.json"), hook("ping"));
  auto metrics = c.get("/metrics");
  EXPECT_EQ(metrics.status, 200);
  EXPECT_NE(metrics.body.find("buildtrack_events_total{source=\"buildkite\",type=\"ping\""),
            std::string::npos);
  EXPECT_NE(metrics.body.find("buildtrack_build_actors"), std::string::npos);
  // An unknown event name never becomes a label of its own.
  c.post("/webhooks/buildkite", fixture("buildkite/ping.json"), hook("build.made-up-42"));
  metrics = c.get("/metrics");
  EXPECT_EQ(metrics.body.find("made-up-42"), std::string::npos);
  EXPECT_NE(metrics.body.find("type=\"unsupported\",outcome=\"rejected\""), std::string::npos);
}

TEST_F(http_test, streaks_over_http) {
  auto c = client();
  for (int n = 1; n <= 3; ++n) {
    auto job = with_job("buildkite/job.finished.json", [&](json& d) {
      d["build"]["number"] = n;
      d["job"]["id"] = "j" + std::to_string(n);
    });
    auto fin = with_job("buildkite/build.finished.json", [&](json& d) { d["build"]["number"] = n; });
    c.post("/webhooks/buildkite", job.dump(), hook("job.finished"));
    c.post("/webhooks/buildkite", fin.dump(), hook("build.finished"));
  }
  json streaks;
  for (int i = 0; i < 1000; ++i) {
    streaks = json::parse(c.get("/api/v1/streaks").body);
    if (!streaks.empty() && streaks[0]["failures"] == 3)
      break;
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_EQ(streaks.size(), 1u);
  EXPECT_EQ(streaks[0]["failures"], 3);
  EXPECT_EQ(streaks[0]["verdict"], "still_failing");
  auto third = json::parse(c.get("/api/v1/builds/buildkite/web-app/3").body);
  EXPECT_EQ(third["streak"]["failures"], 3);
}

TEST_F(http_test, admin_token_guards_reads) {
  TearDown();
  cfg.server.admin_token = "admin-secret";
  start();
  auto c = client();
  EXPECT_EQ(c.get("/api/v1/builds").status, 401);
  EXPECT_EQ(c.get("/api/v1/streaks", {{"Authorization", "Bearer wrong"}}).status, 401);
  EXPECT_EQ(c.get("/api/v1/builds", {{"Authorization", "Bearer admin-secret"}}).status, 200);
  EXPECT_EQ(c.get("/healthz").status, 200);
}

TEST_F(http_test, keep_alive_serves_many_requests_on_one_connection) {
  auto c = client();
  for (int i = 0; i < 200; ++i)
    ASSERT_EQ(c.get("/healthz").status, 200);
}

TEST_F(http_test, slow_client_is_disconnected) {
  auto c = client();
  boost::asio::write(c.stream().socket(),
                     boost::asio::buffer(std::string{"POST /webhooks/buildkite HTTP/1.1\r\n"}));
  std::this_thread::sleep_for(cfg.server.read_timeout + 300ms);
  char byte;
  boost::system::error_code ec;
  c.stream().socket().read_some(boost::asio::buffer(&byte, 1), ec);
  EXPECT_EQ(ec, boost::asio::error::eof);
}
