// The native event API's parser (SPEC §3.3), without HTTP: what each event becomes.
#include <gtest/gtest.h>

#include "sources/native.hpp"

using namespace bt;

namespace {

const auto now = *model::parse_time("2026-11-21 12:00:00 UTC");

std::vector<model::envelope> parse_ok(std::string_view type, const std::string& body) {
  auto r = sources::native_parse(type, body, now);
  if (auto* rej = std::get_if<sources::rejection>(&r))
    ADD_FAILURE() << rej->body();
  return r.index() == 0 ? std::get<0>(r) : std::vector<model::envelope>{};
}

sources::rejection refused(std::string_view type, const std::string& body) {
  auto r = sources::native_parse(type, body, now);
  EXPECT_EQ(r.index(), 1u) << body;
  return r.index() == 1 ? std::get<1>(r) : sources::rejection{};
}

} // namespace

TEST(native_parse, a_job_event_becomes_an_attempt_the_source_has_judged) {
  auto events = parse_ok("", R"({"type":"job.finished","delivery":"d-7","time":"2026-11-20T09:14:10Z",
    "build":{"source":"teamcity","pipeline":"app","id":1042,"number":1042,"branch":"main",
             "author":{"name":"Ada","email":"ada@example.com","login":"ada"}},
    "job":{"id":"u-1","step":"unit","name":"Unit tests","attempt":2,"state":"failed"}})");
  ASSERT_EQ(events.size(), 1u);
  auto& e = events[0];
  EXPECT_EQ(e.key.str(), "teamcity/app/1042");
  EXPECT_EQ(e.delivery, "d-7");
  EXPECT_EQ(e.info->author.login, "ada");
  auto& j = std::get<model::job_event>(e.body);
  EXPECT_EQ(j.group, "unit");
  EXPECT_EQ(j.name, "Unit tests");
  EXPECT_TRUE(j.numbered);
  EXPECT_EQ(j.report.number, 2);
  EXPECT_TRUE(j.report.fails); // failed, no exit status: fails all the same
  EXPECT_EQ(j.report.finished, model::parse_time("2026-11-20T09:14:10Z"));
}

TEST(native_parse, batches_skip_blank_lines_and_accept_crlf) {
  auto events = parse_ok("application/x-ndjson; charset=utf-8",
                         "{\"type\":\"build.started\",\"build\":{\"pipeline\":\"a\",\"id\":\"1\"}}\r\n"
                         "\r\n   \n"
                         "{\"type\":\"statistic\",\"build\":{\"pipeline\":\"a\",\"id\":\"1\"},"
                         "\"statistic\":{\"key\":\"  coverage \",\"value\":81.5}}");
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].key.str(), "native/a/1");
  auto& stat = std::get<model::statistic_event>(events[1].body);
  EXPECT_EQ(stat.key, "coverage");
  EXPECT_EQ(stat.value, 81.5);
}

TEST(native_parse, build_outcomes_map_onto_how_the_build_ended) {
  auto end_of = [](const std::string& body) {
    auto events = parse_ok("", body);
    return events.empty() ? model::build_end::completed
                          : std::get<model::build_event>(events[0].body).end;
  };
  auto b = R"("build":{"pipeline":"a","id":"1")";
  EXPECT_EQ(end_of(std::string{R"({"type":"build.finished",)"} + b + "}}"), model::build_end::completed);
  EXPECT_EQ(end_of(std::string{R"({"type":"build.finished",)"} + b + R"(,"status":"failed"}})"),
            model::build_end::failed);
  EXPECT_EQ(end_of(std::string{R"({"type":"build.finished",)"} + b + R"(,"status":"canceled"}})"),
            model::build_end::canceled);
  EXPECT_EQ(end_of(std::string{R"({"type":"build.interrupted",)"} + b + "}}"),
            model::build_end::interrupted);
  EXPECT_EQ(refused("", std::string{R"({"type":"build.started",)"} + b + R"(,"status":"failed"}})").field,
            "build.status");
}

TEST(native_parse, refusals_name_the_field_and_the_line) {
  EXPECT_EQ(refused("", R"({"type":"job.finished","build":{"pipeline":"a","id":"1"},"job":{"id":"x","state":"passed"}})").field,
            "job.name");
  EXPECT_EQ(refused("", R"({"type":"job.started","build":{"pipeline":"a","id":"1"},"job":{"id":"x","name":"n","waits_for_message":true}})").field,
            "job.waits_for_message");
  EXPECT_EQ(refused("", R"({"type":"build.started","build":{"source":"harbormaster","pipeline":"a","id":"1"}})").field,
            "build.source");
  EXPECT_EQ(refused("", R"({"type":"build.started","build":{"pipeline":"a","id":"1"},"colour":1})").field,
            "colour");
  EXPECT_EQ(refused("", R"({"type":"statistic","build":{"pipeline":"a","id":"1"},"statistic":{"key":"  ","value":1}})").field,
            "statistic.key");
  auto line = refused("application/x-ndjson",
                      "{\"type\":\"build.started\",\"build\":{\"pipeline\":\"a\",\"id\":\"1\"}}\n[]\n");
  EXPECT_EQ(line.status, 400);
  EXPECT_EQ(line.line, 2u);
  EXPECT_EQ(refused("application/x-ndjson", "\n\n").code, "empty_batch");
  EXPECT_EQ(refused("text/csv", "a,b").status, 415);
}
