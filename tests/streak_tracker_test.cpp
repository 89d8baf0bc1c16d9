#include "actors/streak_tracker.hpp"

#include <nlohmann/json.hpp>

#include "tests/actor_fixture.hpp"

using namespace bt;
using result = std::optional<model::streak_result>;

namespace {

struct streak_tracker_test : test::actor_fixture {
  actors::streak_tracker_actor tracker = sys->spawn(actors::streak_tracker,
                                                    std::vector<std::string>{"main", "release/*"});

  model::finished_effect finished(std::string branch, std::int64_t number, bool failed) {
    return {{"buildkite", "web", std::to_string(number)}, std::move(branch), number,
            failed ? model::build_state::failed : model::build_state::passed, false, 1};
  }
};

} // namespace

TEST_F(streak_tracker_test, judges_tracked_branches) {
  EXPECT_EQ(ask<result>(tracker, finished("main", 1, true)),
            (result{{model::verdict::broken, 1, 1}}));
  EXPECT_EQ(ask<result>(tracker, finished("main", 2, true)),
            (result{{model::verdict::still_failing, 2, 1}}));
  EXPECT_EQ(ask<result>(tracker, finished("release/1.0", 2, false)),
            (result{{model::verdict::passed, 0, 1}}));
}

TEST_F(streak_tracker_test, untracked_personal_and_canceled_builds_get_no_verdict) {
  EXPECT_EQ(ask<result>(tracker, finished("feature/x", 1, true)), result{});
  auto personal = finished("main", 2, true);
  personal.personal = true;
  EXPECT_EQ(ask<result>(tracker, personal), result{});
  auto canceled = finished("main", 3, false);
  canceled.state = model::build_state::canceled;
  EXPECT_EQ(ask<result>(tracker, canceled), result{});
  // None of them entered the streak: the next failure is the first.
  EXPECT_EQ(ask<result>(tracker, finished("main", 4, true)),
            (result{{model::verdict::broken, 1, 1}}));
}

TEST_F(streak_tracker_test, lists_streaks) {
  ask<result>(tracker, finished("main", 7, true));
  auto doc = nlohmann::json::parse(ask<std::string>(tracker, caf::get_atom::value));
  ASSERT_EQ(doc.size(), 1u);
  EXPECT_EQ(doc[0]["pipeline"], "web");
  EXPECT_EQ(doc[0]["state"], "failing");
  EXPECT_EQ(doc[0]["last_build"], 7);
}

TEST_F(streak_tracker_test, restored_streaks_continue_and_replays_keep_their_verdicts) {
  ask<result>(tracker, finished("main", 1, true));
  auto taken = ask<std::optional<model::streak_book>>(tracker, actors::snapshot_atom::value);
  ASSERT_TRUE(taken); // a verdict changed them
  auto book = *taken;
  // A new tracker (after a restart) gets the snapshot back.
  auto restored = sys->spawn(actors::streak_tracker, std::vector<std::string>{"main"});
  caf::anon_send(restored, caf::put_atom::value, book);
  run();
  // Replaying build 1 keeps its verdict; build 2 continues the streak.
  EXPECT_EQ(ask<result>(restored, finished("main", 1, true)),
            (result{{model::verdict::broken, 1, 1}}));
  EXPECT_EQ(ask<result>(restored, finished("main", 2, true)),
            (result{{model::verdict::still_failing, 2, 1}}));
}

// A build judged failed, then reopened by a late job and aborted, leaves its streak:
// the streak's newest build is the one before it again, and newer builds keep their
// verdicts. Forgetting what was never recorded changes nothing.
TEST_F(streak_tracker_test, a_judged_build_that_ends_aborted_leaves_its_streak) {
  ask<result>(tracker, finished("main", 1, false));
  ask<result>(tracker, finished("main", 2, true));
  auto aborted = finished("main", 2, false);
  aborted.state = model::build_state::aborted;
  aborted.revision = 2;
  caf::anon_send(tracker, actors::forget_atom::value, aborted);
  run();
  auto streaks = nlohmann::json::parse(ask<std::string>(tracker, caf::get_atom::value));
  ASSERT_EQ(streaks.size(), 1u);
  EXPECT_EQ(streaks[0]["last_build"], 1);
  EXPECT_EQ(streaks[0]["state"], "passing");
  EXPECT_EQ(streaks[0]["builds"], 1);
  auto snap = ask<std::optional<model::streak_book>>(tracker, actors::snapshot_atom::value);
  ASSERT_TRUE(snap) << "the change is written";
  caf::anon_send(tracker, actors::snapshot_atom::value, true);
  auto never = finished("main", 7, false);
  never.state = model::build_state::canceled;
  caf::anon_send(tracker, actors::forget_atom::value, never);
  run();
  EXPECT_FALSE(ask<std::optional<model::streak_book>>(tracker, actors::snapshot_atom::value));
  EXPECT_EQ(ask<result>(tracker, finished("main", 3, true)),
            (result{{model::verdict::broken, 1, 1}}))
    << "build 2's failure no longer counts";
}
