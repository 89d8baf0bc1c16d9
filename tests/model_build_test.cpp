#include <gtest/gtest.h>

#include "model/build.hpp"
#include "model/notice.hpp"
#include "sources/buildkite.hpp"
#include "model_checks.hpp"

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
  // The model takes the source's word; these tests speak as Buildkite does.
  j.report.fails = bt::sources::buildkite_fails(state, exit, soft);
  return envelope{key, "", at(0), std::nullopt, j};
}

envelope finished_env(build_end end = build_end::completed, std::string word = "passed") {
  return envelope{key, "", at(0), std::nullopt,
                  build_event{build_event::finished, end, std::move(word)}};
}

struct fixture : ::testing::Test {
  build b;
  int clock = 0;
  applied feed(const envelope& e) {
    auto a = apply(b, e, at(++clock));
    bt::testing::expect_derived_facts_hold(b);
    return a;
  }
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

// Issue 9, point 1: every accepted event was acknowledged, so an event past a limit
// must not be lost from the outcome. 4,096 passing jobs, then a failing one.
TEST_F(fixture, past_the_job_limit_a_failing_job_still_fails_the_build) {
  build_limits limits;
  for (size_t i = 0; i < limits.max_jobs; ++i)
    feed(job_env("j" + std::to_string(i), "g" + std::to_string(i), 0, job_state::passed, 0));
  auto over = feed(job_env("bad", "bad", 0, job_state::failed, 1));
  EXPECT_TRUE(over.changed);
  EXPECT_EQ(over.trimmed, "jobs");
  feed(finished_env(build_end::completed, "failed"));
  EXPECT_EQ(b.jobs.size(), limits.max_jobs);
  EXPECT_EQ(b.omitted_jobs, 1);
  EXPECT_EQ(b.state, build_state::failed);
  ASSERT_EQ(b.failed_jobs().size(), 1u);
  EXPECT_EQ(b.failed_jobs()[0]->group, "bad");
}

TEST_F(fixture, at_the_job_limit_failing_and_fixed_jobs_are_kept_before_passing_ones) {
  build_limits limits{2, 64, 1024};
  auto feed_limited = [&](const envelope& e) {
    auto a = apply(b, e, at(++clock), limits);
    bt::testing::expect_derived_facts_hold(b);
    return a;
  };
  feed_limited(job_env("f1", "fails", 0, job_state::failed, 1));
  feed_limited(job_env("x1", "fixed", 0, job_state::failed, 1));
  feed_limited(job_env("x2", "fixed", 1, job_state::passed, 0));
  feed_limited(job_env("p1", "passes", 0, job_state::passed, 0));
  EXPECT_FALSE(b.jobs.contains("passes")) << "the one job whose going changes nothing";
  feed_limited(job_env("n1", "new", 0, job_state::failed, 1));
  // Only a fixed one could go now: the fixed list loses it, the state stays right.
  EXPECT_TRUE(b.jobs.contains("fails"));
  EXPECT_TRUE(b.jobs.contains("new"));
  EXPECT_FALSE(b.jobs.contains("fixed"));
  feed_limited(job_env("m1", "more", 0, job_state::failed, 1));
  EXPECT_FALSE(b.jobs.contains("more")) << "every job fails: the build fails anyway";
  feed_limited(finished_env(build_end::completed, "failed"));
  EXPECT_EQ(b.state, build_state::failed);
  EXPECT_EQ(b.omitted_jobs, 3);
}

// 70 attempts of one step where only the last passes: the job is fixed, not failed.
TEST_F(fixture, past_the_attempt_limit_the_latest_attempts_decide_and_fixed_is_remembered) {
  build_limits limits;
  for (int i = 0; i < 69; ++i)
    feed(job_env("a" + std::to_string(i), "flaky", i, job_state::failed, 1));
  auto last = feed(job_env("a69", "flaky", 69, job_state::passed, 0));
  EXPECT_EQ(last.trimmed, "attempts");
  feed(finished_env());
  auto& j = b.jobs.at("flaky");
  EXPECT_EQ(j.attempts.size(), limits.max_attempts);
  EXPECT_EQ(j.omitted_attempts, 70 - static_cast<std::int64_t>(limits.max_attempts));
  EXPECT_EQ(j.latest().id, "a69");
  EXPECT_FALSE(j.failed());
  EXPECT_TRUE(j.fixed());
  EXPECT_EQ(b.state, build_state::passed);
  // An old attempt arriving late is the one let go; the decision stands.
  feed(job_env("a-old", "flaky", -1, job_state::failed, 1));
  EXPECT_EQ(j.latest().id, "a69");
  EXPECT_EQ(b.state, build_state::passed);
}

TEST_F(fixture, the_deciding_attempt_is_never_let_go) {
  build_limits limits{4096, 2, 1024};
  apply(b, job_env("a0", "t", 0, job_state::failed, 1), at(1), limits);
  apply(b, job_env("a1", "t", 1, job_state::running), at(2), limits);
  apply(b, job_env("a2", "t", 2, job_state::running), at(3), limits);
  auto& j = b.jobs.at("t");
  ASSERT_EQ(j.attempts.size(), 2u);
  EXPECT_EQ(j.attempts[0].id, "a0") << "the only finished attempt decides the job";
  EXPECT_TRUE(j.failed());
}

TEST_F(fixture, statistics_past_their_limit_are_counted) {
  build_limits limits{4096, 64, 1};
  apply(b, envelope{key, "", at(0), std::nullopt, statistic_event{"a", 1}}, at(1), limits);
  auto r = apply(b, envelope{key, "", at(0), std::nullopt, statistic_event{"b", 2}}, at(2), limits);
  EXPECT_EQ(r.trimmed, "statistics");
  EXPECT_EQ(b.statistics.size(), 1u);
  EXPECT_EQ(b.omitted_statistics, 1);
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

// The model takes each source's word for an attempt's outcome (SPEC §3.3): a native
// `failed` without an exit status fails; Buildkite's exit-status rule is Buildkite's.
TEST_F(fixture, an_attempt_the_source_says_fails_fails_without_an_exit_status) {
  auto e = job_env("n1", "deploy", 0, job_state::failed);
  std::get<job_event>(e.body).report.fails = true;
  feed(e);
  feed(finished_env());
  EXPECT_EQ(b.state, build_state::failed);
  EXPECT_EQ(b.failed_jobs().size(), 1u);
}

// SPEC §3.1: a timed-out Buildkite job fails whatever its exit status (the seed let
// one without an exit status pass).
TEST_F(fixture, a_timed_out_job_without_an_exit_status_fails_the_build) {
  feed(job_env("t1", "e2e", 0, job_state::timed_out));
  feed(finished_env());
  EXPECT_EQ(b.state, build_state::failed);
}

TEST_F(fixture, a_build_its_ci_says_failed_fails_without_failing_jobs) {
  feed(job_env("a", "unit", 0, job_state::passed, 0));
  feed(finished_env(build_end::failed, "failed"));
  EXPECT_EQ(b.state, build_state::failed);
  EXPECT_TRUE(b.failed_jobs().empty());
}

// Attempts without a number come in arrival order, after every attempt known; a
// report for a known attempt keeps its place.
TEST_F(fixture, unnumbered_attempts_are_ordered_by_arrival) {
  auto attempt = [&](std::string id, job_state state) {
    auto e = job_env(std::move(id), "flaky", 0, state);
    auto& j = std::get<job_event>(e.body);
    j.numbered = false;
    j.report.fails = state == job_state::failed;
    return e;
  };
  feed(attempt("x", job_state::running));
  feed(attempt("x", job_state::failed));
  feed(attempt("y", job_state::running));
  feed(attempt("z", job_state::scheduled));
  feed(attempt("y", job_state::passed));
  auto& j = b.jobs.at("flaky");
  ASSERT_EQ(j.attempts.size(), 3u);
  EXPECT_EQ(j.attempts[0].id, "x");
  EXPECT_EQ(j.attempts[1].id, "y");
  EXPECT_EQ(j.attempts[2].id, "z");
  EXPECT_EQ(j.attempts[2].number, 2);
  EXPECT_TRUE(j.fixed()); // y decided it: z has not finished
}

TEST(build_state, new_states_have_names_and_count_as_ended_or_not) {
  EXPECT_EQ(parse_build_state("paused"), build_state::paused);
  EXPECT_EQ(parse_build_state("aborted"), build_state::aborted);
  EXPECT_FALSE(is_final(build_state::paused));
  EXPECT_TRUE(is_final(build_state::aborted));
  EXPECT_FALSE(is_final(build_state::waiting));
  EXPECT_TRUE(is_final(build_state::interrupted));
}

// A job notice is announced once per attempt that finishes; the attempt keeps the
// mark through later reports, and the build counts every announcement.
TEST_F(fixture, each_finished_attempt_is_announced_once_marked_and_counted) {
  announce_rules jobs{{}, true};
  auto announced = [&](const envelope& e) {
    auto a = apply(b, e, at(++clock), {}, jobs);
    std::vector<std::string> ids;
    for (auto& effect : a.effects)
      if (auto* j = std::get_if<job_finished_effect>(&effect))
        ids.push_back(j->attempt);
    return ids;
  };
  using ids = std::vector<std::string>;
  EXPECT_EQ(announced(job_env("u1", "unit", 0, job_state::running)), ids{});
  EXPECT_EQ(announced(job_env("u1", "unit", 0, job_state::failed, 1)), ids{"u1"});
  EXPECT_EQ(announced(job_env("u1", "unit", 0, job_state::failed, 2)), ids{})
    << "a changed report of a finished attempt";
  EXPECT_TRUE(b.jobs.at("unit").attempts.at(0).announced) << "kept through that report";
  EXPECT_EQ(announced(job_env("u2", "unit", 1, job_state::passed, 0)), ids{"u2"});
  EXPECT_EQ(b.announced_jobs, 2u);
  // Without a sink that asks, nothing is announced or marked.
  apply(b, job_env("l1", "lint", 0, job_state::passed, 0), at(++clock));
  EXPECT_FALSE(b.jobs.at("lint").attempts.at(0).announced);
  EXPECT_EQ(b.announced_jobs, 2u);
  // Recovery: when the outbox counted fewer, every marked attempt is announced again
  // (the outbox takes each once); when it counted them all, none is.
  EXPECT_TRUE(unrecorded_job_notices(b, 2).empty());
  ids again;
  for (auto& n : unrecorded_job_notices(b, 1)) {
    EXPECT_EQ(n.kind, notice_kind::job_finished);
    again.push_back(*n.job);
  }
  EXPECT_EQ(again, (ids{"u1", "u2"}));
}
