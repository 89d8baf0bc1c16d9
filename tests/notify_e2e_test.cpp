// Notifications end to end: real buildtrackd processes on a real redis-server,
// Buildkite deliveries over HTTP, and local HTTP receivers standing in for the Slack
// Web API and for a webhook consumer that checks signatures.
#include <atomic>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "storm/payloads.hpp"
#include "support/crypto.hpp"
#include "tests/eventually.hpp"
#include "tests/daemon_process.hpp"
#include "tests/fake_receiver.hpp"
#include "tests/http_client.hpp"
#include "tests/redis_server.hpp"

using namespace bt;
using namespace std::chrono_literals;
using bt::test::eventually;
using nlohmann::json;
using receiver = test::fake_receiver;

namespace {

const std::string secret = "webhook-secret";

/// A Slack Web API that accepts everything: posts get a new ts, updates keep theirs.
receiver::answer_fn slack_ok() {
  return [](const receiver::request& r, std::size_t n) {
    auto body = json::parse(r.body, nullptr, false);
    json out{{"ok", true}, {"channel", "C-BUILDS"}};
    out["ts"] = body.is_object() && body.contains("ts") ? body["ts"]
                                                        : json("1700000000.0001" + std::to_string(n));
    return receiver::answer_t{200, out.dump(), {}};
  };
}

/// A webhook consumer: 200 when the signature holds, 401 otherwise.
receiver::answer_fn webhook_checks_signature() {
  return [](const receiver::request& r, std::size_t) {
    auto sig = r.headers.find("X-Buildtrack-Signature");
    bool good = sig != r.headers.end()
                && sig->second == "sha256=" + support::hmac_sha256_hex(secret, r.body);
    return receiver::answer_t{good ? 200u : 401u, "{}", {}};
  };
}

/// Requests to `target` only.
std::vector<receiver::request> to(const receiver& r, const std::string& target) {
  std::vector<receiver::request> out;
  for (auto& q : r.requests())
    if (q.target == target)
      out.push_back(q);
  return out;
}

/// The Slack headline of a request: its fallback text.
std::string headline(const receiver::request& r) {
  return json::parse(r.body)["text"].get<std::string>();
}

const std::string native_token = "native-notify-token-0123456789";

/// buildtrackd with a Slack sink and a webhook sink, both on loopback receivers.
struct notify_e2e : ::testing::Test {
  test::redis_server redis{true};
  unsigned short port = test::redis_server::free_port();
  unsigned short slack_port = test::redis_server::free_port();
  unsigned short hook_port = test::redis_server::free_port();
  std::unique_ptr<test::daemon_process> daemon;

  static constexpr const char* default_retry =
    "{max_attempts: 4, initial_backoff: 100ms, max_backoff: 300ms}";

  void start_daemon(const std::string& slack_extra = "", const std::string& hook_retry = default_retry) {
    std::ostringstream cfg;
    cfg << "server:\n  listen: 127.0.0.1:" << port
        << "\nstore:\n  kind: redis\n  redis:\n    url: " << redis.url()
        << "/0\n  snapshot_interval: 30ms\nsources:\n  buildkite:\n    token: " << payloads::token
        << "\n  native:\n    token: " << native_token
        << "\ntracking:\n  branches: [main]\n  actor_idle_timeout: 50ms"
        << "\nnotifications:"
        << "\n  - name: slack\n    kind: slack\n    token: xoxb-test\n    channel: C-BUILDS"
        << "\n    api_url: http://127.0.0.1:" << slack_port << "/api"
        << "\n    retry: {max_attempts: 4, initial_backoff: 100ms, max_backoff: 300ms}" << slack_extra
        << "\n  - name: hook\n    kind: webhook\n    on: [failed, fixed]"
        << "\n    url: http://127.0.0.1:" << hook_port << "/hook\n    secret: " << secret
        << "\n    headers: {X-Team: ci}"
        << "\n    retry: " << hook_retry
        << "\npeople:\n  - {email: ada@example.com, slack: U-ADA}"
        << "\nlog:\n  level: error\n";
    daemon = std::make_unique<test::daemon_process>(port, cfg.str());
    daemon->start();
  }

  void deliver(const json& doc) {
    test::http_client c{port};
    auto r = c.post("/webhooks/buildkite", doc.dump(),
                    {{"X-Buildkite-Event", doc["event"].get<std::string>()},
                     {"X-Buildkite-Token", payloads::token}});
    ASSERT_EQ(r.status, 202u) << r.body;
  }

  /// Build `n` of pipeline `app`: jobs `failing` fail (first attempt), then it finishes.
  void build(int n, std::vector<int> failing, int jobs = 1, const std::string& branch = "main",
             const std::string& pipeline = "app") {
    deliver(payloads::build_delivery("build.running", pipeline, n, "running", branch));
    for (int step = 0; step < jobs; ++step) {
      bool fails = std::find(failing.begin(), failing.end(), step) != failing.end();
      deliver(payloads::job_delivery(pipeline, n, step, 0, true, fails, branch));
    }
    deliver(payloads::build_delivery("build.finished", pipeline, n,
                                     failing.empty() ? "passed" : "failed", branch));
  }

  /// The barrier a test that expects nothing more waits on: build `n` of pipeline
  /// `barrier` fails, and `sinks` hear of it. Each sink's notices are recorded in the
  /// order their outcomes settled, so one owed for an earlier build would have been
  /// sent by then.
  void barrier(int n, std::initializer_list<receiver*> sinks) {
    build(n, {0}, 1, "main", "barrier");
    auto tag = "/barrier/builds/" + std::to_string(n);
    for (auto* sink : sinks)
      ASSERT_TRUE(eventually([&] { return !about(*sink, tag).empty(); })) << tag;
  }

  /// The requests `r` got whose body mentions `needle` (a build's URL path).
  static std::vector<receiver::request> about(receiver& r, const std::string& needle) {
    std::vector<receiver::request> out;
    for (auto& req : r.requests())
      if (req.body.find(needle) != std::string::npos)
        out.push_back(req);
    return out;
  }
  /// The requests about pipeline `app`.
  static std::vector<receiver::request> app(receiver& r) { return about(r, "/app/builds/"); }

  /// Posts to the native API (events, messages, commands) and expects `status`.
  void native(const std::string& path, const json& doc, unsigned status = 202) {
    test::http_client c{port};
    auto r = c.post(path, doc.dump(), {{"Authorization", "Bearer " + native_token},
                                       {"Content-Type", "application/json"}});
    ASSERT_EQ(r.status, status) << r.body;
  }

  std::string metrics() {
    test::http_client c{port};
    return c.get("/metrics").body;
  }

  /// One sample of /metrics, e.g. `name{labels}`; -1 when absent.
  double metric(const std::string& sample) {
    auto text = "\n" + metrics();
    auto at = text.find("\n" + sample + " "); // a sample line, not # HELP or # TYPE
    return at == std::string::npos ? -1 : std::stod(text.substr(at + sample.size() + 2));
  }
};

TEST_F(notify_e2e, failures_post_once_each_with_the_streak_in_the_header) {
  receiver slack{slack_port, slack_ok()};
  receiver hook{hook_port, webhook_checks_signature()};
  start_daemon();
  for (int n = 1; n <= 4; ++n) {
    build(n, {0});
    // Builds of one streak are judged in number order whatever their timing; waiting
    // here only keeps the posts in order for the check below.
    ASSERT_TRUE(eventually([&] { return to(slack, "/api/chat.postMessage").size() == size_t(n); }));
  }
  ASSERT_TRUE(eventually([&] { return hook.count() == 4; }));
  barrier(1, {&slack, &hook}); // nothing more may come for app
  auto posts = to(slack, "/api/chat.postMessage");
  ASSERT_EQ(posts.size(), 5u);
  EXPECT_EQ(slack.count(), 5u) << "no chat.update expected";
  EXPECT_EQ(app(slack).size(), 4u);
  EXPECT_EQ(headline(posts[0]), ":red_circle: Build 1 failed");
  EXPECT_EQ(headline(posts[1]), ":red_circle: Build 2 failed (2nd failure)");
  EXPECT_EQ(headline(posts[2]), ":red_circle: Build 3 failed (:exclamation: 3rd failure)");
  EXPECT_EQ(headline(posts[3]), ":red_circle: Build 4 failed (:bangbang: 4th failure)");
  auto first = posts[0];
  EXPECT_EQ(first.headers["Authorization"], "Bearer xoxb-test");
  auto text = json::parse(first.body).dump();
  EXPECT_NE(text.find("<@U-ADA>"), std::string::npos) << "author mention";
  EXPECT_NE(text.find("Go to build"), std::string::npos);
  EXPECT_NE(text.find("<https://github.com/acme/app/commit/8faa67ad6d0fda3ccf884c90acfd061d37e8558d"
                      "|Make the storm pass (8faa67a)>"),
            std::string::npos)
    << text;
  // Webhooks: signed (the receiver answered 200), one delivery id each, custom header.
  std::set<std::string> ids;
  for (auto& r : app(hook)) {
    ids.insert(r.headers["X-Buildtrack-Delivery"]);
    EXPECT_EQ(r.headers["X-Team"], "ci");
  }
  EXPECT_EQ(ids.size(), 4u);
  EXPECT_EQ(app(hook).size(), 4u);
  // The receivers have every post; the daemon counts one once it has read the answer
  // and taken the entry out of the outbox, a moment later.
  EXPECT_TRUE(eventually([&] {
    return metric(R"(buildtrack_notification_attempts_total{sink="hook",result="delivered"})") == 5;
  }));
  EXPECT_TRUE(eventually([&] {
    return metric(R"(buildtrack_notification_attempts_total{sink="slack",result="delivered"})") == 5;
  }));
  EXPECT_TRUE(eventually([&] { return metric("buildtrack_notification_outbox") == 0; }));
}

TEST_F(notify_e2e, a_late_failing_job_and_a_fixing_retry_edit_the_same_message) {
  receiver slack{slack_port, slack_ok()};
  receiver hook{hook_port, webhook_checks_signature()};
  start_daemon();
  build(1, {0}, 2);
  ASSERT_TRUE(eventually([&] { return slack.count() == 1; }));
  auto ts = json::parse(slack_ok()(slack.requests()[0], 0).body)["ts"];
  // A job that finishes (failing) after the build did.
  deliver(payloads::job_delivery("app", 1, 2, 0, true, true));
  ASSERT_TRUE(eventually([&] { return to(slack, "/api/chat.update").size() == 1; }));
  auto update = json::parse(to(slack, "/api/chat.update")[0].body);
  EXPECT_EQ(update["ts"], ts);
  EXPECT_EQ(update["channel"], "C-BUILDS");
  EXPECT_NE(update.dump().find("step 2"), std::string::npos) << "the late job is listed";
  // Retries of both failed jobs pass: the build passes, the message says so.
  deliver(payloads::job_delivery("app", 1, 0, 1, true, false));
  deliver(payloads::job_delivery("app", 1, 2, 1, true, false));
  ASSERT_TRUE(eventually([&] {
    auto updates = to(slack, "/api/chat.update");
    return !updates.empty() && headline(updates.back()).starts_with(":large_green_circle:");
  }));
  barrier(1, {&slack});
  EXPECT_EQ(to(slack, "/api/chat.postMessage").size(), 2u) << "app's and the barrier's";
  for (auto& u : to(slack, "/api/chat.update"))
    EXPECT_EQ(json::parse(u.body)["ts"], ts);
  auto last = json::parse(to(slack, "/api/chat.update").back().body).dump();
  EXPECT_NE(last.find("Fixed jobs"), std::string::npos) << last;
}

TEST_F(notify_e2e, a_branch_no_sink_follows_sends_nothing) {
  receiver slack{slack_port, slack_ok()};
  receiver hook{hook_port, webhook_checks_signature()};
  start_daemon();
  build(1, {0}, 1, "feature/x");
  test::http_client c{port};
  ASSERT_TRUE(eventually([&] {
    return c.get("/api/v1/builds/buildkite/app/1").body.find(R"("state":"failed")")
           != std::string::npos;
  }));
  barrier(1, {&slack, &hook});
  EXPECT_TRUE(app(slack).empty());
  EXPECT_TRUE(app(hook).empty());
}

TEST_F(notify_e2e, a_receiver_down_then_up_gets_the_notice_once) {
  receiver slack{slack_port, slack_ok()};
  receiver hook{hook_port, webhook_checks_signature()};
  hook.stop();
  start_daemon("", "{max_attempts: 50, initial_backoff: 50ms, max_backoff: 100ms}");
  build(1, {0});
  ASSERT_TRUE(eventually([&] {
    return metric(R"(buildtrack_notification_retries_total{sink="hook"})") >= 3;
  })) << metrics();
  hook.start();
  ASSERT_TRUE(eventually([&] { return hook.count() == 1; }));
  barrier(1, {&hook});
  EXPECT_EQ(app(hook).size(), 1u);
}

TEST_F(notify_e2e, retry_after_from_a_429_is_waited_for) {
  receiver slack{slack_port, [](const receiver::request& r, std::size_t n) {
                   if (n == 0)
                     return receiver::answer_t{429, R"({"ok":false,"error":"ratelimited"})",
                                               {{"Retry-After", "1"}}};
                   return slack_ok()(r, n);
                 }};
  receiver hook{hook_port, webhook_checks_signature()};
  start_daemon();
  build(1, {0});
  ASSERT_TRUE(eventually([&] { return slack.count() == 2; }));
  auto rs = slack.requests();
  // The backoff alone would have retried after 50–100 ms.
  EXPECT_GE(rs[1].at - rs[0].at, 1s);
  EXPECT_EQ(rs[1].target, "/api/chat.postMessage");
}

TEST_F(notify_e2e, server_errors_forever_end_in_the_dead_letter_list) {
  receiver slack{slack_port, slack_ok()};
  receiver hook{hook_port, [](const receiver::request&, std::size_t) {
                  return receiver::answer_t{500, "{}", {}};
                }};
  start_daemon();
  build(1, {0});
  // The entry leaves the outbox for the dead letters after its last attempt's answer.
  ASSERT_TRUE(eventually([&] { return redis.integer("LLEN buildtrack:deadletters") == 1; }));
  EXPECT_EQ(hook.count(), 4u) << "max_attempts";
  EXPECT_EQ(redis.integer("HLEN buildtrack:outbox"), 0);
  EXPECT_EQ(slack.count(), 1u);
  EXPECT_EQ(metric(R"(buildtrack_notification_dead_letters_total{sink="hook"})"), 1);
  EXPECT_EQ(metric(R"(buildtrack_notification_retries_total{sink="hook"})"), 3);
}

TEST_F(notify_e2e, kill_9_between_outbox_write_and_delivery_delivers_once_after_restart) {
  receiver slack{slack_port, slack_ok()};
  receiver hook{hook_port, webhook_checks_signature()};
  slack.stop();
  hook.stop();
  start_daemon();
  build(1, {0});
  ASSERT_TRUE(eventually([&] { return redis.integer("HLEN buildtrack:outbox") == 2; }));
  daemon->kill9();
  slack.start();
  hook.start();
  daemon->start();
  ASSERT_TRUE(eventually([&] { return slack.count() == 1 && hook.count() == 1; }));
  barrier(1, {&slack, &hook});
  EXPECT_EQ(app(slack).size(), 1u);
  EXPECT_EQ(app(hook).size(), 1u);
  EXPECT_TRUE(eventually([&] { return redis.integer("HLEN buildtrack:outbox") == 0; }));
  // Delivered is delivered: another kill and restart sends nothing again...
  daemon->kill9();
  daemon->start();
  barrier(2, {&slack, &hook});
  EXPECT_EQ(app(slack).size(), 1u);
  EXPECT_EQ(app(hook).size(), 1u);
  // ...and a later change edits the message posted before the restarts.
  deliver(payloads::job_delivery("app", 1, 1, 0, true, true));
  ASSERT_TRUE(eventually([&] { return app(slack).size() == 2; }));
  auto update = app(slack)[1];
  EXPECT_EQ(update.target, "/api/chat.update");
  EXPECT_EQ(json::parse(update.body)["ts"], json::parse(slack_ok()(app(slack)[0], 0).body)["ts"]);
}

} // namespace

// A build whose target waits is announced once its outcome is settled by the message,
// not when its own work ended; its streak counts it like any other build.
TEST_F(notify_e2e, a_build_that_waited_is_announced_when_its_message_settles_it) {
  receiver slack{slack_port, slack_ok()};
  receiver hook{hook_port, webhook_checks_signature()};
  start_daemon();
  auto build = [](const std::string& pipeline, int n) {
    return json{{"pipeline", pipeline}, {"id", std::to_string(n)}, {"number", n},
                {"branch", "main"}};
  };
  native("/api/v1/events", {{"type", "job.finished"}, {"build", build("deploy", 1)},
                            {"job", {{"id", "d-1"}, {"name", "deploy"}, {"state", "passed"},
                                     {"waits_for_message", true}}}});
  native("/api/v1/events", {{"type", "build.finished"}, {"build", build("deploy", 1)}});
  // Another build fails meanwhile: once its notice is in, the waiting one, which had
  // none due, has sent nothing.
  native("/api/v1/events", {{"type", "job.finished"}, {"build", build("other", 1)},
                            {"job", {{"id", "o-1"}, {"name", "unit"}, {"state", "failed"}}}});
  native("/api/v1/events", {{"type", "build.finished"}, {"build", build("other", 1)}});
  ASSERT_TRUE(eventually([&] { return hook.count() == 1; }));
  EXPECT_EQ(json::parse(hook.requests()[0].body)["build"]["key"], "native/other/1");
  native("/api/v1/builds/native/deploy/1/targets/deploy/messages", {{"type", "fail"}});
  ASSERT_TRUE(eventually([&] { return hook.count() == 2; }));
  auto doc = json::parse(hook.requests()[1].body);
  EXPECT_EQ(doc["build"]["key"], "native/deploy/1");
  EXPECT_EQ(doc["build"]["state"], "failed");
  EXPECT_EQ(doc["kind"], "broken");
  EXPECT_EQ(doc["build"]["streak"]["verdict"], "broken");
}
