// Drives the real server over loopback HTTP: Beast server, actors, memory store.
#include <chrono>
#include <mutex>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "actors/service.hpp"
#include "net/routes.hpp"
#include "net/server.hpp"
#include "sources/buildkite.hpp"
#include "store/memory_store.hpp"
#include "tests/api_fixture.hpp"
#include "tests/fixtures.hpp"
#include "tests/eventually.hpp"
#include "tests/http_client.hpp"

using namespace bt;
using bt::test::fixture;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

const std::string token = "test-token-0123456789";

struct http_test : test::api_fixture {
  http_test()
    : api_fixture{[] {
        config::config c;
        c.server.read_timeout = 500ms;
        c.buildkite.token = token;
        return c;
      }()} {}

  std::map<std::string, std::string> hook(const std::string& event) {
    return {{"X-Buildkite-Event", event}, {"X-Buildkite-Token", token}};
  }

  static json with_job(std::string file, std::function<void(json&)> edit) {
    auto doc = json::parse(fixture(file));
    edit(doc);
    return doc;
  }

  /// Posts build.finished for build `number` of web-app with Buildkite state `state`.
  unsigned finish(test::http_client& c, int number, const char* state) {
    auto doc = with_job("buildkite/build.finished.json", [&](json& d) {
      d["build"]["number"] = number;
      d["build"]["state"] = state;
    });
    return c.post("/webhooks/buildkite", doc.dump(), hook("build.finished")).status;
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

TEST(answer_batch, hands_each_io_threads_answers_over_once_in_their_order) {
  namespace asio = boost::asio;
  asio::io_context a{1}, b{1};
  auto busy_a = asio::make_work_guard(a), busy_b = asio::make_work_guard(b);
  std::atomic<int> handlers_a{0}, handlers_b{0};
  auto run = [](asio::io_context& ctx, std::atomic<int>& handlers) {
    while (ctx.run_one())
      ++handlers;
  };
  std::thread on_a{run, std::ref(a), std::ref(handlers_a)}, on_b{run, std::ref(b), std::ref(handlers_b)};
  std::mutex mutex;
  std::vector<std::string> heard;
  auto to = [&](asio::io_context* ctx, std::string name) {
    return net::responder{[&, ctx, name](net::response res) {
                            bool home = !ctx || ctx->get_executor().running_in_this_thread();
                            std::lock_guard guard{mutex};
                            heard.push_back(name + " " + res.body() + (home ? "" : " elsewhere"));
                          },
                          ctx};
  };
  auto answer = [](std::string body) { return net::json_response(202, std::move(body)); };
  net::answer_batch batch;
  batch.add(to(&a, "a"), answer("1"));
  batch.add(to(&b, "b"), answer("2"));
  batch.add(to(nullptr, "none"), answer("3"));
  batch.add(to(&a, "a"), answer("4"));
  batch.flush();
  ASSERT_TRUE(test::eventually([&] {
    std::lock_guard guard{mutex};
    return heard.size() == 4;
  }));
  busy_a.reset();
  busy_b.reset();
  on_a.join();
  on_b.join();
  // Each on its I/O thread, in the order added there; one handler per I/O thread.
  auto pos = [&](const std::string& s) { return std::find(heard.begin(), heard.end(), s) - heard.begin(); };
  for (auto* s : {"a 1", "b 2", "none 3", "a 4"})
    EXPECT_LT(pos(s), 4) << s << " in " << testing::PrintToString(heard);
  EXPECT_LT(pos("a 1"), pos("a 4"));
  EXPECT_EQ(handlers_a.load(), 1);
  EXPECT_EQ(handlers_b.load(), 1);
}

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

// Each I/O thread runs its own io_context and connections go to them in turn: a
// connection on every one of them is served, whichever came first.
TEST_F(http_test, connections_on_every_io_thread_are_served) {
  ASSERT_GE(cfg.server.io_threads, 2);
  std::vector<std::unique_ptr<test::http_client>> open;
  for (int i = 0; i < 2 * cfg.server.io_threads; ++i)
    open.push_back(std::make_unique<test::http_client>(port));
  for (int round = 0; round < 2; ++round)
    for (auto& c : open)
      ASSERT_EQ(c->get("/healthz").status, 200);
}

// The server reads into a buffer smaller than many requests: what does not fit is
// read in pieces, on one keep-alive connection, and arrives whole.
TEST_F(http_test, requests_larger_than_the_read_buffer_arrive_whole) {
  auto c = client();
  std::string message;
  for (int i = 0; message.size() < 40 * 1024; ++i)
    message += "line " + std::to_string(i) + " of a long commit message\n";
  auto finished = with_job("buildkite/build.finished.json", [&](json& d) {
    d["build"]["message"] = message;
  });
  ASSERT_EQ(c.post("/webhooks/buildkite", finished.dump(), hook("build.finished")).status, 202);
  auto doc = json::parse(c.get("/api/v1/builds/buildkite/web-app/4242").body);
  EXPECT_EQ(doc["message"], message);
  // Headers longer than the buffer and within the header limit (16 KiB) are read too.
  EXPECT_EQ(c.get("/healthz", {{"X-Padding", std::string(12 * 1024, 'x')}}).status, 200);
  EXPECT_EQ(c.get("/healthz").status, 200);
  EXPECT_EQ(client().get("/healthz", {{"X-Padding", std::string(20 * 1024, 'x')}}).status, 431);
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

// Issue 9, point 1: 4,096 passing jobs and then a failing one, each acknowledged, used
// to read `passed`. Every acknowledged job counts in the outcome; what a limit let go
// is counted in the document and in /metrics.
TEST_F(http_test, jobs_past_the_limit_are_not_lost_from_the_outcome) {
  // 4,098 requests on one connection: a sanitizer build on a busy machine may pause
  // longer than the fixture's short read timeout between two of them.
  TearDown();
  cfg.server.read_timeout = 30s;
  start();
  auto c = client();
  auto post_job = [&](const std::string& id, const std::string& key, const char* state, int exit) {
    auto doc = with_job("buildkite/job.finished.json", [&](json& d) {
      d["job"]["id"] = id;
      d["job"]["step_key"] = key;
      d["job"]["name"] = key;
      d["job"]["state"] = state;
      d["job"]["exit_status"] = exit;
      d["job"]["retries_count"] = nullptr;
    });
    return c.post("/webhooks/buildkite", doc.dump(), hook("job.finished")).status;
  };
  const int limit = 4096;
  for (int i = 0; i < limit; ++i)
    ASSERT_EQ(post_job("ok-" + std::to_string(i), "step-" + std::to_string(i), "passed", 0), 202);
  ASSERT_EQ(post_job("bad", "the-failing-one", "failed", 1), 202);
  ASSERT_EQ(finish(c, 4242, "failed"), 202u);
  auto doc = json::parse(c.get("/api/v1/builds/buildkite/web-app/4242").body);
  EXPECT_EQ(doc["state"], "failed");
  ASSERT_EQ(doc["failed_jobs"].size(), 1u);
  EXPECT_EQ(doc["failed_jobs"][0], "the-failing-one");
  EXPECT_EQ(doc["jobs"].size(), static_cast<size_t>(limit));
  EXPECT_EQ(doc["omitted"]["jobs"], 1);
  EXPECT_NE(c.get("/metrics").body.find("buildtrack_build_limit_trims_total{limit=\"jobs\"} 1"),
            std::string::npos);
}

// Issue 9, point 1, the attempts: 70 attempts of one step, only the last passes.
TEST_F(http_test, a_job_retried_past_the_attempt_limit_is_decided_by_its_latest_attempt) {
  TearDown();
  cfg.tracking.max_attempts_per_job = 8; // configurable; the default is 64
  start();
  auto c = client();
  for (int i = 0; i < 70; ++i) {
    auto doc = with_job("buildkite/job.finished.json", [&](json& d) {
      d["job"]["id"] = "try-" + std::to_string(i);
      d["job"]["retries_count"] = i;
      d["job"]["state"] = i == 69 ? "passed" : "failed";
      d["job"]["exit_status"] = i == 69 ? 0 : 1;
    });
    ASSERT_EQ(c.post("/webhooks/buildkite", doc.dump(), hook("job.finished")).status, 202);
  }
  ASSERT_EQ(finish(c, 4242, "passed"), 202u);
  auto doc = json::parse(c.get("/api/v1/builds/buildkite/web-app/4242").body);
  EXPECT_EQ(doc["state"], "passed");
  EXPECT_EQ(doc["failed_jobs"].size(), 0u);
  ASSERT_EQ(doc["fixed_jobs"].size(), 1u);
  EXPECT_EQ(doc["jobs"][0]["attempts"].size(), 8u);
  EXPECT_EQ(doc["jobs"][0]["omitted_attempts"], 62);
  EXPECT_EQ(doc["jobs"][0]["attempts"][7]["id"], "try-69");
}

// Issue 9, point 5: bytes that are not UTF-8, quoted back in an error, gave 500.
TEST_F(http_test, invalid_utf8_in_what_an_error_quotes_is_never_a_500) {
  auto c = client();
  auto event = c.post("/webhooks/buildkite", fixture("buildkite/build.finished.json"),
                      {{"X-Buildkite-Event", "job.\xff"}, {"X-Buildkite-Token", token}});
  EXPECT_EQ(event.status, 422);
  EXPECT_EQ(error_of(event)["field"], "X-Buildkite-Event");
  EXPECT_NE(error_of(event)["message"].get<std::string>().find("\xef\xbf\xbd"), std::string::npos)
    << "the byte is replaced by U+FFFD";
  auto query = c.get("/api/v1/builds?%FF=1");
  EXPECT_EQ(query.status, 400);
  EXPECT_NO_THROW(json::parse(query.body));
  auto path = c.get("/api/v1/builds/buildkite/%FF/1");
  EXPECT_EQ(path.status, 404);
  EXPECT_NO_THROW(json::parse(path.body));
}

// Issue 9, point 6: a timestamp far in the past wrapped around the comparison.
TEST_F(http_test, signature_timestamps_that_would_overflow_are_stale) {
  auto c = client();
  auto body = fixture("buildkite/job.finished.json");
  for (long long at : {-9223372036854775LL, -9223372036854775807LL, 9223372036854775807LL,
                       9223372036854775LL}) {
    auto r = c.post("/webhooks/buildkite", body,
                    {{"X-Buildkite-Event", "job.finished"},
                     {"X-Buildkite-Signature", sources::buildkite_signature(token, at, body)}});
    EXPECT_EQ(r.status, 401) << at;
    EXPECT_EQ(error_of(r)["code"], "stale_signature") << at;
  }
  EXPECT_EQ(c.get("/api/v1/builds/buildkite/web-app/4242").status, 404);
}

// Issue 9, point 7: credentials before the media type; media types per RFC 9110.
TEST_F(http_test, credentials_are_checked_before_the_media_type) {
  auto c = client();
  auto body = fixture("buildkite/job.finished.json");
  auto unauthenticated = c.send(boost::beast::http::verb::post, "/webhooks/buildkite", "a=b",
                                {{"Content-Type", "application/x-www-form-urlencoded"},
                                 {"X-Buildkite-Token", "wrong"}});
  EXPECT_EQ(unauthenticated.status, 401);
  auto media = [&](const std::string& type) {
    return c.send(boost::beast::http::verb::post, "/webhooks/buildkite", body,
                  {{"Content-Type", type}, {"X-Buildkite-Token", token},
                   {"X-Buildkite-Event", "job.finished"}})
      .status;
  };
  EXPECT_EQ(media("APPLICATION/JSON"), 202u);
  EXPECT_EQ(media("Application/Json ; charset=UTF-8"), 202u);
  EXPECT_EQ(media("application/jsonx"), 415u);
  EXPECT_EQ(media("application/json-patch+json"), 415u);
  EXPECT_EQ(media("text/plain"), 415u);
}

// Issue 9, point 11: a key twice in one object is refused, naming it.
TEST_F(http_test, duplicate_json_keys_are_refused) {
  auto c = client();
  auto body = fixture("buildkite/job.finished.json");
  auto at = body.find("\"job\"");
  ASSERT_NE(at, std::string::npos);
  // {"job": {...}, ...} becomes {"job": {"state": "passed", "state": ...}}
  auto brace = body.find('{', at);
  auto twice = body.substr(0, brace + 1) + R"("state": "passed", )" + body.substr(brace + 1);
  auto r = c.post("/webhooks/buildkite", twice, hook("job.finished"));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(error_of(r)["code"], "duplicate_key");
  EXPECT_EQ(error_of(r)["field"], "job.state");
  EXPECT_EQ(c.get("/api/v1/builds/buildkite/web-app/4242").status, 404);
}

// Issue 9, point 11: a second build.finished with another state. The latest word of
// the CI system wins for `source_state` (Buildkite finishes a build again after a job
// is retried); the outcome still comes from the jobs, so it is not announced again.
TEST_F(http_test, a_second_build_finished_updates_the_source_state_only) {
  auto c = client();
  ASSERT_EQ(finish(c, 7, "failed"), 202u);
  ASSERT_EQ(finish(c, 7, "passed"), 202u);
  auto doc = json::parse(c.get("/api/v1/builds/buildkite/web-app/7").body);
  EXPECT_EQ(doc["source_state"], "passed");
  EXPECT_EQ(doc["state"], "passed");
  EXPECT_EQ(doc["revision"], 1);
}

// Issue 9, point 2: at most server.max_connections at once; the surplus is answered
// 503 and closed, and a place that comes free is taken again.
TEST_F(http_test, connections_past_the_limit_are_answered_503_and_closed) {
  TearDown();
  cfg.server.max_connections = 4;
  start();
  std::vector<std::unique_ptr<test::http_client>> held;
  for (int i = 0; i < 4; ++i) {
    held.push_back(std::make_unique<test::http_client>(port));
    ASSERT_EQ(held.back()->get("/healthz").status, 200); // accepted and served
  }
  auto surplus = client().get("/healthz");
  EXPECT_EQ(surplus.status, 503);
  EXPECT_EQ(error_of(surplus)["code"], "too_many_connections");
  EXPECT_EQ(surplus.headers["Retry-After"], "1");
  held.pop_back(); // its session ends when the server reads the close
  bool served = false;
  for (int i = 0; i < 500 && !served; ++i) {
    served = client().get("/healthz").status == 200;
    if (!served)
      std::this_thread::sleep_for(10ms);
  }
  EXPECT_TRUE(served);
  // On a connection already open: new ones may still find every place taken.
  EXPECT_NE(held[0]->get("/metrics").body.find("\nbuildtrack_http_connections_refused_total "),
            std::string::npos);
}
