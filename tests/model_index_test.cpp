// Build summaries and the status page's overview (model/index): pure, time passed in.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "model/index.hpp"
#include "model/json.hpp"
#include "model/time.hpp"

using namespace bt::model;
using namespace std::chrono_literals;

namespace {

const timestamp t0{std::chrono::milliseconds{1'700'000'000'000}};

build_summary summary(const std::string& pipeline, const std::string& id, std::optional<std::int64_t> number,
                      build_state state, timestamp updated, const std::string& branch = "main") {
  build_summary s;
  s.key = {"native", pipeline, id};
  s.branch = branch;
  s.number = number;
  s.state = state;
  s.updated = updated;
  return s;
}

TEST(build_summary, names_the_targets_that_wait_and_the_statistics_a_sink_still_needs) {
  build b;
  b.key = {"native", "deploy", "7"};
  b.info.branch = "main";
  b.state = build_state::waiting;
  b.updated = t0 + 10s;
  auto& j = b.jobs["prod"];
  j.group = j.name = "prod";
  j.attempts.push_back({.id = "a1", .state = job_state::passed, .waits = true});
  j.wait = target_wait{"a1", t0, t0 + 1h, std::nullopt, 0};
  auto& failing = b.jobs["unit"];
  failing.group = "unit";
  failing.attempts.push_back({.id = "a2", .state = job_state::failed, .fails = true});
  count_jobs(b);
  collation c;
  c.started = t0;
  c.received = {"size"};
  b.collations["coverage"] = c;
  b.collations["done"] = collation{.started = t0, .released = release_reason::all_statistics};
  collation_rules rules{{"coverage", {{"coverage", "size", "speed"}, 5min, 1h}}};

  auto s = summarize(b, &rules);
  EXPECT_EQ(s.failed_jobs, 1u);
  ASSERT_EQ(s.targets.size(), 1u);
  EXPECT_EQ(s.targets[0].job, "prod");
  EXPECT_EQ(s.targets[0].since, t0);
  EXPECT_EQ(s.targets[0].deadline, t0 + 1h);
  ASSERT_EQ(s.statistics.size(), 1u) << "an ended wait is not listed";
  EXPECT_EQ(s.statistics[0].sink, "coverage");
  EXPECT_EQ(s.statistics[0].missing, (std::vector<std::string>{"coverage", "speed"}));
  // Unfinished: the failure timeout, counted from the start, is the next look.
  EXPECT_EQ(s.statistics[0].until, t0 + 1h);

  // A sink that never hears of the build holds nothing back: its wait is not listed.
  rules["coverage"].pipelines = {"stats"};
  EXPECT_TRUE(summarize(b, &rules).statistics.empty());
  rules["coverage"].pipelines = {"*"};
  rules["coverage"].branches = {"release/*"};
  EXPECT_TRUE(summarize(b, &rules).statistics.empty());

  // Without the rules the wait is still listed, with nothing more known.
  auto bare = summarize(b);
  ASSERT_EQ(bare.statistics.size(), 1u);
  EXPECT_TRUE(bare.statistics[0].missing.empty());
  EXPECT_FALSE(bare.statistics[0].until);
}

TEST(build_summary, a_listing_is_the_same_whatever_its_update_time) {
  auto a = summary("app", "1", 1, build_state::running, t0);
  auto b = a;
  b.updated = t0 + 5s;
  EXPECT_TRUE(same_listing(a, b));
  b.failed_jobs = 1;
  EXPECT_FALSE(same_listing(a, b));
  b = a;
  b.streak = streak_result{verdict::broken, 1, 1};
  EXPECT_FALSE(same_listing(a, b));
  b = a;
  b.targets.push_back({"prod", t0, std::nullopt});
  EXPECT_FALSE(same_listing(a, b));
}

// The summary is written without a DOM; its text must be what nlohmann would write for
// the documented fields (README, "Build lists"), byte for byte where nlohmann and JSON
// agree on one spelling.
TEST(build_summary, its_text_is_the_documented_listing_as_nlohmann_would_write_it) {
  auto s = summary("app \"x\"\\y", "4\u00e9", 12, build_state::waiting, t0 + 2s, "caf\u00e9/branch");
  s.failed_jobs = 3;
  s.streak = streak_result{verdict::still_failing, 2, 9};
  s.targets = {{"prod", t0, t0 + 1h}, {"stage", t0 + 1s, std::nullopt}};
  s.statistics = {{"coverage", {"size", "speed"}, t0 + 5min}, {"done", {}, std::nullopt}};
  auto time = [](timestamp t) { return format_time(t); };
  nlohmann::json expected = {
    {"key", s.key.str()}, {"source", "native"}, {"pipeline", s.key.pipeline}, {"id", s.key.id},
    {"branch", s.branch}, {"state", "waiting"}, {"updated_at", time(t0 + 2s)}, {"number", 12},
    {"streak", {{"verdict", "still_failing"}, {"failures", 2}}}, {"failed_job_count", 3},
    {"waiting_targets", {{{"job", "prod"}, {"since", time(t0)}, {"deadline", time(t0 + 1h)}},
                         {{"job", "stage"}, {"since", time(t0 + 1s)}, {"deadline", nullptr}}}},
    {"waiting_statistics",
     {{{"sink", "coverage"}, {"missing", {"size", "speed"}}, {"until", time(t0 + 5min)}},
      {{"sink", "done"}, {"missing", nlohmann::json::array()}, {"until", nullptr}}}}};
  EXPECT_EQ(summary_text(s), expected.dump());

  auto bare = summary("app", "1", std::nullopt, build_state::pending, t0);
  bare.updated.reset();
  EXPECT_EQ(summary_text(bare),
            R"({"branch":"main","failed_job_count":0,"id":"1","key":"native/app/1","number":null,)"
            R"("pipeline":"app","source":"native","state":"pending","streak":null,"updated_at":null,)"
            R"("waiting_statistics":[],"waiting_targets":[]})");

  // Text that is not valid UTF-8 or holds control characters still gives valid JSON.
  bare.branch = std::string{"a\nb\xff"};
  auto parsed = nlohmann::json::parse(summary_text(bare));
  EXPECT_EQ(parsed["branch"], "a\nb\xEF\xBF\xBD");
}

TEST(build_index, an_overview_gives_each_branch_its_newest_builds_by_number_and_the_active_builds) {
  build_index index;
  // Numbers decide the order within a branch, not when a build last changed.
  index.upsert(summary("app", "3", 3, build_state::failed, t0 + 1s));
  index.upsert(summary("app", "1", 1, build_state::passed, t0 + 9s));
  index.upsert(summary("app", "2", 2, build_state::running, t0 + 2s));
  index.upsert(summary("app", "4", 4, build_state::passed, t0 + 3s));
  index.upsert(summary("app", "f1", std::nullopt, build_state::passed, t0, "feature"));
  index.upsert(summary("lib", "1", 1, build_state::waiting, t0 + 5s));
  auto stats = summary("web", "1", 1, build_state::passed, t0 + 4s);
  stats.statistics.push_back({"coverage", {"coverage"}, t0 + 1h});
  index.upsert(stats);

  auto view = index.overview_of({}, 3);
  ASSERT_EQ(view.branches.size(), 4u);
  EXPECT_EQ(view.branches[0].branch, "feature");
  EXPECT_EQ(view.branches[1].pipeline, "app");
  EXPECT_EQ(view.branches[2].pipeline, "lib");
  EXPECT_EQ(view.branches[3].pipeline, "web");
  auto& app = view.branches[1].builds;
  ASSERT_EQ(app.size(), 3u);
  EXPECT_EQ(app[0]->key.id, "4");
  EXPECT_EQ(app[1]->key.id, "3");
  EXPECT_EQ(app[2]->key.id, "2");
  // Active: not finished, or waiting for statistics; the latest change first.
  ASSERT_EQ(view.active.size(), 3u);
  EXPECT_EQ(view.active[0]->key.pipeline, "lib");
  EXPECT_EQ(view.active[1]->key.pipeline, "web");
  EXPECT_EQ(view.active[2]->key.id, "2");

  build_query only_app;
  only_app.pipeline = "app";
  only_app.branch = "main";
  auto filtered = index.overview_of(only_app, 20);
  ASSERT_EQ(filtered.branches.size(), 1u);
  EXPECT_EQ(filtered.branches[0].builds.size(), 4u);
  build_query other_source;
  other_source.source = "buildkite";
  EXPECT_TRUE(index.overview_of(other_source, 20).branches.empty());
}

} // namespace
