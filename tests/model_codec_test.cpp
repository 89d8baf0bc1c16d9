#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "model/codec.hpp"
#include "sources/buildkite.hpp"
#include "tests/fixtures.hpp"

using namespace bt::model;
using nlohmann::json;

namespace {

timestamp at(int s) {
  return timestamp{std::chrono::milliseconds{1'700'000'000'000LL + s * 1000LL}};
}

const build_key key{"buildkite", "web-app", "42"};

envelope job(int t, std::string id, std::string group, std::int64_t number, job_state state,
             std::optional<std::int64_t> exit = std::nullopt) {
  job_event j;
  j.group = group;
  j.name = "step " + group;
  j.report = {id, number, state, std::string{to_string(state)}, exit, false,
              bt::sources::buildkite_fails(state, exit, false), "https://ci/" + id, at(t), is_terminal(state) ? std::optional{at(t + 1)}
                                                            : std::nullopt};
  build_info info;
  info.number = 42;
  info.branch = "main";
  info.commit = "8faa67ad";
  info.message = "Fix it\n\nfor real, with ünïcode";
  info.author = {"Ada", "ada@example.com", "ada"};
  info.parent = build_key{"buildkite", "parent", "7"};
  return {key, "d-" + id + std::to_string(t), at(t), info, j};
}

/// A build's whole life, out of order, with a retry, a duplicate, a statistic, a
/// verdict and a late failure.
std::vector<envelope> storm() {
  return {
    {key, "", at(0), std::nullopt, build_event{build_event::scheduled, build_end::completed, "scheduled"}},
    job(1, "a1", "unit", 0, job_state::running),
    job(2, "b2", "lint", 1, job_state::passed, 0),
    job(3, "a1", "unit", 0, job_state::failed, 1),
    job(4, "b1", "lint", 0, job_state::failed, 2),
    job(4, "b1", "lint", 0, job_state::failed, 2),
    {key, "", at(5), std::nullopt, statistic_event{"BuildDuration", 12.5}},
    {key, "", at(6), std::nullopt, build_event{build_event::finished, build_end::completed, "failed"}},
    {key, "", at(7), std::nullopt, streak_result{verdict::broken, 1}},
    job(8, "a2", "unit", 1, job_state::passed, 0),
    job(9, "c1", "e2e", 0, job_state::timed_out, 3),
  };
}

/// Attempt `i` of job "t", failed unless `passes`.
envelope flaky_attempt(int i, bool passes) {
  return job(i, "f" + std::to_string(i), "t", i, passes ? job_state::passed : job_state::failed,
             passes ? 0 : 1);
}

build run(const std::vector<envelope>& events, build b = {}) {
  for (auto& e : events)
    apply(b, e, e.received);
  return b;
}

} // namespace

TEST(codec, every_event_round_trips) {
  for (auto& e : storm()) {
    auto back = codec::decode_envelope(codec::encode(e));
    ASSERT_TRUE(back) << codec::encode(e);
    EXPECT_EQ(*back, e);
  }
}

// What the journal carries for a relay comes back as it went in, and builds ignore it.
TEST(codec, relayed_inputs_round_trip_and_builds_ignore_them) {
  envelope e{key, "", at(10), std::nullopt, relayed{"treeherder", R"({"exchange":"e","payload":{"q":"\"ü\n"}})"}};
  auto text = codec::encode(e);
  EXPECT_NE(text.find(R"("type":"relay")"), std::string::npos) << text;
  auto back = codec::decode_envelope(text);
  ASSERT_TRUE(back) << text;
  EXPECT_EQ(*back, e);
  build b;
  EXPECT_FALSE(apply(b, e, e.received).changed);
}

TEST(codec, a_build_round_trips) {
  auto b = run(storm());
  ASSERT_TRUE(b.is_finished());
  ASSERT_TRUE(b.streak);
  ASSERT_FALSE(b.statistics.empty());
  auto back = codec::decode_build(codec::encode(b));
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, b);
}

TEST(codec, what_a_limit_let_go_round_trips) {
  build_limits limits{1, 2, 1};
  build b;
  for (auto& e : storm())
    apply(b, e, e.received, limits);
  apply(b, envelope{key, "", at(20), std::nullopt, statistic_event{"Other", 1}}, at(20), limits);
  ASSERT_GT(b.omitted_jobs, 0);
  ASSERT_GT(b.omitted_statistics, 0);
  auto back = codec::decode_build(codec::encode(b));
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, b);
  build flaky;
  for (int i = 0; i < 3; ++i)
    apply(flaky, flaky_attempt(i, i == 2), at(i), limits);
  ASSERT_TRUE(flaky.jobs.at("t").omitted_failure);
  auto again = codec::decode_build(codec::encode(flaky));
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, flaky);
}

TEST(codec, snapshot_at_any_point_plus_the_replayed_tail_equals_the_whole_run) {
  auto events = storm();
  auto whole = run(events);
  for (size_t cut = 0; cut <= events.size(); ++cut) {
    auto head = run({events.begin(), events.begin() + static_cast<std::ptrdiff_t>(cut)});
    auto snapshot = codec::decode_build(codec::encode(head));
    ASSERT_TRUE(snapshot) << "cut " << cut;
    auto recovered = run({events.begin() + static_cast<std::ptrdiff_t>(cut), events.end()},
                         *snapshot);
    EXPECT_EQ(recovered, whole) << "cut " << cut;
  }
}

TEST(codec, replaying_an_already_snapshotted_event_changes_nothing) {
  // Recovery may replay events the snapshot already holds (the journal is trimmed
  // behind snapshots, not exactly at them): they must be recognised as duplicates.
  auto events = storm();
  auto whole = run(events);
  auto again = run(events, whole);
  EXPECT_EQ(again, whole);
}

TEST(codec, streaks_round_trip) {
  streak_book book{16};
  book.record({"buildkite", "web", "main"}, 1, false);
  book.record({"buildkite", "web", "main"}, 2, true);
  book.record({"buildkite", "web", "main"}, 3, true);
  book.record({"buildkite", "api", "release/1"}, 9, true);
  auto back = codec::decode_streaks(codec::encode(book));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->streaks(), book.streaks());
  EXPECT_EQ(back->history_limit(), 16u);
  // The restored book keeps judging where the old one stopped.
  EXPECT_EQ(back->record({"buildkite", "web", "main"}, 4, true),
            (streak_result{verdict::still_failing, 3}));
}

TEST(codec, malformed_documents_are_refused_without_throwing) {
  auto good = json::parse(codec::encode(storm()[3]));
  EXPECT_FALSE(codec::decode_envelope("[]"));
  EXPECT_FALSE(codec::decode_envelope("{}"));
  std::string why;
  EXPECT_FALSE(codec::decode_envelope(R"({"v":5,"key":)", &why));
  EXPECT_NE(why.find("not JSON"), std::string::npos) << why;
  auto missing = good;
  missing.erase("received");
  EXPECT_FALSE(codec::decode_envelope(missing.dump(), &why));
  EXPECT_NE(why.find("field 'received' missing"), std::string::npos) << why;
  auto wrong_type = good;
  wrong_type["received"] = "yesterday";
  EXPECT_FALSE(codec::decode_envelope(wrong_type.dump(), &why));
  EXPECT_NE(why.find("'received' is not an integer"), std::string::npos) << why;
  auto bad_enum = good;
  bad_enum["body"]["report"]["state"] = 99;
  EXPECT_FALSE(codec::decode_envelope(bad_enum.dump()));
  auto unknown = good;
  unknown["body"]["type"] = "telepathy";
  EXPECT_FALSE(codec::decode_envelope(unknown.dump()));
  auto build_doc = json::parse(codec::encode(run(storm())));
  build_doc["jobs"][0]["attempts"] = json::array();
  EXPECT_FALSE(codec::decode_build(build_doc.dump()));
  EXPECT_FALSE(codec::decode_streaks(R"({"history_limit":"x","streaks":[]})"));
}

TEST(codec, text_survives_quotes_controls_unicode_and_odd_numbers) {
  build b;
  b.key = {"buildkite", "we\"b\\app", "id/1"};
  b.info.message = "line 1\nline 2\t\"quoted\" \\ back \x01 ctrl — ünïcödé 🚀";
  b.info.author = {"Zoë", "zoe@example.com", "zoë"};
  b.statistics = {{"ratio", 0.1}, {"huge", 1e300}, {"tiny", -2.5e-300}, {"whole", 42}};
  b.recent_deliveries = {"a", "\"b\""};
  b.info.number = -7;
  auto text = codec::encode(b);
  auto back = codec::decode_build(text);
  ASSERT_TRUE(back) << text;
  EXPECT_EQ(*back, b);
}

TEST(codec, invalid_utf8_is_replaced_not_written) {
  build b;
  b.key = {"buildkite", "web", "1"};
  b.info.message = std::string{"ok \xC3\x28 bad \xFF end"};
  auto doc = json::parse(codec::encode(b)); // must parse: the bytes were replaced
  EXPECT_EQ(doc["info"]["message"], "ok \xEF\xBF\xBD( bad \xEF\xBF\xBD end");
}

// Stored data evolves: documents carry their format version and store enumerations by
// name; what earlier releases wrote (version 1, enumerations by number; version 2,
// without the sources' outcome; version 3, without targets that wait; version 4,
// without waits for statistics; version 5, with every field written even when it holds
// its default; kept in tests/fixtures/stored/v1 to v5 as written by them) still loads
// and means the same.
TEST(codec, documents_carry_their_version_and_enumerations_by_name) {
  auto b = run(storm());
  auto doc = json::parse(codec::encode(b));
  EXPECT_EQ(doc["v"], 6);
  EXPECT_EQ(doc["state"], "failed");
  EXPECT_EQ(doc["end"], "completed");
  EXPECT_EQ(doc["jobs"][0]["attempts"][0]["state"], "timed_out");
  EXPECT_EQ(doc["streak"][0], "broken");
  auto first = json::parse(codec::encode(storm()[0]));
  EXPECT_EQ(first["v"], 6);
  EXPECT_EQ(first["body"]["phase"], "scheduled");
  streak_book book{4};
  book.record({"buildkite", "web", "main"}, 1, true);
  auto streaks = json::parse(codec::encode(book));
  EXPECT_EQ(streaks["v"], 6);
  EXPECT_EQ(streaks["streaks"][0]["builds"][0][2][0], "broken");
}

class earlier_release : public ::testing::TestWithParam<const char*> {
protected:
  std::string sample(const char* name) {
    return bt::test::fixture(std::string{"stored/"} + GetParam() + "/" + name);
  }
};

TEST_P(earlier_release, documents_still_load_and_behave) {
  auto events = storm();
  std::istringstream journal{sample("journal.ndjson")};
  std::string line;
  size_t i = 0;
  for (; std::getline(journal, line); ++i) {
    ASSERT_LT(i, events.size());
    auto e = codec::decode_envelope(line);
    ASSERT_TRUE(e) << line;
    EXPECT_EQ(*e, events[i]) << line;
  }
  EXPECT_EQ(i, events.size());
  auto b = codec::decode_build(sample("build.json"));
  ASSERT_TRUE(b);
  EXPECT_EQ(*b, run(storm()));
  // ...and behaves: the late passing retry of a stored failed build fixes it.
  auto late = events[9];
  late.delivery = "late-retry";
  auto& report = std::get<job_event>(late.body).report;
  report.id = "c2";
  report.number = 1;
  report.state = job_state::passed;
  std::get<job_event>(late.body).group = "e2e";
  EXPECT_TRUE(apply(*b, late, at(20)).changed);
  EXPECT_EQ(b->state, build_state::passed);
  auto streaks = codec::decode_streaks(sample("streaks.json"));
  ASSERT_TRUE(streaks);
  EXPECT_EQ(streaks->record({"buildkite", "web", "main"}, 4, true),
            (streak_result{verdict::still_failing, 3}));
}

INSTANTIATE_TEST_SUITE_P(codec, earlier_release, ::testing::Values("v1", "v2", "v3", "v4", "v5"));

// Before version 3 the model applied Buildkite's rule itself; an attempt read from
// such a document keeps the outcome that rule gave it, even where Buildkite's rule
// has changed since (a timed-out job without an exit status now fails).
TEST(codec, attempts_of_earlier_formats_keep_the_outcome_they_were_stored_with) {
  auto doc = json::parse(bt::test::fixture("stored/v2/build.json"));
  auto& attempt = doc["jobs"][0]["attempts"][0];
  ASSERT_EQ(attempt["state"], "timed_out");
  attempt["exit_status"] = nullptr;
  auto b = codec::decode_build(doc.dump());
  ASSERT_TRUE(b);
  EXPECT_FALSE(b->jobs.at("e2e").attempts[0].fails);
  attempt["exit_status"] = 3;
  EXPECT_TRUE(codec::decode_build(doc.dump())->jobs.at("e2e").attempts[0].fails);
}

TEST(codec, unknown_names_and_future_versions_are_refused_with_the_reason) {
  std::string why;
  auto doc = json::parse(codec::encode(run(storm())));
  auto unknown_state = doc;
  unknown_state["state"] = "paused_forever";
  EXPECT_FALSE(codec::decode_build(unknown_state.dump(), &why));
  EXPECT_NE(why.find("unknown build state 'paused_forever'"), std::string::npos) << why;
  auto unknown_job = doc;
  unknown_job["jobs"][0]["attempts"][0]["state"] = "levitating";
  EXPECT_FALSE(codec::decode_build(unknown_job.dump(), &why));
  EXPECT_NE(why.find("unknown job state 'levitating'"), std::string::npos) << why;
  auto numbered = doc;
  numbered["state"] = 4; // a version 2 or later document never stores a number
  EXPECT_FALSE(codec::decode_build(numbered.dump(), &why));
  auto future = doc;
  future["v"] = 7;
  EXPECT_FALSE(codec::decode_build(future.dump(), &why));
  EXPECT_NE(why.find("format version 7"), std::string::npos) << why;
  auto event = json::parse(codec::encode(storm()[7]));
  event["body"]["end"] = "vanished";
  EXPECT_FALSE(codec::decode_envelope(event.dump(), &why));
  EXPECT_NE(why.find("unknown build end 'vanished'"), std::string::npos) << why;
}

TEST(codec, announced_job_notices_round_trip) {
  build b;
  announce_rules jobs{{}, true};
  for (int i = 0; i < 3; ++i)
    apply(b, flaky_attempt(i, i == 2), at(i), {}, jobs);
  ASSERT_EQ(b.announced_jobs, 3u);
  auto back = codec::decode_build(codec::encode(b));
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, b);
}

// Version 6 leaves out what holds its default: an event with nothing but its key and
// body is a fraction of what version 5 wrote, and reads back the same. A field left
// out of an earlier version's document is still an error: those wrote every field.
TEST(codec, fields_at_their_default_are_left_out_and_read_back) {
  job_event bare;
  bare.group = "unit";
  bare.name = "unit";
  bare.report.id = "a1";
  bare.report.state = job_state::running;
  envelope e{key, "", at(1), build_info{}, bare};
  auto text = codec::encode(e);
  auto doc = json::parse(text);
  EXPECT_EQ(doc["v"], 6);
  EXPECT_EQ(doc["info"], json::object());
  EXPECT_EQ(doc["body"]["report"], (json{{"id", "a1"}, {"state", "running"}}));
  for (auto* left_out : {"delivery", "numbered", "wait_timeout_ms"})
    EXPECT_FALSE(doc.contains(left_out) || doc["body"].contains(left_out)) << left_out;
  EXPECT_EQ(codec::decode_envelope(text), e);
  // What is not a default is written, zero exit status and unnumbered events included.
  auto full = storm()[2]; // passed with exit status 0
  std::get<job_event>(full.body).numbered = false;
  EXPECT_EQ(codec::decode_envelope(codec::encode(full)), full);
  EXPECT_EQ(json::parse(codec::encode(full))["body"]["report"]["exit_status"], 0);
  for (auto& each : storm())
    EXPECT_EQ(codec::decode_envelope(codec::encode(each)), each);
  // A version 5 document without a field it always wrote is refused, as before.
  auto v5 = json::parse(bt::test::fixture("stored/v5/build.json"));
  v5["jobs"][0]["attempts"][0].erase("url");
  std::string why;
  EXPECT_FALSE(codec::decode_build(v5.dump(), &why));
  EXPECT_NE(why.find("'url' missing"), std::string::npos) << why;
}
