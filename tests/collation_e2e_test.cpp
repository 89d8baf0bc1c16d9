// Sinks that wait for statistics (SPEC §5), end to end: buildtrackd on a real
// redis-server, native events over HTTP, and a local webhook receiver. The waiting
// sinks have a 2 s build_completed_timeout and an 8 s failure_timeout.
#include <chrono>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/daemon_process.hpp"
#include "tests/eventually.hpp"
#include "tests/fake_receiver.hpp"
#include "tests/http_client.hpp"
#include "tests/redis_server.hpp"

using namespace bt;
using namespace std::chrono_literals;
using bt::test::eventually;
using nlohmann::json;
using receiver = test::fake_receiver;
using steady = std::chrono::steady_clock;

namespace {

const std::string token = "collation-native-token-0123456789";

struct collation_e2e : ::testing::Test {
  test::redis_server redis{true};
  unsigned short port = test::redis_server::free_port();
  unsigned short hook_port = test::redis_server::free_port();
  receiver hooks{hook_port, [](const receiver::request&, std::size_t) {
                   return receiver::answer_t{200, "{}", {}};
                 }};
  std::unique_ptr<test::daemon_process> daemon;

  void start_daemon() {
    std::ostringstream cfg;
    auto sink = [&](const std::string& name, bool waits) {
      cfg << "\n  - name: " << name << "\n    kind: webhook\n    url: http://127.0.0.1:"
          << hook_port << "/" << name
          << "\n    retry: {max_attempts: 4, initial_backoff: 100ms, max_backoff: 300ms}";
      if (waits)
        cfg << "\n    wait_for:\n      statistics: [A, \" B\"]"
            << "\n      build_completed_timeout: 2s\n      failure_timeout: 8s";
    };
    cfg << "server:\n  listen: 127.0.0.1:" << port
        << "\nstore:\n  kind: redis\n  redis:\n    url: " << redis.url()
        << "/0\n  snapshot_interval: 30ms\nsources:\n  native:\n    token: " << token
        << "\ntracking:\n  branches: [main]\n  actor_idle_timeout: 50ms\nnotifications:";
    sink("wait", true);
    sink("wait2", true);
    sink("plain", false);
    sink("jobs", false);
    cfg << "\n    on: [job_finished]";
    cfg << "\nlog:\n  level: error\n";
    daemon = std::make_unique<test::daemon_process>(port, cfg.str());
    daemon->start();
  }

  /// Posts one native event for build `n`; returns when it was answered.
  steady::time_point send(int n, const std::string& type, json extra = json::object()) {
    json e = {{"type", type},
              {"build", {{"pipeline", "stats"}, {"id", std::to_string(n)}, {"number", n},
                         {"branch", "main"}}}};
    e.update(extra);
    test::http_client c{port};
    auto r = c.post("/api/v1/events", e.dump(),
                    {{"Authorization", "Bearer " + token}, {"Content-Type", "application/json"}});
    EXPECT_EQ(r.status, 202u) << r.body;
    return steady::now();
  }
  steady::time_point statistic(int n, const std::string& key, double value = 1) {
    return send(n, "statistic", {{"statistic", {{"key", key}, {"value", value}}}});
  }

  /// One sample of /metrics, e.g. `name{labels}`; -1 when absent.
  double metric(const std::string& sample) {
    test::http_client c{port};
    auto text = "\n" + c.get("/metrics").body;
    auto at = text.find("\n" + sample + " ");
    return at == std::string::npos ? -1 : std::stod(text.substr(at + sample.size() + 2));
  }

  /// The requests to sink `name` about build `n`, in arrival order.
  std::vector<receiver::request> to(const std::string& name, int n) {
    std::vector<receiver::request> out;
    for (auto& r : hooks.requests())
      if (r.target == "/" + name
          && json::parse(r.body)["build"]["key"] == "native/stats/" + std::to_string(n))
        out.push_back(r);
    return out;
  }

  /// Waits for sink `name`'s one request about build `n`; expects it `after` the
  /// reference time, within half a second, released by `reason`.
  void expect_release(const std::string& name, int n, steady::time_point expected,
                      const std::string& reason) {
    ASSERT_TRUE(eventually([&] { return !to(name, n).empty(); }, 15s)) << name << " " << n;
    auto r = to(name, n).front();
    auto off = std::chrono::duration_cast<std::chrono::milliseconds>(r.at - expected);
    EXPECT_LE(std::chrono::abs(off), 500ms) << name << " build " << n << " off by " << off.count()
                                            << " ms";
    auto doc = json::parse(r.body);
    EXPECT_EQ(doc["released_by"], reason) << name << " build " << n;
  }
};

} // namespace

// Every criterion at its time with its reason and the statistics; the sink that does not
// wait is sent once, at the finish; each of the two waiting sinks gets exactly one send.
TEST_F(collation_e2e, each_criterion_releases_its_sink_at_its_time_and_only_that_sink) {
  start_daemon();
  // 1: A and B (its config name " B", trimmed) before the finish: at the finish.
  send(1, "build.started");
  statistic(1, "A", 10);
  statistic(1, "B", 20);
  auto finish1 = send(1, "build.finished");
  // 2: the last of them after the finish: when it arrives.
  send(2, "build.started");
  send(2, "build.finished");
  statistic(2, "A");
  std::this_thread::sleep_for(500ms); // spacing the events under test, not a wait for a result
  auto last2 = statistic(2, "B");
  // 3: none: 2 s after the finish.
  send(3, "build.started");
  auto finish3 = send(3, "build.finished");
  // 4: a statistic nobody requires, 1 s after the finish: 2 s after it.
  send(4, "build.started");
  send(4, "build.finished");
  std::this_thread::sleep_for(1s);
  auto last4 = statistic(4, "X");
  // 5: statistics keep the quiet period going past 8 s after the start: at 8 s.
  auto start5 = send(5, "build.started");
  // 6: still running at 8 s: its wait is dropped, its finish at 9 s goes at once.
  auto start6 = send(6, "build.started");
  std::this_thread::sleep_until(start5 + 5s);
  send(5, "build.finished");
  std::this_thread::sleep_until(start5 + 6500ms);
  statistic(5, "X");
  std::this_thread::sleep_until(start5 + 7500ms);
  statistic(5, "X", 2);
  std::this_thread::sleep_until(start6 + 9s);
  auto finish6 = send(6, "build.finished");

  for (auto* sink : {"wait", "wait2"}) {
    expect_release(sink, 1, finish1, "all_statistics");
    expect_release(sink, 2, last2, "all_statistics");
    expect_release(sink, 3, finish3 + 2s, "build_completed_timeout");
    expect_release(sink, 4, last4 + 2s, "build_completed_timeout");
    expect_release(sink, 5, start5 + 8s, "failure_timeout");
    ASSERT_TRUE(eventually([&] { return !to(sink, 6).empty(); }));
    auto dropped = to(sink, 6).front();
    EXPECT_LE(std::chrono::abs(dropped.at - finish6), 500ms);
    EXPECT_FALSE(json::parse(dropped.body).contains("released_by"));
  }
  auto doc = json::parse(to("wait", 1).front().body);
  EXPECT_EQ(doc["statistics"]["A"], 10);
  EXPECT_EQ(doc["statistics"]["B"], 20);
  for (int n = 1; n <= 6; ++n)
    ASSERT_TRUE(eventually([&] { return !to("plain", n).empty(); })) << n;
  // Sent at the finish, not at a release.
  EXPECT_LE(std::chrono::abs(to("plain", 3).front().at - finish3), 500ms);
  EXPECT_FALSE(json::parse(to("plain", 3).front().body).contains("released_by"));
  // Exactly once each. The last release (build 5's) came after every other send was
  // due; one more build through every sink is the barrier for stragglers.
  send(7, "build.started");
  statistic(7, "A");
  statistic(7, "B");
  send(7, "build.finished");
  for (auto* sink : {"wait", "wait2", "plain"})
    ASSERT_TRUE(eventually([&] { return !to(sink, 7).empty(); })) << sink;
  for (auto* sink : {"wait", "wait2", "plain"})
    for (int n = 1; n <= 7; ++n)
      EXPECT_EQ(to(sink, n).size(), 1u) << sink << " build " << n;
  EXPECT_EQ(metric("buildtrack_collation_waits"), 0);
  EXPECT_EQ(metric(R"(buildtrack_collation_releases_total{sink="wait",released_by="all_statistics"})"), 3);
  EXPECT_EQ(metric(R"(buildtrack_collation_releases_total{sink="wait",released_by="build_completed_timeout"})"), 2);
  EXPECT_EQ(metric(R"(buildtrack_collation_releases_total{sink="wait",released_by="failure_timeout"})"), 1);
  EXPECT_EQ(metric(R"(buildtrack_collation_dropped_total{sink="wait"})"), 1);
}

// A job_finished sink gets one notice per finished attempt, retries included, and
// nothing for starts, repeats or the build's own outcome.
TEST_F(collation_e2e, a_job_finished_sink_gets_one_notice_per_finished_attempt) {
  start_daemon();
  auto job = [](const std::string& id, int attempt, const std::string& state) {
    return json{{"job", {{"id", id}, {"name", "unit"}, {"attempt", attempt}, {"state", state}}}};
  };
  send(1, "build.started");
  send(1, "job.started", job("u-1", 0, "running"));
  send(1, "job.finished", job("u-1", 0, "failed"));
  send(1, "job.finished", job("u-1", 0, "failed")); // a repeat changes nothing
  send(1, "job.started", job("u-2", 1, "running"));
  send(1, "job.finished", job("u-2", 1, "passed"));
  send(1, "build.finished");
  // The barrier: a later build's job notice.
  send(2, "job.finished", job("v-1", 0, "passed"));
  ASSERT_TRUE(eventually([&] { return !to("jobs", 2).empty(); }));
  auto notices = to("jobs", 1);
  ASSERT_EQ(notices.size(), 2u);
  std::set<std::string> attempts;
  for (auto& r : notices) {
    auto doc = json::parse(r.body);
    EXPECT_EQ(doc["kind"], "job_finished");
    EXPECT_EQ(doc["job"]["group"], "unit");
    attempts.insert(doc["job"]["attempt"]["id"].get<std::string>() + "="
                    + doc["job"]["attempt"]["state"].get<std::string>());
    EXPECT_EQ(r.headers["X-Buildtrack-Delivery"],
              "jobs:native/stats/1:job:" + doc["job"]["attempt"]["id"].get<std::string>());
  }
  EXPECT_EQ(attempts, (std::set<std::string>{"u-1=failed", "u-2=passed"}));
  // The other sinks heard of the build, not of its jobs.
  ASSERT_TRUE(eventually([&] { return !to("plain", 1).empty(); }));
  EXPECT_NE(json::parse(to("plain", 1).front().body)["kind"], "job_finished");
}

// kill -9 while a wait is pending: released once after the restart, by the right
// criterion; kill -9 right after a release: not sent again.
TEST_F(collation_e2e, waits_survive_kill_9_and_a_release_is_not_sent_twice) {
  start_daemon();
  // Released just before the kill.
  send(1, "build.started");
  statistic(1, "A");
  statistic(1, "B");
  send(1, "build.finished");
  ASSERT_TRUE(eventually([&] { return !to("wait", 1).empty(); }));
  // Pending at the kill.
  send(2, "build.started");
  auto finish2 = send(2, "build.finished");
  daemon->kill9();
  daemon->start();
  expect_release("wait", 2, finish2 + 2s, "build_completed_timeout");
  // A barrier for a resent release of build 1: a build released after the restart.
  send(3, "build.started");
  statistic(3, "A");
  statistic(3, "B");
  send(3, "build.finished");
  ASSERT_TRUE(eventually([&] { return !to("wait", 3).empty() && !to("wait2", 3).empty(); }));
  for (auto* sink : {"wait", "wait2"})
    for (int n = 1; n <= 3; ++n)
      EXPECT_EQ(to(sink, n).size(), 1u) << sink << " build " << n;
}

// The window a job notice can fall into: the build's state, which marks the attempt
// announced, was written (so the journal's tail no longer announces it) but the
// process died before the outbox recorded it. The test makes that window by erasing
// one recorded job notice while the daemon is down: the restart sends exactly that
// one again. A restart with nothing erased sends nothing again.
TEST_F(collation_e2e, a_job_notice_the_outbox_never_recorded_is_sent_after_kill_9) {
  start_daemon();
  auto job = [](const std::string& id, int attempt, const std::string& state) {
    return json{{"job", {{"id", id}, {"name", "unit"}, {"attempt", attempt}, {"state", state}}}};
  };
  auto attempt_of = [](const receiver::request& r) {
    return json::parse(r.body)["job"]["attempt"]["id"].get<std::string>();
  };
  auto count = [&](int n, const std::string& id) {
    std::size_t k = 0;
    for (auto& r : to("jobs", n))
      k += attempt_of(r) == id;
    return k;
  };
  send(1, "build.started");
  send(1, "job.finished", job("u-1", 0, "failed"));
  send(1, "job.finished", job("u-2", 1, "passed"));
  ASSERT_TRUE(eventually([&] { return to("jobs", 1).size() == 2; }));
  // The build's state is written with both attempts marked.
  const std::string build = "native/stats/1";
  ASSERT_TRUE(eventually([&] {
    return redis.text("GET buildtrack:build:" + build).find(R"("announced_jobs":2)")
           != std::string::npos;
  }));
  daemon->kill9();
  ASSERT_EQ(redis.integer("HDEL buildtrack:notified:" + build + " job:u-2"), 1);
  ASSERT_EQ(redis.integer("HINCRBY buildtrack:notified-jobs " + build + " -1"), 1);
  daemon->start();
  // The barrier: a job notice of a build after the restart.
  send(2, "job.finished", job("v-1", 0, "passed"));
  ASSERT_TRUE(eventually([&] { return !to("jobs", 2).empty() && count(1, "u-2") == 2; }));
  EXPECT_EQ(count(1, "u-1"), 1u);
  EXPECT_EQ(redis.integer("HLEN buildtrack:notified:" + build), 2);
  // Nothing erased: nothing sent again.
  daemon->kill9();
  daemon->start();
  send(3, "job.finished", job("w-1", 0, "passed"));
  ASSERT_TRUE(eventually([&] { return !to("jobs", 3).empty(); }));
  EXPECT_EQ(count(1, "u-1"), 1u);
  EXPECT_EQ(count(1, "u-2"), 2u);
  EXPECT_EQ(to("jobs", 2).size(), 1u);
}
