// Targets that wait for messages, build commands and wait timeouts (SPEC §3.4) over
// real loopback HTTP, the whole service on a real redis-server.
#include <chrono>
#include <future>
#include <regex>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "model/time.hpp"
#include "sources/native.hpp"
#include "support/clock.hpp"
#include "store/redis_store.hpp"
#include "tests/api_fixture.hpp"
#include "tests/eventually.hpp"
#include "tests/redis_server.hpp"

using namespace bt;
using nlohmann::json;
using namespace std::chrono_literals;
using bt::test::eventually;

namespace {

const std::string token = "native-token-0123456789";

struct targets_api : test::api_fixture {
  test::redis_server redis;

  targets_api()
    : api_fixture{[] {
        config::config c;
        c.server.read_timeout = 2s;
        c.native.token = token;
        c.buildkite.token = "bk";
        return c;
      }()} {}

  void SetUp() override {
    store = redis_store_on(redis);
    api_fixture::SetUp();
  }

  std::map<std::string, std::string> auth() {
    return {{"Authorization", "Bearer " + token}, {"Content-Type", "application/json"}};
  }

  static std::string path(const std::string& id) { return "/api/v1/builds/native/deploy/" + id; }

  test::http_client::reply post_event(json e) {
    return client().post("/api/v1/events", e.dump(), auth());
  }
  void event(const std::string& type, const std::string& id, json job = nullptr) {
    json e = {{"type", type}, {"build", {{"pipeline", "deploy"}, {"id", id}, {"branch", "main"},
                                         {"number", std::stoi(id)}}}};
    if (!job.is_null())
      e["job"] = job;
    auto r = post_event(e);
    ASSERT_EQ(r.status, 202) << r.body;
  }
  /// A target's job finished running: it waits for a message (or fails).
  void target(const std::string& id, const std::string& name, json extra = json::object()) {
    json job = {{"id", name + "-1"}, {"name", name}, {"state", "passed"},
                {"waits_for_message", true}};
    job.update(extra);
    event("job.finished", id, job);
  }
  test::http_client::reply message(const std::string& id, const std::string& name, json body) {
    return client().post(path(id) + "/targets/" + name + "/messages", body.dump(), auth());
  }
  void message_ok(const std::string& id, const std::string& name, const std::string& type,
                  json extra = json::object()) {
    json body = {{"type", type}};
    body.update(extra);
    auto r = message(id, name, body);
    ASSERT_EQ(r.status, 202) << r.body;
  }
  test::http_client::reply command(const std::string& id, const std::string& type) {
    return client().post(path(id) + "/commands", json{{"type", type}}.dump(), auth());
  }
  json build(const std::string& id) {
    auto r = client().get(path(id));
    EXPECT_EQ(r.status, 200) << r.body;
    return r.status == 200 ? json::parse(r.body) : json{};
  }
  json job_of(const json& b, const std::string& name) {
    for (auto& j : b["jobs"])
      if (j["group"] == name)
        return j;
    return json{};
  }
  double gauge(const std::string& name) {
    auto body = client().get("/metrics").body;
    std::smatch m;
    if (!std::regex_search(body, m, std::regex{"\n" + name + " ([0-9.e+-]+)"}))
      return -1;
    return std::stod(m[1]);
  }
};

} // namespace

TEST_F(targets_api, a_message_after_the_target_waits_passes_or_fails_the_build) {
  target("1", "deploy");
  event("build.finished", "1");
  auto waiting = build("1");
  EXPECT_EQ(waiting["state"], "waiting");
  EXPECT_EQ(job_of(waiting, "deploy")["state"], "waiting");
  EXPECT_EQ(job_of(waiting, "deploy")["target"]["state"], "waiting");
  message_ok("1", "deploy", "pass");
  auto b = build("1");
  EXPECT_EQ(b["state"], "passed");
  EXPECT_EQ(job_of(b, "deploy")["target"]["state"], "pass");
  EXPECT_EQ(b["messages"][0]["status"], "consumed");

  target("2", "deploy");
  event("build.finished", "2");
  message_ok("2", "deploy", "fail");
  EXPECT_EQ(build("2")["state"], "failed");
  EXPECT_EQ(build("2")["failed_jobs"], json::array({"deploy"}));
}

TEST_F(targets_api, a_message_before_the_build_exists_is_consumed_once_the_target_waits) {
  message_ok("3", "deploy", "pass");
  auto early = build("3");
  EXPECT_EQ(early["state"], "pending");
  EXPECT_EQ(early["messages"][0]["status"], "pending");
  target("3", "deploy");
  event("build.finished", "3");
  auto b = build("3");
  EXPECT_EQ(b["state"], "passed");
  EXPECT_EQ(b["messages"][0]["status"], "consumed");
}

TEST_F(targets_api, of_two_terminal_messages_the_first_wins_and_the_second_is_ignored) {
  target("4", "deploy");
  message_ok("4", "deploy", "pass");
  message_ok("4", "deploy", "fail");
  event("build.finished", "4");
  auto b = build("4");
  EXPECT_EQ(b["state"], "passed");
  EXPECT_EQ(b["messages"][0]["status"], "consumed");
  EXPECT_EQ(b["messages"][1]["status"], "ignored");
  EXPECT_NE(b["messages"][1]["note"].get<std::string>().find("already ended"), std::string::npos);
}

TEST_F(targets_api, work_keeps_the_target_waiting_and_its_results_are_kept) {
  target("5", "tests");
  event("build.finished", "5");
  message_ok("5", "tests", "work",
             {{"unit", {{{"name", "login"}, {"result", "pass"}, {"duration", 0.25},
                         {"namespace", "auth"}, {"path", "auth_test.cpp"}}}},
              {"lint", {{{"name", "unused"}, {"code", "W0611"}, {"severity", "warning"},
                         {"path", "a.py"}, {"line", 3}, {"description", "unused import"}}}}});
  auto b = build("5");
  EXPECT_EQ(b["state"], "waiting");
  auto t = job_of(b, "tests")["target"];
  ASSERT_EQ(t["unit"].size(), 1u);
  EXPECT_EQ(t["unit"][0]["name"], "login");
  EXPECT_EQ(t["unit"][0]["duration"], 0.25);
  ASSERT_EQ(t["lint"].size(), 1u);
  EXPECT_EQ(t["lint"][0]["line"], 3);
  message_ok("5", "tests", "pass", {{"unit", {{{"name", "logout"}, {"result", "pass"}}}}});
  b = build("5");
  EXPECT_EQ(b["state"], "passed");
  EXPECT_EQ(job_of(b, "tests")["target"]["unit"].size(), 2u);
}

TEST_F(targets_api, pause_keeps_a_message_and_resume_consumes_it) {
  target("6", "deploy");
  auto paused = command("6", "pause");
  ASSERT_EQ(paused.status, 200) << paused.body;
  EXPECT_EQ(json::parse(paused.body)["state"], "paused");
  message_ok("6", "deploy", "pass");
  event("build.finished", "6");
  auto b = build("6");
  EXPECT_EQ(b["state"], "paused");
  EXPECT_EQ(b["messages"][0]["status"], "pending");
  auto again = command("6", "pause");
  EXPECT_EQ(again.status, 409);
  EXPECT_EQ(json::parse(again.body)["error"]["state"], "paused");
  auto resumed = command("6", "resume");
  ASSERT_EQ(resumed.status, 200) << resumed.body;
  EXPECT_EQ(json::parse(resumed.body)["state"], "passed");
  EXPECT_EQ(build("6")["messages"][0]["status"], "consumed");
}

TEST_F(targets_api, abort_wins_over_a_later_pass_and_every_command_on_a_settled_build_is_409) {
  target("7", "deploy");
  auto aborted = command("7", "abort");
  ASSERT_EQ(aborted.status, 200) << aborted.body;
  EXPECT_EQ(json::parse(aborted.body)["state"], "aborted");
  message_ok("7", "deploy", "pass");
  auto b = build("7");
  EXPECT_EQ(b["state"], "aborted");
  EXPECT_EQ(b["messages"][0]["status"], "ignored");
  for (auto* type : {"pause", "resume", "abort", "restart"}) {
    auto r = command("7", type);
    EXPECT_EQ(r.status, 409) << type;
    EXPECT_EQ(json::parse(r.body)["error"]["code"], "conflict");
    EXPECT_EQ(json::parse(r.body)["error"]["state"], "aborted");
  }
  // A passed build too.
  target("8", "deploy");
  event("build.finished", "8");
  message_ok("8", "deploy", "pass");
  for (auto* type : {"pause", "resume", "abort", "restart"})
    EXPECT_EQ(command("8", type).status, 409) << type;
  EXPECT_EQ(build("8")["state"], "passed");
}

TEST_F(targets_api, restart_makes_messages_for_the_old_generation_change_nothing) {
  target("9", "deploy");
  auto restarted = command("9", "restart");
  ASSERT_EQ(restarted.status, 200) << restarted.body;
  EXPECT_EQ(json::parse(restarted.body)["generation"], 2);
  message_ok("9", "deploy", "fail", {{"generation", 1}});
  target("9", "deploy");
  message_ok("9", "deploy", "fail", {{"generation", 1}});
  auto b = build("9");
  EXPECT_EQ(b["state"], "running");
  EXPECT_EQ(b["generation"], 2);
  EXPECT_EQ(job_of(b, "deploy")["state"], "waiting");
  EXPECT_EQ(b["messages"][0]["status"], "ignored");
  EXPECT_EQ(b["messages"][1]["status"], "ignored");
  message_ok("9", "deploy", "pass", {{"generation", 2}});
  event("build.finished", "9");
  EXPECT_EQ(build("9")["state"], "passed");
}

TEST_F(targets_api, a_command_confirmed_with_its_builds_first_event_comes_after_it) {
  // One commit confirms a build's first event, then a command on that build. The
  // event waits in the commit to go to the registry with the commit's others; the
  // command must not overtake it, or it would find no build (404).
  model::build_key key{"native", "deploy", "31"};
  auto now = support::wall_clock();
  model::envelope first{key, "", now, std::nullopt, model::build_event{model::build_event::started}};
  auto abort = sources::native_command(key, "application/json", R"({"type":"abort"})", now);
  ASSERT_TRUE(std::holds_alternative<model::envelope>(abort));
  std::promise<std::pair<int, std::string>> answer;
  {
    store::commit c;
    service->route(std::move(first), c);
    service->command(std::get<model::envelope>(std::move(abort)),
                     [&](int status, std::string body) { answer.set_value({status, body}); }, c);
  }
  auto [status, body] = answer.get_future().get();
  EXPECT_EQ(status, 200) << body;
  EXPECT_EQ(build("31")["state"], "aborted");
}

TEST_F(targets_api, a_command_for_an_unknown_build_is_404_and_makes_none) {
  auto r = command("404", "pause");
  EXPECT_EQ(r.status, 404) << r.body;
  EXPECT_EQ(client().get(path("404")).status, 404);
  auto bad = command("10", "explode");
  EXPECT_EQ(bad.status, 422);
  EXPECT_EQ(json::parse(bad.body)["error"]["field"], "type");
}

TEST_F(targets_api, one_failing_target_fails_the_build_at_once_while_another_still_waits) {
  target("11", "deploy");
  event("job.finished", "11", {{"id", "m-1"}, {"name", "migrate"}, {"state", "failed"}});
  auto b = build("11");
  EXPECT_EQ(b["state"], "failed");
  EXPECT_EQ(job_of(b, "deploy")["state"], "waiting");
}

TEST_F(targets_api, an_invalid_unit_entry_rejects_the_message_and_changes_nothing) {
  target("12", "tests");
  auto before = build("12");
  auto r = message("12", "tests",
                   {{"type", "pass"},
                    {"unit", {{{"name", "a"}, {"result", "pass"}}, {{"name", "b"}, {"result", "meh"}}}}});
  EXPECT_EQ(r.status, 422);
  EXPECT_EQ(json::parse(r.body)["error"]["field"], "unit[1].result");
  auto lint = message("12", "tests", {{"type", "fail"}, {"lint", {{{"name", "x"}, {"code", "E1"},
                                                                  {"severity", "fatal"},
                                                                  {"path", "a"}}}}});
  EXPECT_EQ(lint.status, 422);
  EXPECT_EQ(json::parse(lint.body)["error"]["field"], "lint[0].severity");
  EXPECT_EQ(message("12", "tests", {{"type", "done"}}).status, 422);
  auto after = build("12");
  EXPECT_EQ(after, before);
  // Credentials first.
  auto anonymous = client().post(path("12") + "/targets/tests/messages", R"({"type":"pass"})",
                                 {{"Content-Type", "application/json"}});
  EXPECT_EQ(anonymous.status, 401);
  EXPECT_EQ(client().post(path("12") + "/commands", R"({"type":"abort"})",
                          {{"Authorization", "Bearer nope"}}).status, 401);
  EXPECT_EQ(build("12")["state"], "running");
}

TEST_F(targets_api, a_wait_timeout_fails_the_target_within_100ms_of_its_deadline) {
  target("13", "deploy", {{"wait_timeout", 0.3}});
  event("build.finished", "13");
  auto waiting = build("13");
  auto deadline = model::parse_time(job_of(waiting, "deploy")["target"]["deadline"].get<std::string>());
  ASSERT_TRUE(deadline);
  ASSERT_TRUE(eventually([&] { return build("13")["state"] == "failed"; }, 5s));
  auto b = build("13");
  EXPECT_EQ(job_of(b, "deploy")["target"]["state"], "timed_out");
  // The build changed when the deadline's event was applied: its update time.
  auto updated = model::parse_time(b["updated_at"].get<std::string>());
  ASSERT_TRUE(updated);
  EXPECT_GE(*updated, *deadline);
  EXPECT_LE(*updated - *deadline, 100ms);
  EXPECT_EQ(gauge("buildtrack_deadlines"), 0);
  EXPECT_EQ(gauge(R"(buildtrack_deadlines_passed_total\{journaled="true"\})"), 1);
}

TEST_F(targets_api, a_target_that_got_its_message_first_is_not_failed_later) {
  target("14", "deploy", {{"wait_timeout", 0.2}});
  // The build actor sets the deadline after it answered: the supervisor has it soon.
  ASSERT_TRUE(eventually([&] { return gauge("buildtrack_deadlines") == 1; }));
  message_ok("14", "deploy", "pass");
  event("build.finished", "14");
  // The deadline was let go with the wait: nothing is left to go off.
  ASSERT_TRUE(eventually([&] { return gauge("buildtrack_deadlines") == 0; }));
  EXPECT_EQ(build("14")["state"], "passed");
}
