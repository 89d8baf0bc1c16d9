// Targets that wait for messages, and build commands (SPEC §3.4, Harbormaster's rules):
// every ordering is a plain call sequence, time an input.
#include <gtest/gtest.h>

#include "model/build.hpp"
#include "model_checks.hpp"

using namespace bt::model;
using namespace std::chrono_literals;

namespace {

const build_key key{"native", "deploy", "7"};

timestamp at(int ms) {
  return timestamp{std::chrono::milliseconds{1'700'000'000'000LL + ms}};
}

struct targets : ::testing::Test {
  build b;

  applied feed(event_body body, int when) {
    auto a = apply(b, envelope{key, "", at(when), std::nullopt, std::move(body)}, at(when));
    bt::testing::expect_derived_facts_hold(b);
    return a;
  }
  /// A target's attempt finished running: passed and waiting, or failed.
  applied target(const std::string& name, int when, bool waits = true, bool fails = false,
                 std::int64_t timeout_ms = 0, const std::string& id = "") {
    job_event j;
    j.group = j.name = name;
    j.report.id = id.empty() ? name + "-1" : id;
    j.report.state = fails ? job_state::failed : job_state::passed;
    j.report.fails = fails;
    j.report.waits = waits;
    j.wait_timeout_ms = timeout_ms;
    j.numbered = false;
    return feed(j, when);
  }
  applied message(const std::string& name, message_kind kind, int when,
                  std::optional<std::uint64_t> generation = std::nullopt) {
    return feed(target_message{name, kind, generation, {}, {}}, when);
  }
  applied command(command_kind kind, int when) { return feed(build_command{kind}, when); }
  applied finished(int when) {
    return feed(build_event{build_event::finished, build_end::completed, "finished"}, when);
  }
  message_status status(std::size_t number) const { return b.messages.at(number - 1).status; }
  static std::optional<timestamp> deadline_in(const applied& a) {
    for (auto& e : a.effects)
      if (auto* d = std::get_if<deadline_effect>(&e))
        return d->due;
    return std::nullopt;
  }
  static bool announces(const applied& a) {
    for (auto& e : a.effects)
      if (std::holds_alternative<finished_effect>(e))
        return true;
    return false;
  }
};

} // namespace

TEST_F(targets, a_message_after_the_target_waits_passes_the_build) {
  target("deploy", 1);
  finished(2);
  EXPECT_EQ(b.state, build_state::waiting);
  EXPECT_TRUE(b.jobs.at("deploy").waiting());
  auto a = message("deploy", message_kind::pass, 3);
  EXPECT_EQ(b.state, build_state::passed);
  EXPECT_TRUE(announces(a));
  EXPECT_EQ(status(1), message_status::consumed);
  EXPECT_EQ(b.jobs.at("deploy").wait->end, wait_end::pass);
}

TEST_F(targets, a_fail_message_fails_the_build) {
  target("deploy", 1);
  finished(2);
  message("deploy", message_kind::fail, 3);
  EXPECT_EQ(b.state, build_state::failed);
  ASSERT_EQ(b.failed_jobs().size(), 1u);
}

TEST_F(targets, a_message_before_the_build_exists_is_kept_and_consumed_once_the_target_waits) {
  message("deploy", message_kind::pass, 1);
  EXPECT_EQ(b.state, build_state::pending);
  EXPECT_EQ(status(1), message_status::pending);
  target("deploy", 2);
  EXPECT_EQ(status(1), message_status::consumed);
  EXPECT_FALSE(b.jobs.at("deploy").waiting());
  finished(3);
  EXPECT_EQ(b.state, build_state::passed);
}

TEST_F(targets, the_first_terminal_message_wins_and_the_second_is_ignored) {
  message("deploy", message_kind::fail, 1);
  message("deploy", message_kind::pass, 2);
  target("deploy", 3);
  finished(4);
  EXPECT_EQ(b.state, build_state::failed);
  EXPECT_EQ(status(1), message_status::consumed);
  EXPECT_EQ(status(2), message_status::ignored);
  EXPECT_NE(b.messages[1].note.find("already ended"), std::string::npos);
}

TEST_F(targets, work_keeps_the_target_waiting_and_its_results_are_kept) {
  target("deploy", 1);
  finished(2);
  target_message work{"deploy", message_kind::work, std::nullopt,
                      {{"t1", "pass", 0.5, "suite", "a.cpp", ""}}, {}};
  feed(work, 3);
  EXPECT_EQ(b.state, build_state::waiting);
  EXPECT_EQ(status(1), message_status::consumed);
  EXPECT_EQ(b.messages[0].message.unit.size(), 1u);
  message("deploy", message_kind::pass, 4);
  EXPECT_EQ(b.state, build_state::passed);
}

TEST_F(targets, past_the_message_limit_settled_messages_go_first_and_pending_ones_stay) {
  build_limits two;
  two.max_messages = 2;
  auto send = [&](message_kind kind, int when) {
    return apply(b, envelope{key, "", at(when), std::nullopt,
                             target_message{"deploy", kind, std::nullopt, {}, {}}},
                 at(when), two);
  };
  send(message_kind::pass, 1); // pending: the target has not waited yet
  send(message_kind::fail, 2); // pending
  auto third = send(message_kind::pass, 3);
  EXPECT_EQ(third.trimmed, "messages");
  ASSERT_EQ(b.messages.size(), 2u); // both pending stay; the newcomer is only counted
  EXPECT_EQ(b.messages[1].number, 2u);
  EXPECT_EQ(b.omitted_messages, 1);
  apply(b, envelope{key, "", at(4), std::nullopt,
                    job_event{"deploy", "deploy", {"d-1", 0, job_state::passed, "", std::nullopt,
                                                   false, false, "", {}, {}, true}, false}},
        at(4), two);
  ASSERT_EQ(b.messages[0].status, message_status::consumed);
  ASSERT_EQ(b.messages[1].status, message_status::ignored);
  send(message_kind::work, 5); // the consumed one goes first
  ASSERT_EQ(b.messages.size(), 2u);
  EXPECT_EQ(b.messages[0].number, 2u);
  EXPECT_EQ(b.messages[1].message.kind, message_kind::work);
  EXPECT_EQ(b.omitted_messages, 2);
}

TEST_F(targets, a_paused_build_keeps_its_message_and_consumes_it_on_resume) {
  target("deploy", 1);
  finished(2);
  EXPECT_TRUE(command(command_kind::pause, 3).changed);
  message("deploy", message_kind::pass, 4);
  EXPECT_EQ(b.state, build_state::paused);
  EXPECT_EQ(status(1), message_status::pending);
  EXPECT_FALSE(command(command_kind::pause, 5).changed); // already paused
  command(command_kind::resume, 6);
  EXPECT_EQ(status(1), message_status::consumed);
  EXPECT_EQ(b.state, build_state::passed);
}

TEST_F(targets, abort_wins_over_a_later_pass) {
  target("deploy", 1);
  auto a = command(command_kind::abort, 2);
  EXPECT_EQ(b.state, build_state::aborted);
  EXPECT_TRUE(announces(a));
  message("deploy", message_kind::pass, 3);
  EXPECT_EQ(b.state, build_state::aborted);
  EXPECT_EQ(status(1), message_status::ignored);
}

TEST_F(targets, every_command_on_a_settled_build_is_refused) {
  target("deploy", 1);
  finished(2);
  message("deploy", message_kind::pass, 3);
  ASSERT_EQ(b.state, build_state::passed);
  auto before = b;
  for (auto kind : {command_kind::pause, command_kind::resume, command_kind::abort,
                    command_kind::restart}) {
    auto a = command(kind, 4);
    EXPECT_FALSE(a.changed) << to_string(kind);
    EXPECT_NE(a.ignored.find("passed"), std::string::npos) << a.ignored;
  }
  EXPECT_EQ(b, before);
}

TEST_F(targets, resume_applies_only_to_a_paused_build) {
  target("deploy", 1);
  auto a = command(command_kind::resume, 2);
  EXPECT_FALSE(a.changed);
  EXPECT_EQ(b.state, build_state::running);
}

TEST_F(targets, after_a_restart_messages_for_the_old_generation_change_nothing) {
  message("deploy", message_kind::fail, 1); // for generation 1
  command(command_kind::restart, 2);
  EXPECT_EQ(b.generation, 2u);
  EXPECT_TRUE(b.jobs.empty());
  EXPECT_EQ(status(1), message_status::ignored);
  message("deploy", message_kind::fail, 3, 1); // names generation 1
  EXPECT_EQ(status(2), message_status::ignored);
  target("deploy", 4);
  EXPECT_TRUE(b.jobs.at("deploy").waiting());
  message("deploy", message_kind::pass, 5); // the current generation
  finished(6);
  EXPECT_EQ(b.state, build_state::passed);
}

TEST_F(targets, one_failing_target_fails_the_build_at_once_while_another_still_waits) {
  target("deploy", 1);
  auto a = target("migrate", 2, /*waits=*/false, /*fails=*/true);
  EXPECT_EQ(b.state, build_state::failed);
  EXPECT_TRUE(announces(a));
  EXPECT_TRUE(b.jobs.at("deploy").waiting());
  // ...and the failure stands when the rest comes in.
  message("deploy", message_kind::pass, 3);
  finished(4);
  EXPECT_EQ(b.state, build_state::failed);
}

TEST_F(targets, a_failed_message_fails_fast_before_the_build_ends) {
  target("deploy", 1);
  target("smoke", 2);
  message("smoke", message_kind::fail, 3);
  EXPECT_EQ(b.state, build_state::failed);
}

TEST_F(targets, a_wait_timeout_sets_a_deadline_and_fails_the_target_when_it_passes) {
  auto a = target("deploy", 1000, true, false, 500);
  EXPECT_EQ(deadline_in(a), at(1500));
  EXPECT_EQ(next_deadline(b), at(1500));
  finished(1100);
  EXPECT_FALSE(feed(deadline_passed{"targets"}, 1499).changed); // not yet
  auto d = feed(deadline_passed{"targets"}, 1500);
  EXPECT_TRUE(d.changed);
  EXPECT_EQ(b.state, build_state::failed);
  EXPECT_EQ(b.jobs.at("deploy").wait->end, wait_end::timed_out);
  EXPECT_TRUE(announces(d));
  // The deadline is gone once nothing waits.
  ASSERT_TRUE(std::any_of(d.effects.begin(), d.effects.end(), [](auto& e) {
    auto* x = std::get_if<deadline_effect>(&e);
    return x && !x->due;
  }));
}

TEST_F(targets, a_target_that_got_its_message_first_is_not_failed_later) {
  target("deploy", 1000, true, false, 500);
  finished(1100);
  auto m = message("deploy", message_kind::pass, 1200);
  EXPECT_EQ(b.state, build_state::passed);
  EXPECT_TRUE(std::any_of(m.effects.begin(), m.effects.end(), [](auto& e) {
    auto* x = std::get_if<deadline_effect>(&e);
    return x && !x->due;
  }));
  EXPECT_FALSE(feed(deadline_passed{"targets"}, 1500).changed);
  EXPECT_EQ(b.state, build_state::passed);
}

TEST_F(targets, a_message_that_comes_after_the_deadline_finds_the_target_timed_out) {
  target("deploy", 1000, true, false, 500);
  finished(1100);
  // The timer's event is late: the message's own time decides.
  message("deploy", message_kind::pass, 1600);
  EXPECT_EQ(b.state, build_state::failed);
  EXPECT_EQ(status(1), message_status::ignored);
}

TEST_F(targets, a_retry_of_a_target_waits_again) {
  target("deploy", 1, true, false, 0, "d-1");
  message("deploy", message_kind::fail, 2);
  EXPECT_EQ(b.state, build_state::failed);
  command(command_kind::restart, 3); // refused: the build failed fast and is settled
  EXPECT_EQ(b.generation, 1u);
}

TEST_F(targets, a_message_for_a_target_that_does_not_wait_stays_pending) {
  target("lint", 1, /*waits=*/false);
  message("lint", message_kind::fail, 2);
  EXPECT_EQ(status(1), message_status::pending);
  EXPECT_EQ(b.state, build_state::running);
  finished(3);
  EXPECT_EQ(b.state, build_state::passed);
  EXPECT_EQ(status(1), message_status::pending); // a retry of it may still wait
}

TEST_F(targets, a_target_that_starts_waiting_after_the_build_passed_takes_it_back_to_waiting) {
  message("deploy", message_kind::fail, 1);
  finished(2);
  EXPECT_EQ(b.state, build_state::passed);
  auto a = target("deploy", 3);
  EXPECT_EQ(b.state, build_state::failed); // the message was there already
  EXPECT_TRUE(announces(a));
  EXPECT_EQ(b.revision, 2u);
}

TEST_F(targets, the_outcome_does_not_depend_on_the_order_events_came_in) {
  // A failed first attempt fails the build fast; its passing retry and the target's
  // message settle it as passed, in either order.
  for (bool retry_first : {true, false}) {
    b = build{};
    target("deploy", 1);
    feed(job_event{"unit", "unit", {"u1", 0, job_state::failed, "", 1, false, true}, true}, 2);
    EXPECT_EQ(b.state, build_state::failed);
    auto retry = job_event{"unit", "unit", {"u2", 1, job_state::passed, "", 0, false, false}, true};
    if (retry_first) {
      feed(retry, 3);
      EXPECT_EQ(b.state, build_state::running);
    }
    message("deploy", message_kind::pass, 4);
    if (!retry_first)
      feed(retry, 5);
    finished(6);
    EXPECT_EQ(b.state, build_state::passed) << retry_first;
  }
}

// A build judged failed (a job's first attempt failed) is reopened when the job's
// retry passes and starts to wait, then aborted: the verdict goes, the aborted
// outcome is announced (the tracker drops the build from its streak), and the
// verdict asked for the failure, arriving late, is ignored.
TEST_F(targets, a_judged_build_reopened_and_aborted_loses_its_verdict) {
  target("deploy", 1, false, true, 0, "deploy-1");
  finished(2);
  ASSERT_EQ(b.state, build_state::failed);
  feed(streak_result{verdict::broken, 1, b.revision}, 3);
  ASSERT_TRUE(b.streak);
  auto verdict_asked_at = b.revision;
  target("deploy", 4, true, false, 0, "deploy-2");
  ASSERT_EQ(b.state, build_state::waiting) << "the retry passed and waits for its message";
  auto abort = command(command_kind::abort, 5);
  ASSERT_EQ(b.state, build_state::aborted);
  EXPECT_FALSE(b.streak);
  ASSERT_TRUE(announces(abort));
  auto late = feed(streak_result{verdict::broken, 1, verdict_asked_at + 1}, 6);
  EXPECT_FALSE(b.streak) << "a verdict for an outcome the build no longer has";
  EXPECT_FALSE(late.ignored.empty());
}
