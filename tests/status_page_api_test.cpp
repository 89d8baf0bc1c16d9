// What the status page reads (SPEC §9), over real HTTP and WebSocket on loopback: its
// own files, the overview, a build's notifications per sink, and the `builds` exchange
// that carries every build change. The page itself runs in a browser in
// tests/browser/status_page_test.py.
#include <chrono>
#include <map>
#include <set>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/api_fixture.hpp"
#include "tests/eventually.hpp"
#include "tests/fake_receiver.hpp"
#include "tests/free_port.hpp"
#include "tests/ws_client.hpp"

using namespace bt;
using nlohmann::json;
using namespace std::chrono_literals;
using bt::test::eventually;

namespace {

const std::string native_token = "native-token";
const std::string admin_token = "admin-token";

struct status_page_api : test::api_fixture {
  test::fake_receiver hook{test::free_port(), [](auto&, std::size_t) { return test::fake_receiver::answer_t{}; }};
  unsigned short dead_port = test::free_port(); ///< nothing listens: deliveries fail

  status_page_api() : api_fixture{config::config{}} {
    cfg.native.token = native_token;
    cfg.server.admin_token = admin_token;
    cfg.tracking.branches = {"main"};
    config::sink_config good;
    good.name = "hook";
    good.kind = "webhook";
    good.url = "http://127.0.0.1:" + std::to_string(hook.port()) + "/hook";
    good.on = {"failed", "passed"};
    good.branches = {"*"};
    auto unreachable = good;
    unreachable.name = "unreachable";
    unreachable.url = "http://127.0.0.1:" + std::to_string(dead_port) + "/hook";
    unreachable.retry.initial_backoff = 1h; // stays retrying for the test to see
    auto coverage = good;
    coverage.name = "coverage";
    coverage.pipelines = {"stats"};
    coverage.wait_for = config::wait_for_config{{"coverage"}, 1h, 2h};
    cfg.notifications = {good, unreachable, coverage};

  }

  std::map<std::string, std::string> admin() { return {{"Authorization", "Bearer " + admin_token}}; }

  void send(const std::string& ndjson) {
    auto r = client().post("/api/v1/events", ndjson,
                           {{"Authorization", "Bearer " + native_token}, {"Content-Type", "application/x-ndjson"}});
    ASSERT_EQ(r.status, 202) << r.body;
  }

  /// Build `n` of `pipeline` on main: started, one job, finished (failing when told).
  void build(const std::string& pipeline, int n, bool fails, const std::string& branch = "main") {
    auto id = std::to_string(n);
    json b = {{"pipeline", pipeline}, {"id", id}, {"number", n}, {"branch", branch}};
    json ref = {{"pipeline", pipeline}, {"id", id}};
    send(json{{"type", "build.started"}, {"build", b}}.dump() + "\n"
         + json{{"type", "job.finished"}, {"build", ref},
                {"job", {{"id", pipeline + id}, {"name", "unit"}, {"state", fails ? "failed" : "passed"}}}}
             .dump()
         + "\n" + json{{"type", "build.finished"}, {"build", ref}}.dump() + "\n");
  }

  json get_json(const std::string& target) {
    auto r = client().get(target, admin());
    EXPECT_EQ(r.status, 200) << target << " " << r.body;
    return r.status == 200 ? json::parse(r.body) : json{};
  }
};

TEST_F(status_page_api, serves_its_own_files_with_no_outside_sources_allowed) {
  auto page = client().get("/");
  ASSERT_EQ(page.status, 200);
  EXPECT_EQ(page.headers["Content-Type"], "text/html; charset=utf-8");
  EXPECT_NE(page.body.find("<script src=\"/ui/app.js\""), std::string::npos);
  EXPECT_NE(page.headers["Content-Security-Policy"].find("default-src 'self'"), std::string::npos);
  EXPECT_EQ(page.headers["X-Content-Type-Options"], "nosniff");
  auto script = client().get("/ui/app.js");
  ASSERT_EQ(script.status, 200);
  EXPECT_EQ(script.headers["Content-Type"], "text/javascript; charset=utf-8");
  EXPECT_NE(script.body.find("/api/v1/overview"), std::string::npos);
  EXPECT_EQ(client().get("/ui/app.css").headers["Content-Type"], "text/css; charset=utf-8");
  auto missing = client().get("/ui/nothing.js");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(json::parse(missing.body)["error"]["code"], "not_found");
  EXPECT_EQ(client().post("/", "", {}).status, 405);
  // Nothing in the page refers to another host: no CDN, no web font.
  for (auto* file : {"/", "/ui/app.js", "/ui/app.css"})
    EXPECT_EQ(client().get(file).body.find("https://"), std::string::npos) << file;
}

TEST_F(status_page_api, the_overview_groups_branches_with_their_newest_builds_and_lists_active_ones) {
  for (int n = 1; n <= 4; ++n)
    build("app", n, n == 3);
  build("app", 100, false, "feature");
  send(json{{"type", "build.started"}, {"build", {{"pipeline", "lib"}, {"id", "9"}, {"number", 9}, {"branch", "main"}}}}
         .dump());
  json last;
  ASSERT_TRUE(eventually([&] {
    auto v = last = get_json("/api/v1/overview?builds=3");
    return v["branches"].size() == 3 && v["branches"][1]["builds"].size() == 3
           && v["branches"][1]["builds"][0]["streak"].is_object();
  })) << last.dump(1);
  auto v = get_json("/api/v1/overview?builds=3");
  // In name order: source, pipeline, branch.
  EXPECT_EQ(v["branches"][0]["branch"], "feature");
  EXPECT_EQ(v["branches"][1]["branch"], "main");
  EXPECT_EQ(v["branches"][2]["pipeline"], "lib");
  auto& main_builds = v["branches"][1]["builds"];
  ASSERT_EQ(main_builds.size(), 3u);
  EXPECT_EQ(main_builds[0]["number"], 4);
  EXPECT_EQ(main_builds[1]["number"], 3);
  EXPECT_EQ(main_builds[1]["state"], "failed");
  EXPECT_EQ(main_builds[1]["failed_job_count"], 1);
  EXPECT_EQ(main_builds[1]["streak"]["verdict"], "broken");
  EXPECT_EQ(main_builds[0]["streak"]["verdict"], "fixed");
  ASSERT_EQ(v["active"].size(), 1u);
  EXPECT_EQ(v["active"][0]["key"], "native/lib/9");
  EXPECT_EQ(v["active"][0]["state"], "running");

  auto only_lib = get_json("/api/v1/overview?pipeline=lib&source=native");
  ASSERT_EQ(only_lib["branches"].size(), 1u);
  EXPECT_EQ(get_json("/api/v1/overview?source=buildkite")["branches"].size(), 0u);
  EXPECT_EQ(get_json("/api/v1/builds?source=native&branch=feature").size(), 1u);

  EXPECT_EQ(client().get("/api/v1/overview").status, 401);
  auto bad = client().get("/api/v1/overview?builds=0", admin());
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(json::parse(bad.body)["error"]["field"], "builds");
  EXPECT_EQ(json::parse(client().get("/api/v1/overview?state=failed", admin()).body)["error"]["field"], "state");
}

TEST_F(status_page_api, waits_for_targets_and_statistics_are_in_the_summaries) {
  send(json{{"type", "build.started"}, {"build", {{"pipeline", "stats"}, {"id", "1"}, {"branch", "main"}}}}.dump()
       + "\n"
       + json{{"type", "job.finished"},
              {"build", {{"pipeline", "stats"}, {"id", "1"}}},
              {"job", {{"id", "d1"}, {"name", "deploy"}, {"state", "passed"}, {"waits_for_message", true},
                       {"wait_timeout", 600}}}}
           .dump()
       + "\n" + json{{"type", "build.finished"}, {"build", {{"pipeline", "stats"}, {"id", "1"}}}}.dump() + "\n");
  json active;
  ASSERT_TRUE(eventually([&] {
    active = get_json("/api/v1/overview")["active"];
    return active.size() == 1 && active[0]["state"] == "waiting";
  }));
  ASSERT_EQ(active[0]["waiting_targets"].size(), 1u);
  EXPECT_EQ(active[0]["waiting_targets"][0]["job"], "deploy");
  EXPECT_TRUE(active[0]["waiting_targets"][0]["deadline"].is_string());
  ASSERT_EQ(active[0]["waiting_statistics"].size(), 1u);
  EXPECT_EQ(active[0]["waiting_statistics"][0]["sink"], "coverage");
  EXPECT_EQ(active[0]["waiting_statistics"][0]["missing"], json::array({"coverage"}));

  // The message ends the target's wait; the build passes, and its coverage sink still
  // waits for the statistic, until a time it names.
  send(json{{"type", "message"},
            {"build", {{"pipeline", "stats"}, {"id", "1"}}},
            {"message", {{"target", "deploy"}, {"type", "pass"}}}}
         .dump());
  ASSERT_TRUE(eventually([&] {
    active = get_json("/api/v1/overview")["active"];
    return active.size() == 1 && active[0]["state"] == "passed";
  }));
  EXPECT_EQ(active[0]["waiting_targets"].size(), 0u);
  EXPECT_TRUE(active[0]["waiting_statistics"][0]["until"].is_string());
  send(json{{"type", "statistic"},
            {"build", {{"pipeline", "stats"}, {"id", "1"}}},
            {"statistic", {{"key", "coverage"}, {"value", 80}}}}
         .dump());
  ASSERT_TRUE(eventually([&] { return get_json("/api/v1/overview")["active"].empty(); }));
}

TEST_F(status_page_api, a_builds_notifications_show_their_delivery_state_per_sink) {
  build("app", 1, true);
  json notes;
  auto state_of = [&](const std::string& sink) -> std::string {
    for (auto& n : notes)
      if (n["sink"] == sink)
        return n["state"];
    return "";
  };
  ASSERT_TRUE(eventually([&] {
    notes = get_json("/api/v1/builds/native/app/1/notifications");
    return state_of("hook") == "delivered" && state_of("unreachable") == "retrying";
  })) << notes.dump();
  for (auto& n : notes) {
    EXPECT_EQ(n["kind"], "broken");
    EXPECT_EQ(n["revision"], 1);
    EXPECT_TRUE(n["job"].is_null());
    if (n["sink"] == "unreachable") {
      EXPECT_EQ(n["attempts"], 1);
      EXPECT_FALSE(n["detail"].get<std::string>().empty());
      EXPECT_TRUE(n["next_attempt"].is_string());
    }
  }
  EXPECT_EQ(hook.count(), 1u);
  EXPECT_EQ(get_json("/api/v1/builds/native/app/2/notifications"), json::array());
  EXPECT_EQ(client().get("/api/v1/builds/native/app/1/notifications").status, 401);
}

TEST_F(status_page_api, every_build_change_is_published_on_the_builds_exchange) {
  // From the start of the backlog: the subscription is registered just after the
  // handshake, and nothing published meanwhile may be missed by the test.
  test::ws_client watcher{port, "/api/v1/exchanges/builds/subscribe?since=0&bind=native.app.*&access_token="
                                  + admin_token};
  test::ws_client failures{port, "/api/v1/exchanges/builds/subscribe?since=0&bind=*.*.failed",
                           "Bearer " + admin_token};
  ASSERT_TRUE(watcher.open() && failures.open());
  build("app", 1, true);
  build("other", 1, true);
  std::vector<json> seen;
  while (auto frame = watcher.read(10s)) {
    seen.push_back(json::parse(*frame));
    if (seen.back()["payload"]["state"] == "failed")
      break;
  }
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.back()["routingKey"], "native.app.failed");
  EXPECT_EQ(seen.back()["exchange"], "builds");
  EXPECT_EQ(seen.back()["payload"]["key"], "native/app/1");
  EXPECT_EQ(seen.back()["payload"]["failed_job_count"], 1);
  for (auto& f : seen)
    EXPECT_EQ(f["payload"]["pipeline"], "app") << "a binding for app heard another pipeline";
  // Every state the build went through, in order, ending failed.
  EXPECT_EQ(seen.front()["payload"]["state"], "running");
  std::set<std::string> failed;
  while (failed.size() < 2)
    if (auto frame = failures.read(10s))
      failed.insert(json::parse(*frame)["routingKey"].get<std::string>());
    else
      break;
  EXPECT_EQ(failed, (std::set<std::string>{"native.app.failed", "native.other.failed"}));
  // Without the admin token nobody hears the feed.
  test::ws_client stranger{port, "/api/v1/exchanges/builds/subscribe?bind=%23"};
  EXPECT_FALSE(stranger.open());
  EXPECT_EQ(stranger.status, 401u);
}

} // namespace
