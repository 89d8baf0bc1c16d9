#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "sources/buildkite.hpp"
#include "tests/fixtures.hpp"

using namespace bt;
using bt::test::fixture;

namespace {

const auto now = *model::parse_time("2026-11-21 12:00:00 UTC");
const long long now_unix = std::chrono::duration_cast<std::chrono::seconds>(
                             now.time_since_epoch()).count();

config::buildkite_config cfg() {
  config::buildkite_config c;
  c.token = "s3cret-token";
  return c;
}

sources::buildkite_delivery parse_ok(std::string_view event, const std::string& body) {
  auto r = sources::buildkite_parse(event, body, now);
  if (auto* rej = std::get_if<sources::rejection>(&r))
    ADD_FAILURE() << rej->body();
  return std::get<sources::buildkite_delivery>(r);
}

sources::rejection parse_err(std::string_view event, const std::string& body) {
  auto r = sources::buildkite_parse(event, body, now);
  EXPECT_TRUE(std::holds_alternative<sources::rejection>(r));
  return std::holds_alternative<sources::rejection>(r) ? std::get<sources::rejection>(r)
                                                       : sources::rejection{};
}

} // namespace

TEST(buildkite_auth, token_is_accepted_and_wrong_or_missing_are_refused) {
  std::string body = "{}";
  EXPECT_FALSE(sources::buildkite_authenticate(cfg(), {"ping", "s3cret-token", ""}, body, now));
  auto wrong = sources::buildkite_authenticate(cfg(), {"ping", "s3cret-tokex", ""}, body, now);
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->status, 401);
  EXPECT_EQ(wrong->code, "bad_token");
  auto missing = sources::buildkite_authenticate(cfg(), {"ping", "", ""}, body, now);
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->code, "missing_credentials");
}

TEST(buildkite_auth, signature_good_stale_and_forged) {
  std::string body = fixture("buildkite/ping.json");
  auto good = sources::buildkite_signature("s3cret-token", now_unix - 10, body);
  EXPECT_FALSE(sources::buildkite_authenticate(cfg(), {"ping", "", good}, body, now));

  auto stale = sources::buildkite_signature("s3cret-token", now_unix - 301, body);
  auto r1 = sources::buildkite_authenticate(cfg(), {"ping", "", stale}, body, now);
  ASSERT_TRUE(r1);
  EXPECT_EQ(r1->code, "stale_signature");

  auto future = sources::buildkite_signature("s3cret-token", now_unix + 301, body);
  EXPECT_TRUE(sources::buildkite_authenticate(cfg(), {"ping", "", future}, body, now));

  auto forged = sources::buildkite_signature("other-secret", now_unix, body);
  auto r2 = sources::buildkite_authenticate(cfg(), {"ping", "", forged}, body, now);
  ASSERT_TRUE(r2);
  EXPECT_EQ(r2->code, "bad_signature");

  // A good signature over a different body is a forgery too.
  auto r3 = sources::buildkite_authenticate(cfg(), {"ping", "", good}, body + " ", now);
  ASSERT_TRUE(r3);
  EXPECT_EQ(r3->code, "bad_signature");

  auto r4 = sources::buildkite_authenticate(cfg(), {"ping", "", "signature=abc"}, body, now);
  ASSERT_TRUE(r4);
  EXPECT_EQ(r4->status, 401);
}

TEST(buildkite_auth, separate_signature_secret) {
  auto c = cfg();
  c.signature_secret = "hmac-key";
  std::string body = "{}";
  auto sig = sources::buildkite_signature("hmac-key", now_unix, body);
  EXPECT_FALSE(sources::buildkite_authenticate(c, {"ping", "", sig}, body, now));
  auto with_token = sources::buildkite_signature("s3cret-token", now_unix, body);
  EXPECT_TRUE(sources::buildkite_authenticate(c, {"ping", "", with_token}, body, now));
}

TEST(buildkite_auth, nothing_configured_refuses_everything) {
  config::buildkite_config none;
  EXPECT_TRUE(sources::buildkite_authenticate(none, {"ping", "", ""}, "{}", now));
  EXPECT_TRUE(sources::buildkite_authenticate(none, {"ping", "x", ""}, "{}", now));
}

TEST(buildkite_parse, job_finished_fixture) {
  auto d = parse_ok("job.finished", fixture("buildkite/job.finished.json"));
  ASSERT_EQ(d.envelopes.size(), 1u);
  auto& e = d.envelopes[0];
  EXPECT_EQ(e.key.str(), "buildkite/web-app/4242");
  ASSERT_TRUE(e.info);
  EXPECT_EQ(e.info->branch, "main");
  EXPECT_EQ(e.info->author.email, "ada@example.com"); // commit author, not the creator
  auto& j = std::get<model::job_event>(e.body);
  EXPECT_EQ(j.group, "go-unit");
  EXPECT_EQ(j.report.state, model::job_state::failed);
  EXPECT_EQ(j.report.exit_status, 1);
  EXPECT_EQ(j.report.number, 0);
  EXPECT_EQ(j.report.finished, model::parse_time("2026-11-20 09:12:32 UTC"));
}

TEST(buildkite_parse, retry_and_soft_fail_fixtures) {
  auto retry = parse_ok("job.finished", fixture("buildkite/job.finished.retry-passed.json"));
  auto& r = std::get<model::job_event>(retry.envelopes[0].body);
  EXPECT_EQ(r.group, "go-unit");
  EXPECT_EQ(r.report.number, 1);
  EXPECT_EQ(r.report.state, model::job_state::passed);
  auto soft = parse_ok("job.finished", fixture("buildkite/job.finished.soft-failed.json"));
  auto& s = std::get<model::job_event>(soft.envelopes[0].body);
  EXPECT_TRUE(s.report.soft_failed);
  EXPECT_FALSE(s.report.fails);
  EXPECT_EQ(s.group, "lint");
}

// Buildkite's outcome rule lives here, not in the model (SPEC §3.1).
TEST(buildkite_parse, the_source_decides_whether_an_attempt_fails) {
  using model::job_state;
  EXPECT_TRUE(sources::buildkite_fails(job_state::failed, 1, false));
  EXPECT_FALSE(sources::buildkite_fails(job_state::failed, 0, false));
  EXPECT_FALSE(sources::buildkite_fails(job_state::failed, std::nullopt, false));
  EXPECT_FALSE(sources::buildkite_fails(job_state::failed, 1, true));
  EXPECT_TRUE(sources::buildkite_fails(job_state::timed_out, std::nullopt, false));
  EXPECT_TRUE(sources::buildkite_fails(job_state::timed_out, 0, false));
  EXPECT_FALSE(sources::buildkite_fails(job_state::timed_out, 3, true));
  EXPECT_FALSE(sources::buildkite_fails(job_state::broken, 1, false));
  auto d = parse_ok("job.finished", fixture("buildkite/job.finished.json"));
  EXPECT_TRUE(std::get<model::job_event>(d.envelopes[0].body).report.fails);
}

TEST(buildkite_parse, build_finished_fixture) {
  auto d = parse_ok("build.finished", fixture("buildkite/build.finished.json"));
  auto& b = std::get<model::build_event>(d.envelopes[0].body);
  EXPECT_EQ(b.phase, model::build_event::finished);
  EXPECT_EQ(b.source_state, "failed");
  EXPECT_EQ(b.end, model::build_end::completed);
}

TEST(buildkite_parse, release_build_is_attributed_to_its_creator) {
  auto doc = nlohmann::json::parse(fixture("buildkite/build.finished.json"));
  doc["build"]["env"] = {{"RELEASE_PUBLIC", "true"}};
  auto d = parse_ok("build.finished", doc.dump());
  EXPECT_EQ(d.envelopes[0].info->author.email, "grace@example.com");
  doc["build"]["env"] = {{"RELEASE_INTERNAL", "true"}};
  EXPECT_EQ(parse_ok("build.finished", doc.dump()).envelopes[0].info->author.name,
            "Grace Hopper");
  doc["build"]["env"] = {{"RELEASE_PUBLIC", "false"}};
  EXPECT_EQ(parse_ok("build.finished", doc.dump()).envelopes[0].info->author.name,
            "Ada Lovelace");
}

TEST(buildkite_parse, triggered_build_names_its_parent) {
  auto doc = nlohmann::json::parse(fixture("buildkite/build.finished.json"));
  doc["build"]["triggered_from"] = {{"build_id", "x"},
                                    {"build_number", 77},
                                    {"build_pipeline_slug", "deploy"}};
  auto d = parse_ok("build.finished", doc.dump());
  ASSERT_TRUE(d.envelopes[0].info->parent);
  EXPECT_EQ(d.envelopes[0].info->parent->str(), "buildkite/deploy/77");
}

TEST(buildkite_parse, parallel_jobs_are_separate_groups) {
  auto doc = nlohmann::json::parse(fixture("buildkite/job.finished.json"));
  doc["job"]["parallel_group_index"] = 3;
  auto d = parse_ok("job.finished", doc.dump());
  EXPECT_EQ(std::get<model::job_event>(d.envelopes[0].body).group, "go-unit#3");
}

TEST(buildkite_parse, rfc3339_timestamps_are_accepted) {
  auto doc = nlohmann::json::parse(fixture("buildkite/job.finished.json"));
  doc["job"]["finished_at"] = "2026-11-20T09:12:32.000Z";
  auto d = parse_ok("job.finished", doc.dump());
  EXPECT_EQ(std::get<model::job_event>(d.envelopes[0].body).report.finished,
            model::parse_time("2026-11-20 09:12:32 UTC"));
}

TEST(buildkite_parse, ping_agent_and_waiter_change_nothing) {
  EXPECT_EQ(parse_ok("ping", fixture("buildkite/ping.json")).kind,
            sources::buildkite_delivery::ping);
  EXPECT_EQ(parse_ok("agent.disconnected", fixture("buildkite/agent.disconnected.json")).kind,
            sources::buildkite_delivery::ignored);
  auto doc = nlohmann::json::parse(fixture("buildkite/job.finished.json"));
  doc["job"]["type"] = "waiter";
  EXPECT_EQ(parse_ok("job.finished", doc.dump()).kind, sources::buildkite_delivery::ignored);
}

TEST(buildkite_parse, errors_name_the_field) {
  EXPECT_EQ(parse_err("job.finished", "{not json").status, 400);
  EXPECT_EQ(parse_err("job.finished", "[1,2]").status, 400);
  auto unknown = parse_err("build.exploded", fixture("buildkite/build.finished.json"));
  EXPECT_EQ(unknown.status, 422);
  EXPECT_EQ(unknown.field, "X-Buildkite-Event");

  auto doc = nlohmann::json::parse(fixture("buildkite/job.finished.json"));
  auto without = [&](auto edit) {
    auto copy = doc;
    edit(copy);
    return parse_err("job.finished", copy.dump());
  };
  EXPECT_EQ(without([](auto& d) { d["build"].erase("number"); }).field, "build.number");
  EXPECT_EQ(without([](auto& d) { d["build"]["number"] = "12"; }).field, "build.number");
  EXPECT_EQ(without([](auto& d) { d["pipeline"].erase("slug"); }).field, "pipeline.slug");
  EXPECT_EQ(without([](auto& d) { d.erase("pipeline"); }).field, "pipeline");
  EXPECT_EQ(without([](auto& d) { d["job"].erase("id"); }).field, "job.id");
  EXPECT_EQ(without([](auto& d) { d["job"]["exit_status"] = "one"; }).field, "job.exit_status");
  EXPECT_EQ(without([](auto& d) { d["job"]["finished_at"] = "soon"; }).field, "job.finished_at");
  EXPECT_EQ(without([](auto& d) { d["job"]["finished_at"] = "soon"; }).status, 422);
}

TEST(buildkite_parse, metric_labels_are_bounded) {
  EXPECT_EQ(sources::buildkite_event_label("job.finished"), "job.finished");
  EXPECT_EQ(sources::buildkite_event_label("build.skipped"), "build.skipped");
  EXPECT_EQ(sources::buildkite_event_label("ping"), "ping");
  EXPECT_EQ(sources::buildkite_event_label("agent.lost"), "agent");
  EXPECT_EQ(sources::buildkite_event_label("agent.anything-at-all"), "agent");
  EXPECT_EQ(sources::buildkite_event_label("build.exploded"), "unsupported");
  EXPECT_EQ(sources::buildkite_event_label("x\"}\nfake_metric 1"), "unsupported");
}

TEST(buildkite_parse, event_from_body_when_header_is_missing) {
  auto d = parse_ok("", fixture("buildkite/job.finished.json"));
  EXPECT_EQ(d.event, "job.finished");
  EXPECT_EQ(parse_err("", "{}").field, "X-Buildkite-Event");
}

// Issue 9, point 11: a key twice in one object, at any depth, in small objects and in
// ones past the pairwise-comparison size, is refused with its path.
TEST(buildkite_parse, duplicate_keys_are_refused_with_their_path) {
  auto body = fixture("buildkite/job.finished.json");
  auto insert_after = [&](const std::string& anchor, const std::string& text) {
    auto at = body.find(anchor);
    EXPECT_NE(at, std::string::npos) << anchor;
    return body.substr(0, at + anchor.size()) + text + body.substr(at + anchor.size());
  };
  auto top = parse_err("job.finished", insert_after("{", R"("event": "x", "event": "y",)"));
  EXPECT_EQ(top.status, 400);
  EXPECT_EQ(top.code, "duplicate_key");
  EXPECT_EQ(top.field, "event");
  std::string wide = R"("labels": {)";
  for (int i = 0; i < 30; ++i)
    wide += "\"K" + std::to_string(i) + "\": \"v\", ";
  wide += R"("K7": "again"},)";
  auto at = body.find("\"build\": {");
  ASSERT_NE(at, std::string::npos);
  auto nested = body.substr(0, at + 10) + wide + body.substr(at + 10);
  EXPECT_EQ(parse_err("job.finished", nested).field, "build.labels.K7");
  auto in_array = parse_err("job.finished",
                            insert_after("{", R"("list": [{"a": 1}, {"b": 1, "b": 2}],)"));
  EXPECT_EQ(in_array.field, "list[1].b");
  // The same keys in different objects are no duplicates.
  parse_ok("job.finished", insert_after("{", R"("list": [{"a": 1}, {"a": 1}],)"));
}
