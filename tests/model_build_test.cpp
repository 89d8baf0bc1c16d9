#include <gtest/gtest.h>

#include "model/build.hpp"

using namespace bt::model;
using namespace std::chrono_literals;

namespace {

const build_key key{"buildkite", "web-app", "42"};

timestamp at(int seconds) {
  return timestamp{std::chrono::milliseconds{1'700'000'000'000LL + seconds * 1000LL}};
}

envelope job_env(std::string id, std::string group, std::int64_t attempt, job_state state,
                 std::optional<std::int64_t> exit = std::nullopt, bool soft = false) {
  job_event j;
  j.group = group;
  j.name = group;
  j.report.id = std::move(id);
  j.report.number = attempt;
  j.report.state = state;
  j.report.exit_status = exit;
  j.report.soft_failed = soft;
  return envelope{key, "", at(0), std::nullopt, j};
}

envelope finished_env(build_end end = build_end::completed, std::string word = "passed") {
  return envelope{key, "", at(0), std::nullopt,
                  build_event{build_event::finished, end, std::move(word)}};
}

struct fixture : ::testing::Test {
  build b;
  int clock = 0;
  applied feed(const envelope& e) { return apply(b, e, at(++clock)); }
  size_t finished_effects(const applied& a) {
    size_t n = 0;
    for (auto& e : a.effects)
      n += std::holds_alternative<finished_effect>(e);
    return n;
  }
};

} // namespace

TEST_F(fixture, two_steps_pass_and_one_fails_then_passes_is_a_fixed_job_and_a_passed_build) {
  feed(job_env("a", "lint", 0, job_state::passed, 0));
  feed(job_env("b", "build", 0, job_state::passed, 0));
  feed(job_env("c1", "test", 0, job_state::failed, 1));
  feed(job_env("c2", "test", 1, job_state::passed, 0));
  feed(finished_env());
  EXPECT_EQ(b.state, build_state::passed);
  ASSERT_EQ(b.fixed_jobs().size(), 1u);
  EXPECT_EQ(b.fixed_jobs()[0]->group, "test");
  EXPECT_TRUE(b.failed_jobs().empty());
}

TEST_F(fixture, two_failed_steps_both_retried_green_are_fixed) {
  feed(job_env("a1", "unit", 0, job_state::failed, 1));
  feed(job_env("b1", "e2e", 0, job_state::timed_out, 2));
  feed(job_env("a2", "unit", 1, job_state::passed, 0));
  feed(job_env("b2", "e2e", 1, job_state::passed, 0));
  feed(finished_env());
  EXPECT_EQ(b.state, build_state::passed);
  EXPECT_EQ(b.fixed_jobs().size(), 2u);
}

TEST_F(fixture, retry_arriving_before_the_failed_attempt_is_still_the_latest) {
  feed(job_env("a2", "unit", 1, job_state::passed, 0));
  feed(job_env("a1", "unit", 0, job_state::failed, 1));
  feed(finished_env());
  EXPECT_EQ(b.state, build_state::passed);
  EXPECT_EQ(b.fixed_jobs().size(), 1u);
}

TEST_F(fixture, late_failing_job_after_build_finished_fails_the_build_and_bumps_revision) {
  feed(job_env("a", "lint", 0, job_state::passed, 0));
  auto fin = feed(finished_env(build_end::completed, "failed"));
  EXPECT_EQ(b.state, build_state::passed);
  EXPECT_EQ(finished_effects(fin), 1u);
  EXPECT_EQ(b.revision, 1u);
  auto late = feed(job_env("t", "test", 0, job_state::failed, 1));
  EXPECT_EQ(b.state, build_state::failed);
  EXPECT_EQ(b.revision, 2u);
  ASSERT_EQ(finished_effects(late), 1u);
  auto& eff = std::get<finished_effect>(late.effects[0]);
  EXPECT_EQ(eff.state, build_state::failed);
  EXPECT_EQ(eff.revision, 2u);
}

TEST_F(fixture, soft_fail_with_exit_1_passes) {
  feed(job_env("a", "lint", 0, job_state::failed, 1, /*soft=*/true));
  feed(finished_env());
  EXPECT_EQ(b.state, build_state::passed);
  EXPECT_TRUE(b.failed_jobs().empty());
}

TEST_F(fixture, exit_0_with_state_failed_passes) {
  feed(job_env("a", "lint", 0, job_state::failed, 0));
  feed(finished_env());
  EXPECT_EQ(b.state, build_state::passed);
}

TEST_F(fixture, failed_job_with_positive_exit_fails_the_build) {
  feed(job_env("a", "lint", 0, job_state::failed, 3));
  feed(finished_env());
  EXPECT_EQ(b.state, build_state::failed);
  EXPECT_EQ(b.failed_jobs().size(), 1u);
}

TEST_F(fixture, canceled_expired_broken_skipped_keep_their_state_and_do_not_fail) {
  feed(job_env("a", "a", 0, job_state::canceled));
  feed(job_env("b", "b", 0, job_state::expired));
  feed(job_env("c", "c", 0, job_state::broken));
  feed(job_env("d", "d", 0, job_state::skipped));
  feed(finished_env(build_end::canceled, "canceled"));
  EXPECT_EQ(b.state, build_state::canceled);
  EXPECT_EQ(b.jobs.at("b").latest().state, job_state::expired);
  EXPECT_EQ(b.jobs.at("c").latest().state, job_state::broken);
}

TEST_F(fixture, duplicate_job_delivery_changes_nothing) {
  auto first = feed(job_env("a", "lint", 0, job_state::failed, 1));
  EXPECT_TRUE(first.changed);
  auto again = feed(job_env("a", "lint", 0, job_state::failed, 1));
  EXPECT_TRUE(again.duplicate);
  EXPECT_FALSE(again.changed);
  EXPECT_EQ(b.jobs.at("lint").attempts.size(), 1u);
}

TEST_F(fixture, duplicate_delivery_id_changes_nothing) {
  auto e = job_env("a", "lint", 0, job_state::running);
  e.delivery = "d-1";
  EXPECT_TRUE(feed(e).changed);
  auto again = job_env("a", "lint", 0, job_state::passed, 0);
  again.delivery = "d-1";
  EXPECT_TRUE(feed(again).duplicate);
  EXPECT_EQ(b.jobs.at("lint").latest().state, job_state::running);
}

TEST_F(fixture, duplicate_build_finished_announces_once) {
  auto one = feed(finished_env());
  auto two = feed(finished_env());
  EXPECT_EQ(finished_effects(one), 1u);
  EXPECT_TRUE(two.duplicate);
  EXPECT_TRUE(two.effects.empty());
}

TEST_F(fixture, started_after_finished_does_not_regress_a_job) {
  feed(job_env("a", "lint", 0, job_state::passed, 0));
  auto stale = feed(job_env("a", "lint", 0, job_state::running));
  EXPECT_FALSE(stale.changed);
  EXPECT_EQ(b.jobs.at("lint").latest().state, job_state::passed);
}

TEST_F(fixture, build_running_after_finished_is_ignored) {
  feed(finished_env());
  auto stale = feed(envelope{key, "", at(0), std::nullopt,
                             build_event{build_event::started, build_end::completed, "running"}});
  EXPECT_FALSE(stale.changed);
  EXPECT_EQ(b.state, build_state::passed);
}

TEST_F(fixture, child_build_rolls_up_to_its_parent) {
  build_info info;
  info.number = 7;
  info.parent = build_key{"buildkite", "parent", "3"};
  auto e = job_env("x", "deploy", 0, job_state::failed, 1);
  e.info = info;
  feed(e);
  auto fin = feed(finished_env(build_end::completed, "failed"));
  ASSERT_EQ(fin.effects.size(), 2u);
  auto& up = std::get<rollup_effect>(fin.effects[1]);
  EXPECT_EQ(up.parent.str(), "buildkite/parent/3");
  EXPECT_EQ(up.job.report.state, job_state::failed);
  EXPECT_EQ(up.job.report.number, 7);

  build parent;
  apply(parent, envelope{up.parent, "", at(0), std::nullopt, up.job}, at(1));
  apply(parent, envelope{up.parent, "", at(0), std::nullopt,
                         build_event{build_event::finished, build_end::completed, "passed"}},
        at(2));
  EXPECT_EQ(parent.state, build_state::failed);
}

TEST_F(fixture, too_many_jobs_are_refused_not_stored) {
  for (size_t i = 0; i < build_limits::max_jobs; ++i)
    feed(job_env("j" + std::to_string(i), "g" + std::to_string(i), 0, job_state::passed, 0));
  auto over = feed(job_env("over", "over", 0, job_state::passed, 0));
  EXPECT_FALSE(over.changed);
  EXPECT_FALSE(over.ignored.empty());
  EXPECT_EQ(b.jobs.size(), build_limits::max_jobs);
}

TEST_F(fixture, a_retry_that_has_not_finished_does_not_decide_the_job) {
  feed(job_env("a1", "test", 0, job_state::failed, 1));
  feed(finished_env(build_end::completed, "failed"));
  EXPECT_EQ(b.state, build_state::failed);
  auto scheduled = feed(job_env("a2", "test", 1, job_state::scheduled));
  EXPECT_EQ(b.state, build_state::failed);
  EXPECT_TRUE(scheduled.effects.empty());
  feed(job_env("a2", "test", 1, job_state::running));
  EXPECT_EQ(b.state, build_state::failed);
  auto passed = feed(job_env("a2", "test", 1, job_state::passed, 0));
  EXPECT_EQ(b.state, build_state::passed);
  EXPECT_EQ(b.fixed_jobs().size(), 1u);
  EXPECT_EQ(passed.effects.size(), 1u);
}

TEST_F(fixture, a_job_with_no_finished_attempt_is_neither_failed_nor_fixed) {
  feed(job_env("a1", "test", 0, job_state::running));
  feed(finished_env());
  EXPECT_EQ(b.state, build_state::passed);
  EXPECT_TRUE(b.failed_jobs().empty());
  EXPECT_TRUE(b.fixed_jobs().empty());
}

TEST_F(fixture, announcements_repeat_the_current_outcome_of_a_finished_build_only) {
  EXPECT_TRUE(announcements(b).empty());
  feed(job_env("a", "unit", 0, job_state::failed, 1));
  EXPECT_TRUE(announcements(b).empty());
  auto finished = feed(finished_env());
  ASSERT_EQ(finished.effects.size(), 1u);
  auto again = announcements(b);
  ASSERT_EQ(again.size(), 1u);
  auto& f = std::get<finished_effect>(again[0]);
  EXPECT_EQ(f.revision, b.revision);
  EXPECT_EQ(f.state, build_state::failed);
}

TEST_F(fixture, a_verdict_for_an_older_outcome_never_replaces_a_newer_one) {
  feed(finished_env());
  feed(job_env("a", "unit", 0, job_state::failed, 1)); // late failure: revision 2
  ASSERT_EQ(b.revision, 2u);
  feed(envelope{key, "", at(0), std::nullopt, streak_result{verdict::broken, 1, 2}});
  auto stale = feed(envelope{key, "", at(0), std::nullopt, streak_result{verdict::passed, 0, 1}});
  EXPECT_FALSE(stale.changed);
  EXPECT_EQ(b.streak, (streak_result{verdict::broken, 1, 2}));
}
