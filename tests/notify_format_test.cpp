#include <gtest/gtest.h>

#include "tests/fixtures.hpp"
#include "tests/schemas.hpp"
#include <nlohmann/json.hpp>

#include "model/notice.hpp"
#include "notify/cdevents.hpp"
#include "notify/delivery_log.hpp"
#include "notify/slack.hpp"
#include "notify/webhook.hpp"
#include "support/crypto.hpp"

using namespace bt;
using nlohmann::json;

namespace {

/// A finished build of pipeline `app` with `failed` failing jobs.
model::build finished_build(int failed, model::build_state state = model::build_state::failed) {
  model::build b;
  b.key = {"buildkite", "app", "42"};
  b.info.number = 42;
  b.info.branch = "main";
  b.info.commit = "8faa67ad6d0fda3ccf884c90acfd061d37e8558d";
  b.info.message = "Fix the flaky login test\n\nLonger explanation.";
  b.info.repository = "git@github.com:acme/app.git";
  b.info.url = "https://buildkite.com/acme/app/builds/42";
  b.info.pipeline_name = "App";
  b.info.author = {"Ada Lovelace", "Ada@Example.com", "ada"};
  b.end = model::build_end::completed;
  b.state = state;
  b.revision = 1;
  for (int i = 0; i < failed; ++i) {
    model::job j;
    j.group = "job-" + std::to_string(100 + i);
    j.name = "job " + std::to_string(100 + i);
    model::attempt a;
    a.state = model::job_state::failed;
    a.exit_status = 1;
    a.fails = true;
    a.url = "https://buildkite.com/acme/app/builds/42#" + j.group;
    j.attempts.push_back(a);
    b.jobs[j.group] = j;
  }
  model::count_jobs(b);
  return b;
}

model::notice still_failing(std::int64_t failures) {
  auto b = finished_build(1);
  b.streak = model::streak_result{model::verdict::still_failing, failures, b.revision};
  return {b, *model::notice_kind_of(b)};
}

} // namespace

TEST(slack_format, ordinals_are_correct_english) {
  std::vector<std::pair<int, std::string>> cases{
    {1, "1st"},   {2, "2nd"},   {3, "3rd"},   {4, "4th"},     {10, "10th"},   {11, "11th"},
    {12, "12th"}, {13, "13th"}, {21, "21st"}, {22, "22nd"},   {23, "23rd"},   {24, "24th"},
    {101, "101st"}, {111, "111th"}, {112, "112th"}, {1013, "1013th"}};
  for (auto& [n, text] : cases)
    EXPECT_EQ(notify::ordinal(n), text);
}

TEST(slack_format, headlines_count_the_failures_of_the_streak) {
  auto broken = finished_build(1);
  broken.streak = model::streak_result{model::verdict::broken, 1, 1};
  EXPECT_EQ(notify::slack_headline({broken, model::notice_kind::broken}),
            ":red_circle: Build 42 failed");
  EXPECT_EQ(notify::slack_headline(still_failing(2)), ":red_circle: Build 42 failed (2nd failure)");
  EXPECT_EQ(notify::slack_headline(still_failing(3)),
            ":red_circle: Build 42 failed (:exclamation: 3rd failure)");
  EXPECT_EQ(notify::slack_headline(still_failing(4)),
            ":red_circle: Build 42 failed (:bangbang: 4th failure)");
  EXPECT_EQ(notify::slack_headline(still_failing(21)),
            ":red_circle: Build 42 failed (:bangbang: 21st failure)");
  EXPECT_EQ(notify::slack_headline(still_failing(22)),
            ":red_circle: Build 42 failed (:bangbang: 22nd failure)");
  auto fixed = finished_build(0, model::build_state::passed);
  fixed.streak = model::streak_result{model::verdict::fixed, 0, 1};
  EXPECT_EQ(notify::slack_headline({fixed, model::notice_kind::fixed}),
            ":large_green_circle: Build 42 fixed");
}

TEST(slack_format, thirty_failed_jobs_list_five_and_say_how_many) {
  auto b = finished_build(30);
  auto text = notify::slack_message({b, model::notice_kind::failed}, {}).dump();
  EXPECT_NE(text.find("showing 5 of 30"), std::string::npos) << text;
  int listed = 0;
  for (size_t at = text.find("\\n• "); at != std::string::npos; at = text.find("\\n• ", at + 1))
    ++listed;
  EXPECT_EQ(listed, 5);
  EXPECT_NE(text.find("<https://buildkite.com/acme/app/builds/42#job-100|job 100>"),
            std::string::npos);
  // Five or fewer: no note.
  auto few = notify::slack_message({finished_build(5), model::notice_kind::failed}, {}).dump();
  EXPECT_EQ(few.find("showing"), std::string::npos);
}

TEST(slack_format, message_has_commit_link_author_mention_pipeline_and_button) {
  auto b = finished_build(1);
  std::vector<config::person_config> people{{"someone@example.com", "", "U-OTHER"},
                                            {"ada@example.com", "", "U-ADA"}};
  auto msg = notify::slack_message({b, model::notice_kind::failed}, people);
  auto text = msg.dump();
  EXPECT_EQ(msg["text"], ":red_circle: Build 42 failed");
  EXPECT_NE(text.find("<https://github.com/acme/app/commit/8faa67ad6d0fda3ccf884c90acfd061d37e8558d"
                      "|Fix the flaky login test (8faa67a)>"),
            std::string::npos)
    << text;
  EXPECT_NE(text.find("<@U-ADA>"), std::string::npos) << "matched by e-mail, any case";
  EXPECT_NE(text.find("*Pipeline*\\nApp"), std::string::npos);
  auto& button = msg["blocks"].back()["elements"][0];
  EXPECT_EQ(button["text"]["text"], "Go to build");
  EXPECT_EQ(button["url"], b.info.url);
  // By GitHub login; unknown authors are named, with Slack markup escaped.
  EXPECT_NE(notify::slack_message({b, model::notice_kind::failed}, {{"", "ADA", "U-GH"}})
              .dump()
              .find("<@U-GH>"),
            std::string::npos);
  b.info.author = {"<script> & co", "", ""};
  EXPECT_NE(notify::slack_message({b, model::notice_kind::failed}, people).dump().find(
              "&lt;script&gt; &amp; co"),
            std::string::npos);
}

TEST(slack_format, commit_urls_from_the_usual_repository_spellings) {
  EXPECT_EQ(notify::commit_url("git@github.com:acme/app.git", "abc"),
            "https://github.com/acme/app/commit/abc");
  EXPECT_EQ(notify::commit_url("https://github.com/acme/app.git", "abc"),
            "https://github.com/acme/app/commit/abc");
  EXPECT_EQ(notify::commit_url("ssh://git@gitlab.example.com:2222/group/app", "abc"),
            "https://gitlab.example.com/group/app/commit/abc");
  EXPECT_EQ(notify::commit_url("", "abc"), "");
  EXPECT_EQ(notify::commit_url("not a url", "abc"), "");
}

TEST(slack_sink, posts_first_then_updates_the_message_it_was_given) {
  config::sink_config cfg;
  cfg.name = "slack";
  cfg.kind = "slack";
  cfg.token = "xoxb-1";
  cfg.channel = "C1";
  cfg.api_url = "http://127.0.0.1:1/api/";
  notify::slack_sink sink{cfg, {}};
  notify::outbox_entry e{"slack", {finished_build(1), model::notice_kind::failed}, 0};
  auto post = sink.request(e, std::nullopt);
  EXPECT_EQ(post.url, "http://127.0.0.1:1/api/chat.postMessage");
  EXPECT_EQ(json::parse(post.body)["channel"], "C1");
  auto ok = sink.judge({200, "", R"({"ok":true,"channel":"C9","ts":"1.2"})", std::nullopt},
                       std::nullopt);
  ASSERT_EQ(ok.kind, notify::outcome::delivered);
  ASSERT_TRUE(ok.message_ref);
  auto update = sink.request(e, ok.message_ref);
  EXPECT_EQ(update.url, "http://127.0.0.1:1/api/chat.update");
  EXPECT_EQ(json::parse(update.body)["ts"], "1.2");
  EXPECT_EQ(json::parse(update.body)["channel"], "C9");
  // Slack's verdicts: permanent errors give up, rate limits wait, a deleted message is posted anew.
  EXPECT_EQ(sink.judge({200, "", R"({"ok":false,"error":"invalid_auth"})", {}}, {}).kind,
            notify::outcome::give_up);
  auto limited = sink.judge({429, "", "", "7"}, {});
  EXPECT_EQ(limited.kind, notify::outcome::retry);
  EXPECT_EQ(limited.retry_after, std::chrono::seconds{7});
  auto gone = sink.judge({200, "", R"({"ok":false,"error":"message_not_found"})", {}}, ok.message_ref);
  EXPECT_EQ(gone.kind, notify::outcome::retry);
  EXPECT_TRUE(gone.forget_message);
  EXPECT_EQ(sink.judge({0, "connect: refused", "", {}}, {}).kind, notify::outcome::retry);
  EXPECT_EQ(sink.judge({200, "", "not json", {}}, {}).kind, notify::outcome::retry);
}

TEST(webhook_sink, signs_the_body_and_names_the_delivery) {
  config::sink_config cfg;
  cfg.name = "hook";
  cfg.kind = "webhook";
  cfg.url = "https://hooks.example.com/ci";
  cfg.secret = "s3cret";
  cfg.basic_user = "ci";
  cfg.basic_password = "pw";
  cfg.headers = {{"X-Team", "web"}};
  notify::webhook_sink sink{cfg};
  notify::outbox_entry e{"hook", {finished_build(2), model::notice_kind::failed}, 3};
  auto req = sink.request(e, std::nullopt);
  std::map<std::string, std::string> h(req.headers.begin(), req.headers.end());
  EXPECT_EQ(h["X-Buildtrack-Signature"], "sha256=" + support::hmac_sha256_hex("s3cret", req.body));
  EXPECT_EQ(h["X-Buildtrack-Delivery"], "hook:buildkite/app/42:1");
  EXPECT_EQ(h["Authorization"], "Basic Y2k6cHc=");
  EXPECT_EQ(h["X-Team"], "web");
  auto doc = json::parse(req.body);
  EXPECT_EQ(doc["kind"], "failed");
  EXPECT_EQ(doc["build"]["failed_jobs"].size(), 2u);
  EXPECT_EQ(sink.judge({204, "", "", {}}, {}).kind, notify::outcome::delivered);
  EXPECT_EQ(sink.judge({404, "", "", {}}, {}).kind, notify::outcome::give_up);
  EXPECT_EQ(sink.judge({503, "", "", {}}, {}).kind, notify::outcome::retry);
}

// A body template renders the documented variables, escaped for JSON strings: a
// commit message with quotes and newlines stays valid JSON. The example is the
// seed's analytics trigger: a Buildkite build started through its REST API.
TEST(webhook_sink, a_body_template_renders_the_documented_variables_as_valid_json) {
  config::sink_config cfg;
  cfg.name = "analytics";
  cfg.kind = "webhook";
  cfg.url = "https://api.buildkite.com/v2/organizations/acme/pipelines/analytics/builds";
  cfg.body_template = R"({"commit": "{{build.commit}}", "branch": "{{build.branch}}",
 "message": "{{build.message}}",
 "env": {"SOURCE_BUILD": "{{build.key}}", "SOURCE_KIND": "{{kind}}",
         "REVISION": "{{revision}}", "DELIVERY": "{{delivery}}"},
 "failed": [{{#build.failed_jobs}}"{{.}}",{{/build.failed_jobs}}"-"],
 "duration": {{#statistics.BuildDuration}}{{statistics.BuildDuration}}{{/statistics.BuildDuration}}{{^statistics.BuildDuration}}null{{/statistics.BuildDuration}}})";
  notify::webhook_sink sink{cfg};
  auto b = finished_build(2);
  b.info.message = "Say \"hi\"\nthen\tleave \\ now";
  b.statistics["BuildDuration"] = 12.5;
  notify::outbox_entry e{"analytics", {b, model::notice_kind::failed}, 0};
  auto req = sink.request(e, std::nullopt);
  auto doc = json::parse(req.body); // throws (fails the test) when the body is not JSON
  EXPECT_EQ(doc["message"], b.info.message);
  EXPECT_EQ(doc["commit"], b.info.commit);
  EXPECT_EQ(doc["branch"], "main");
  EXPECT_EQ(doc["env"]["SOURCE_BUILD"], "buildkite/app/42");
  EXPECT_EQ(doc["env"]["SOURCE_KIND"], "failed");
  EXPECT_EQ(doc["env"]["REVISION"], "1");
  EXPECT_EQ(doc["env"]["DELIVERY"], "analytics:buildkite/app/42:1");
  EXPECT_EQ(doc["failed"].size(), 3u); // two failed jobs, then "-"
  EXPECT_EQ(doc["duration"], 12.5);
  std::map<std::string, std::string> h(req.headers.begin(), req.headers.end());
  EXPECT_EQ(h["Content-Type"], "application/json");
}

TEST(outbox_entry, round_trips_through_its_encoding) {
  auto b = finished_build(3);
  b.streak = model::streak_result{model::verdict::broken, 1, 1};
  notify::outbox_entry e{"slack", {b, model::notice_kind::broken}, 2};
  auto back = notify::decode_outbox_entry(notify::encode(e));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->sink, "slack");
  EXPECT_EQ(back->attempts, 2u);
  EXPECT_EQ(back->notice.kind, model::notice_kind::broken);
  EXPECT_EQ(back->notice.subject, b);
  EXPECT_FALSE(notify::decode_outbox_entry("{\"sink\":1}"));
  EXPECT_FALSE(notify::decode_outbox_entry("nonsense"));
}

TEST(delivery_policy, backoff_grows_with_jitter_and_retry_after_is_parsed) {
  config::retry_config policy{10, std::chrono::seconds{1}, std::chrono::seconds{30}};
  using ms = std::chrono::milliseconds;
  EXPECT_EQ(notify::backoff(policy, 1, 0.0), ms{500});
  EXPECT_EQ(notify::backoff(policy, 1, 0.999), ms{999});
  EXPECT_EQ(notify::backoff(policy, 3, 0.0), ms{2000});
  EXPECT_EQ(notify::backoff(policy, 20, 0.0), ms{15000}); // capped, then jittered
  auto now = std::chrono::system_clock::from_time_t(784111777); // Sun, 06 Nov 1994 08:49:37 GMT
  EXPECT_EQ(notify::parse_retry_after("120", now), ms{120000});
  EXPECT_EQ(notify::parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now), ms{30000});
  EXPECT_EQ(notify::parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now), ms{0});
  EXPECT_EQ(notify::parse_retry_after("99999999", now), std::chrono::hours{1});
  EXPECT_FALSE(notify::parse_retry_after("soon", now));
}

TEST(notice_kinds, say_what_the_streak_and_retries_add) {
  auto failed = finished_build(1);
  EXPECT_EQ(model::notice_kind_of(failed), model::notice_kind::failed);
  failed.streak = model::streak_result{model::verdict::broken, 1, 0}; // for an older outcome
  EXPECT_EQ(model::notice_kind_of(failed), model::notice_kind::failed);
  auto passed = finished_build(0, model::build_state::passed);
  EXPECT_EQ(model::notice_kind_of(passed), model::notice_kind::passed);
  model::job retried;
  retried.group = retried.name = "flaky";
  model::attempt first, second;
  first.state = model::job_state::failed;
  first.exit_status = 1;
  first.fails = true;
  second.number = 1;
  second.state = model::job_state::passed;
  retried.attempts = {first, second};
  passed.jobs["flaky"] = retried;
  EXPECT_EQ(model::notice_kind_of(passed), model::notice_kind::recovered);
  passed.streak = model::streak_result{model::verdict::fixed, 0, 1};
  EXPECT_EQ(model::notice_kind_of(passed), model::notice_kind::fixed);
  auto canceled = finished_build(0, model::build_state::canceled);
  EXPECT_FALSE(model::notice_kind_of(canceled));
  using model::notice_kind;
  EXPECT_TRUE(model::wanted({notice_kind::failed}, notice_kind::still_failing));
  EXPECT_TRUE(model::wanted({notice_kind::passed}, notice_kind::recovered));
  EXPECT_FALSE(model::wanted({notice_kind::fixed}, notice_kind::passed));
  EXPECT_FALSE(model::wanted({notice_kind::broken}, notice_kind::still_failing));
}

// An outbox entry written by the previous release (no "v", the build in format 1) is
// still delivered after an upgrade; one from a newer release is refused, not misread.
TEST(outbox_entry, entries_of_the_previous_release_still_load) {
  std::optional<notify::outbox_entry> e;
  for (auto* release : {"v1", "v2", "v3", "v4", "v5"}) {
    e = notify::decode_outbox_entry(bt::test::fixture(std::string{"stored/"} + release
                                                      + "/outbox-entry.json"));
    ASSERT_TRUE(e) << release;
    EXPECT_EQ(e->sink, "hook");
    EXPECT_EQ(e->attempts, 2u);
    EXPECT_EQ(e->notice.kind, model::notice_kind::broken);
    EXPECT_EQ(e->notice.subject.state, model::build_state::failed);
    EXPECT_EQ(e->notice.subject.failed_jobs().size(), 1u) << release;
  }
  auto newer = nlohmann::json::parse(notify::encode(*e));
  EXPECT_EQ(newer["v"], 2);
  newer["v"] = 3;
  EXPECT_FALSE(notify::decode_outbox_entry(newer.dump()));
}

// The cdevents sink: pipelinerun.finished with the outcome and the failed jobs, a
// taskrun.finished for a job notice, each valid against its CDEvents 0.4.1 schema;
// binary mode puts the context in ce-* headers, structured mode wraps the event; the
// id is the delivery id, the same on every attempt; auth and signature as webhooks'.
TEST(cdevents_sink, pipeline_and_task_runs_are_schema_valid_cloud_events_with_stable_ids) {
  auto& pipeline_schema = test::schema("cdevents-0.4.1/pipelinerunfinished.json");
  auto& task_schema = test::schema("cdevents-0.4.1/taskrunfinished.json");
  config::sink_config cfg;
  cfg.name = "cd";
  cfg.kind = "cdevents";
  cfg.url = "https://events.example.com/";
  cfg.secret = "s3cret";
  cfg.event_source = "/ci/buildtrack";
  notify::cdevents_sink binary{cfg};
  auto b = finished_build(2);
  b.jobs["job-100"].attempts.front().id = "a-100";
  b.jobs["job-100"].attempts.front().finished = model::timestamp{std::chrono::seconds{1'700'000'000}};
  notify::outbox_entry e{"cd", {b, model::notice_kind::failed}, 0};
  auto req = binary.request(e, std::nullopt);
  std::map<std::string, std::string> h(req.headers.begin(), req.headers.end());
  auto event = json::parse(req.body);
  EXPECT_TRUE(pipeline_schema.accepts(event)) << pipeline_schema.problems(event).front();
  EXPECT_EQ(event["context"]["type"], "dev.cdevents.pipelinerun.finished.0.2.0");
  EXPECT_EQ(event["context"]["source"], "/ci/buildtrack");
  EXPECT_EQ(event["subject"]["id"], "buildkite/app/42");
  EXPECT_EQ(event["subject"]["content"]["pipelineName"], "App");
  EXPECT_EQ(event["subject"]["content"]["outcome"], "failure");
  EXPECT_EQ(event["subject"]["content"]["errors"], "failed jobs: job 100, job 101");
  EXPECT_EQ(h["Content-Type"], "application/json");
  EXPECT_EQ(h["ce-specversion"], "1.0");
  EXPECT_EQ(h["ce-id"], event["context"]["id"]);
  EXPECT_EQ(h["ce-type"], event["context"]["type"]);
  EXPECT_EQ(h["ce-source"], "/ci/buildtrack");
  EXPECT_EQ(h["ce-subject"], "buildkite/app/42");
  EXPECT_EQ(h["X-Buildtrack-Signature"], "sha256=" + support::hmac_sha256_hex("s3cret", req.body));
  // A retry is the same event.
  auto retried = e;
  retried.attempts = 3;
  EXPECT_EQ(json::parse(binary.request(retried, std::nullopt).body)["context"]["id"], event["context"]["id"]);

  cfg.mode = "structured";
  notify::cdevents_sink structured{cfg};
  notify::outbox_entry job{"cd", model::job_notice(b, "a-100"), 0};
  auto sreq = structured.request(job, std::nullopt);
  std::map<std::string, std::string> sh(sreq.headers.begin(), sreq.headers.end());
  EXPECT_EQ(sh["Content-Type"], "application/cloudevents+json");
  EXPECT_EQ(sh.count("ce-id"), 0u);
  auto ce = json::parse(sreq.body);
  EXPECT_EQ(ce["specversion"], "1.0");
  EXPECT_EQ(ce["id"], ce["data"]["context"]["id"]);
  EXPECT_NE(ce["id"], event["context"]["id"]);
  EXPECT_EQ(ce["type"], "dev.cdevents.taskrun.finished.0.2.0");
  auto& task = ce["data"];
  EXPECT_TRUE(task_schema.accepts(task)) << task_schema.problems(task).front();
  EXPECT_EQ(task["subject"]["content"]["taskName"], "job 100");
  EXPECT_EQ(task["subject"]["content"]["outcome"], "failure");
  EXPECT_EQ(task["subject"]["content"]["pipelineRun"]["id"], "buildkite/app/42");
  EXPECT_EQ(task["context"]["timestamp"], "2023-11-14T22:13:20.000Z");
}

TEST(delivery_log, keeps_the_latest_state_of_each_sinks_notice_per_build) {
  notify::delivery_log log{2};
  auto at = model::timestamp{std::chrono::milliseconds{1'700'000'000'000}};
  notify::outbox_entry slack{"slack", {finished_build(1), model::notice_kind::broken}, 0};
  notify::outbox_entry hook{"hook", {finished_build(1), model::notice_kind::broken}, 0};
  log.note(slack, notify::delivery_state::queued, at);
  log.note(hook, notify::delivery_state::sending, at);
  hook.attempts = 1;
  log.note(hook, notify::delivery_state::retrying, at + std::chrono::seconds{1}, "503 from the receiver",
           at + std::chrono::seconds{3});
  log.note(slack, notify::delivery_state::delivered, at + std::chrono::seconds{2});
  auto job = hook;
  job.notice.job = "attempt-9";
  log.note(job, notify::delivery_state::queued, at);

  auto notes = log.of(finished_build(1).key);
  ASSERT_EQ(notes.size(), 3u);
  EXPECT_EQ(notes[0]["sink"], "hook");
  EXPECT_EQ(notes[0]["state"], "retrying");
  EXPECT_EQ(notes[0]["attempts"], 1);
  EXPECT_EQ(notes[0]["detail"], "503 from the receiver");
  EXPECT_EQ(notes[0]["next_attempt"], model::format_time(at + std::chrono::seconds{3}));
  EXPECT_TRUE(notes[0]["job"].is_null());
  EXPECT_EQ(notes[1]["kind"], "job_finished");
  EXPECT_EQ(notes[1]["job"], "attempt-9");
  EXPECT_EQ(notes[2]["sink"], "slack");
  EXPECT_EQ(notes[2]["state"], "delivered");
  EXPECT_EQ(notes[2]["kind"], "broken");
  EXPECT_FALSE(notes[2].contains("detail"));

  // Bounded by builds: the build noted first goes first.
  auto numbered = [](const std::string& id) {
    auto b = finished_build(0, model::build_state::passed);
    b.key.id = id;
    return notify::outbox_entry{"slack", {b, model::notice_kind::passed}, 0};
  };
  log.note(numbered("43"), notify::delivery_state::queued, at);
  log.note(numbered("44"), notify::delivery_state::queued, at);
  EXPECT_EQ(log.builds(), 2u);
  EXPECT_TRUE(log.of(finished_build(1).key).empty());
  EXPECT_EQ(log.of(numbered("44").notice.subject.key).size(), 1u);
}
