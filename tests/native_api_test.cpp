// The native event API over real loopback HTTP (SPEC §3.3): Beast server, actors,
// and a memory store, or a real redis-server where the store's behaviour matters.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <initializer_list>

#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "actors/service.hpp"
#include "net/routes.hpp"
#include "net/server.hpp"
#include "store/memory_store.hpp"
#include "store/redis_store.hpp"
#include "tests/api_fixture.hpp"
#include "tests/eventually.hpp"
#include "tests/fixtures.hpp"
#include "tests/http_client.hpp"
#include "tests/redis_server.hpp"

using namespace bt;
using nlohmann::json;
using namespace std::chrono_literals;
using bt::test::eventually;

namespace {

const std::string token = "native-token-0123456789";

/// A native event of `type` for build `id` of pipeline `pipeline`.
json event(const std::string& type, const std::string& id, json extra = json::object(),
           const std::string& pipeline = "app") {
  json e = {{"type", type},
            {"build", {{"pipeline", pipeline}, {"id", id}, {"number", std::stoi(id)},
                       {"branch", "main"}, {"commit", "c0ffee"}}}};
  for (auto& [k, v] : extra.items()) {
    if (k == "build")
      e["build"].update(v);
    else
      e[k] = v;
  }
  return e;
}

json job(const std::string& type, const std::string& id, const std::string& job_id,
         const std::string& state, json fields = json::object()) {
  fields["id"] = job_id;
  if (!fields.contains("name") && !fields.contains("step"))
    fields["name"] = "unit";
  if (!state.empty())
    fields["state"] = state;
  return event(type, id, {{"job", fields}});
}

std::string ndjson(std::initializer_list<json> events) {
  std::string out;
  for (auto& e : events)
    out += e.dump() + "\n";
  return out;
}

struct native_api : test::api_fixture {
  native_api()
    : api_fixture{[] {
        config::config c;
        c.server.read_timeout = 2s;
        c.native.token = token;
        c.buildkite.token = "bk";
        return c;
      }()} {}

  std::map<std::string, std::string> auth(std::string type = "application/json") {
    return {{"Authorization", "Bearer " + token}, {"Content-Type", std::move(type)}};
  }

  test::http_client::reply send(const json& e) {
    return client().post("/api/v1/events", e.dump(), auth());
  }

  test::http_client::reply batch(std::initializer_list<json> events) {
    return client().post("/api/v1/events", ndjson(events), auth("application/x-ndjson"));
  }

  /// Posts and expects 202; the answer's body.
  json accepted(const test::http_client::reply& r) {
    EXPECT_EQ(r.status, 202) << r.body;
    return r.status == 202 ? json::parse(r.body) : json{};
  }

  json build(const std::string& key) {
    auto r = client().get("/api/v1/builds/" + key);
    EXPECT_EQ(r.status, 200) << key << " " << r.body;
    return r.status == 200 ? json::parse(r.body) : json{};
  }

  unsigned status_of(const std::string& key) { return client().get("/api/v1/builds/" + key).status; }
};

json error_of(const test::http_client::reply& r) {
  return json::parse(r.body)["error"];
}

} // namespace

TEST_F(native_api, every_event_type_drives_a_build_end_to_end) {
  auto answer = accepted(batch({
    event("build.started", "7", {{"build", {{"url", "https://ci/app/7"}}}}),
    job("job.started", "7", "u-1", "", {{"name", "unit"}}),
    job("job.finished", "7", "u-1", "passed", {{"exit_status", 0}, {"url", "https://ci/u-1"}}),
    job("job.started", "7", "l-1", "running", {{"step", "lint"}, {"name", "Lint the code"}}),
    job("job.finished", "7", "l-1", "skipped", {{"step", "lint"}}),
    event("statistic", "7", {{"statistic", {{"key", " coverage "}, {"value", 81.5}}}}),
    event("build.finished", "7"),
  }));
  EXPECT_EQ(answer["accepted"], 7);
  EXPECT_EQ(answer["duplicates"], 0);
  auto b = build("native/app/7");
  EXPECT_EQ(b["state"], "passed");
  EXPECT_EQ(b["url"], "https://ci/app/7");
  ASSERT_EQ(b["jobs"].size(), 2u);
  EXPECT_EQ(b["statistics"]["coverage"], 81.5);
  for (auto& j : b["jobs"])
    if (j["group"] == "lint") {
      EXPECT_EQ(j["name"], "Lint the code");
      EXPECT_EQ(j["attempts"][0]["state"], "skipped");
    } else {
      EXPECT_EQ(j["attempts"][0]["state"], "passed");
      EXPECT_EQ(j["attempts"][0]["url"], "https://ci/u-1");
    }
  // One event at a time works the same way.
  accepted(send(event("build.started", "8")));
  EXPECT_EQ(build("native/app/8")["state"], "running");
  // The build itself says it failed, with no job to show for it.
  accepted(send(event("build.finished", "8", {{"build", {{"status", "failed"}}}})));
  EXPECT_EQ(build("native/app/8")["state"], "failed");
}

TEST_F(native_api, a_failed_job_fails_its_build_without_an_exit_status_and_a_soft_fail_passes) {
  accepted(batch({job("job.finished", "1", "a", "failed"), event("build.finished", "1")}));
  auto failed = build("native/app/1");
  EXPECT_EQ(failed["state"], "failed");
  EXPECT_EQ(failed["failed_jobs"], json::array({"unit"}));
  EXPECT_TRUE(failed["jobs"][0]["attempts"][0]["exit_status"].is_null());
  accepted(batch({job("job.finished", "2", "b", "failed", {{"exit_status", 3}, {"soft_failed", true}}),
                  event("build.finished", "2")}));
  EXPECT_EQ(build("native/app/2")["state"], "passed");
  accepted(batch({job("job.finished", "3", "c", "timed_out"), event("build.finished", "3")}));
  EXPECT_EQ(build("native/app/3")["state"], "failed");
}

TEST_F(native_api, retries_share_the_job_name_and_the_attempt_number_orders_them) {
  // The retry's report comes first; its attempt number still makes it the latest.
  accepted(batch({job("job.finished", "4", "t-2", "passed", {{"attempt", 1}}),
                  job("job.finished", "4", "t-1", "failed", {{"attempt", 0}}),
                  event("build.finished", "4")}));
  auto b = build("native/app/4");
  EXPECT_EQ(b["state"], "passed");
  EXPECT_EQ(b["fixed_jobs"], json::array({"unit"}));
  ASSERT_EQ(b["jobs"][0]["attempts"].size(), 2u);
  EXPECT_EQ(b["jobs"][0]["attempts"][1]["id"], "t-2");
  // Without attempt numbers, arrival order decides: the failure came last.
  accepted(batch({job("job.finished", "5", "r-1", "passed"), job("job.finished", "5", "r-2", "failed"),
                  event("build.finished", "5")}));
  EXPECT_EQ(build("native/app/5")["state"], "failed");
}

TEST_F(native_api, a_job_that_finishes_after_its_build_updates_the_outcome) {
  accepted(batch({job("job.finished", "6", "a", "passed"), event("build.finished", "6")}));
  auto before = build("native/app/6");
  EXPECT_EQ(before["state"], "passed");
  EXPECT_EQ(before["revision"], 1);
  accepted(send(job("job.finished", "6", "late", "failed", {{"name", "e2e"}})));
  auto after = build("native/app/6");
  EXPECT_EQ(after["state"], "failed");
  EXPECT_EQ(after["revision"], 2);
}

TEST_F(native_api, an_interrupted_build_is_interrupted) {
  accepted(batch({event("build.started", "9"), job("job.started", "9", "a", "running"),
                  event("build.interrupted", "9")}));
  EXPECT_EQ(build("native/app/9")["state"], "interrupted");
}

TEST_F(native_api, a_personal_build_stays_out_of_streaks) {
  accepted(batch({job("job.finished", "10", "a", "failed", json::object()),
                  event("build.finished", "10", {{"build", {{"personal", true}}}})}));
  accepted(batch({job("job.finished", "11", "b", "failed"), event("build.finished", "11")}));
  // Build 11's verdict is in only once the tracker has seen every earlier outcome.
  ASSERT_TRUE(eventually([&] { return build("native/app/11")["streak"].is_object(); }));
  EXPECT_EQ(build("native/app/11")["streak"]["verdict"], "broken"); // not still_failing
  EXPECT_TRUE(build("native/app/10")["streak"].is_null());
  auto streaks = json::parse(client().get("/api/v1/streaks").body);
  ASSERT_EQ(streaks.size(), 1u);
  EXPECT_EQ(streaks[0]["source"], "native");
  EXPECT_EQ(streaks[0]["last_build"], 11);
}

TEST_F(native_api, duplicates_by_delivery_and_by_job_state_and_attempt_change_nothing) {
  auto first = job("job.finished", "12", "a", "failed", {{"attempt", 0}});
  first["delivery"] = "d-1";
  EXPECT_EQ(accepted(send(first))["duplicates"], 0);
  auto revision = build("native/app/12")["updated_at"];
  EXPECT_EQ(accepted(send(first))["duplicates"], 1); // same delivery id
  auto again = first;
  again["delivery"] = "d-2"; // another delivery of the same job, state and attempt
  auto answer = accepted(batch({again, event("build.started", "12")}));
  EXPECT_EQ(answer["accepted"], 2);
  EXPECT_EQ(answer["duplicates"], 1);
  EXPECT_EQ(build("native/app/12")["jobs"][0]["attempts"].size(), 1u);
}

TEST_F(native_api, a_batch_with_one_bad_line_is_refused_whole_naming_line_and_field) {
  auto bad = job("job.finished", "13", "b", "exploded");
  auto r = client().post("/api/v1/events",
                         ndjson({event("build.started", "13"), job("job.started", "13", "a", "")})
                           + "\n" + bad.dump() + "\n",
                         auth("application/x-ndjson"));
  ASSERT_EQ(r.status, 422);
  auto err = error_of(r);
  EXPECT_EQ(err["line"], 4); // the blank line counts
  EXPECT_EQ(err["field"], "job.state");
  EXPECT_NE(err["message"].get<std::string>().find("line 4"), std::string::npos);
  EXPECT_EQ(status_of("native/app/13"), 404u); // nothing of the batch was kept
  auto malformed = client().post("/api/v1/events", ndjson({event("build.started", "14")}) + "{\n",
                                 auth("application/x-ndjson"));
  EXPECT_EQ(malformed.status, 400);
  EXPECT_EQ(error_of(malformed)["line"], 2);
  EXPECT_EQ(status_of("native/app/14"), 404u);
}

TEST_F(native_api, invalid_events_are_422_naming_the_field) {
  auto field_of = [&](json e) {
    auto r = send(e);
    EXPECT_EQ(r.status, 422) << e.dump();
    return error_of(r)["field"].get<std::string>();
  };
  EXPECT_EQ(field_of(event("build.exploded", "1")), "type");
  EXPECT_EQ(field_of(event("message", "1")), "message"); // a message event without one
  EXPECT_EQ(field_of(event("message", "1", {{"message", {{"target", "t"}, {"type", "done"}}}})),
            "message.type");
  EXPECT_EQ(field_of(event("build.started", "1", {{"build", {{"source", "buildkite"}}}})),
            "build.source");
  EXPECT_EQ(field_of(event("build.started", "1", {{"build", {{"pipeline", "a/b"}}}})),
            "build.pipeline");
  EXPECT_EQ(field_of(event("build.started", "1", {{"build", {{"colour", "red"}}}})),
            "build.colour");
  EXPECT_EQ(field_of(job("job.finished", "1", "a", "passed", {{"exit_status", "zero"}})),
            "job.exit_status");
  EXPECT_EQ(field_of(job("job.finished", "1", "a", "passed", {{"attempt", -1}})), "job.attempt");
  EXPECT_EQ(field_of(event("job.finished", "1")), "job");
  EXPECT_EQ(field_of(event("statistic", "1", {{"statistic", {{"key", "x"}}}})), "statistic.value");
  EXPECT_EQ(field_of(event("build.started", "1", {{"time", "yesterday"}})), "time");
  EXPECT_EQ(json::parse(client().get("/api/v1/builds").body).size(), 0u);
}

TEST_F(native_api, credentials_come_first_then_media_type_then_size) {
  auto c = client();
  auto body = event("build.started", "1").dump();
  auto missing = c.post("/api/v1/events", body, {{"Content-Type", "text/plain"}});
  EXPECT_EQ(missing.status, 401);
  EXPECT_EQ(error_of(missing)["code"], "missing_credentials");
  auto wrong = c.post("/api/v1/events", body,
                      {{"Authorization", "Bearer nope"}, {"Content-Type", "text/plain"}});
  EXPECT_EQ(wrong.status, 401);
  EXPECT_EQ(error_of(wrong)["field"], "Authorization");
  auto basic = c.post("/api/v1/events", body, {{"Authorization", "Basic " + token}});
  EXPECT_EQ(basic.status, 401);
  auto media = c.post("/api/v1/events", body, auth("text/plain"));
  EXPECT_EQ(media.status, 415);
  EXPECT_EQ(error_of(media)["field"], "Content-Type");
  auto c2 = client();
  auto huge = c2.post("/api/v1/events", std::string(cfg.server.body_limit + 1, ' '), auth());
  EXPECT_EQ(huge.status, 413);
  EXPECT_EQ(json::parse(client().get("/api/v1/builds").body).size(), 0u);
  // The scheme's case does not matter.
  EXPECT_EQ(client().post("/api/v1/events", body,
                          {{"Authorization", "bearer " + token}}).status, 202);
}

TEST_F(native_api, a_native_and_a_buildkite_build_of_the_same_pipeline_stay_apart) {
  auto native_job = event("job.finished", "4242",
                          {{"job", {{"id", "n-1"}, {"name", "unit"}, {"state", "passed"}}}},
                          "web-app");
  accepted(batch({native_job, event("build.finished", "4242", {}, "web-app")}));
  auto bk = client().post("/webhooks/buildkite", test::fixture("buildkite/job.finished.json"),
                          {{"X-Buildkite-Event", "job.finished"}, {"X-Buildkite-Token", "bk"}});
  EXPECT_EQ(bk.status, 202);
  EXPECT_EQ(build("native/web-app/4242")["state"], "passed");
  auto theirs = build("buildkite/web-app/4242");
  EXPECT_EQ(theirs["state"], "running");
  EXPECT_EQ(theirs["jobs"][0]["attempts"][0]["state"], "failed");
  auto list = json::parse(client().get("/api/v1/builds?pipeline=web-app").body);
  EXPECT_EQ(list.size(), 2u);
  // A CI that names itself gets its own key space too.
  accepted(send(event("build.started", "4242", {{"build", {{"source", "teamcity"}}}}, "web-app")));
  EXPECT_EQ(build("teamcity/web-app/4242")["state"], "running");
}

namespace {

/// The same API over a real redis-server, which the test can stop.
struct native_api_on_redis : native_api {
  test::redis_server redis{/*durable=*/true}; // what it acknowledged survives its restart

  void SetUp() override {
    store::redis_store_config rc;
    rc.endpoint = *store::parse_redis_url(redis.url());
    rc.timeout = 300ms;
    rc.max_backoff = 100ms;
    rc.probe_interval = 50ms;
    store = std::make_shared<store::redis_store>(rc);
    native_api::SetUp();
  }

  long long journal_length() const { return redis.integer("XLEN buildtrack:journal"); }
};

} // namespace

// Redis down: 503 with Retry-After, and nothing of the refused batch is kept, in
// memory or in the journal; once Redis is back the same batch goes through whole.
TEST_F(native_api_on_redis, redis_down_is_503_with_retry_after_and_nothing_half_written) {
  accepted(send(event("build.started", "20")));
  auto before = journal_length();
  EXPECT_EQ(before, 1);
  redis.stop();
  ASSERT_TRUE(eventually([&] { return client().get("/readyz").status == 503; }));
  auto the_batch = [&] {
    return batch({job("job.finished", "21", "a", "failed"), event("build.finished", "21"),
                  job("job.finished", "20", "b", "passed")});
  };
  auto refused = the_batch();
  EXPECT_EQ(refused.status, 503);
  EXPECT_EQ(refused.headers["Retry-After"], "1");
  EXPECT_EQ(error_of(refused)["code"], "store_unavailable");
  EXPECT_EQ(status_of("native/app/21"), 404u);
  EXPECT_EQ(build("native/app/20")["jobs"].size(), 0u);
  redis.start();
  ASSERT_TRUE(eventually([&] { return client().get("/readyz").status == 200; }));
  EXPECT_EQ(journal_length(), before); // redis-server kept nothing of the refused batch
  auto answer = accepted(the_batch());
  EXPECT_EQ(answer["accepted"], 3);
  EXPECT_EQ(journal_length(), before + 1); // a batch is one journal entry, written whole
  EXPECT_EQ(build("native/app/21")["state"], "failed");
}

namespace {

/// Runs `buildtrack send` with `args`; its exit status and what it printed.
std::pair<int, std::string> run_send(const std::string& args) {
  std::string command = std::string{BT_BINARY_DIR} + "/buildtrack send " + args + " 2>&1";
  std::string out;
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe)
    return {-1, "popen failed"};
  char buf[512];
  while (auto n = fread(buf, 1, sizeof buf, pipe))
    out.append(buf, n);
  int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

} // namespace

TEST_F(native_api, the_send_command_posts_a_file_of_events) {
  auto dir = std::filesystem::temp_directory_path() / ("bt-send-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  auto batch_file = (dir / "events.ndjson").string();
  std::ofstream{batch_file} << ndjson({job("job.finished", "30", "a", "failed"),
                                       event("build.finished", "30")});
  auto single_file = (dir / "event.json").string();
  std::ofstream{single_file} << event("build.started", "31").dump(2); // over several lines
  auto url = "--url http://127.0.0.1:" + std::to_string(port);
  auto [status, out] = run_send(batch_file + " " + url + " --token " + token);
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find(R"({"accepted":2,"duplicates":0})"), std::string::npos) << out;
  EXPECT_EQ(build("native/app/30")["state"], "failed");
  std::tie(status, out) = run_send(single_file + " " + url + " --token " + token);
  EXPECT_EQ(status, 0) << out;
  EXPECT_EQ(build("native/app/31")["state"], "running");
  std::tie(status, out) = run_send(single_file + " " + url + " --token wrong");
  EXPECT_EQ(status, 1);
  EXPECT_NE(out.find("401"), std::string::npos) << out;
  std::filesystem::remove_all(dir);
}
