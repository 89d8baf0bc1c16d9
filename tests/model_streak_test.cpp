#include <gtest/gtest.h>

#include "model/streak.hpp"
#include "model/time.hpp"

using namespace bt::model;

namespace {
const streak_key web{"buildkite", "web-app", "main"};
}

TEST(streak, failure_streak_1_2_3_then_reset) {
  streak_book book;
  EXPECT_EQ(book.record(web, 1, false), (streak_result{verdict::passed, 0}));
  EXPECT_EQ(book.record(web, 2, true), (streak_result{verdict::broken, 1}));
  EXPECT_EQ(book.record(web, 3, true), (streak_result{verdict::still_failing, 2}));
  EXPECT_EQ(book.record(web, 4, true), (streak_result{verdict::still_failing, 3}));
  EXPECT_EQ(book.record(web, 5, false), (streak_result{verdict::fixed, 0}));
  EXPECT_EQ(book.record(web, 6, true), (streak_result{verdict::broken, 1}));
}

TEST(streak, out_of_order_finish_of_n_and_n_plus_1) {
  streak_book book;
  book.record(web, 10, false);
  // N+1 finishes first, failing: judged against N-1.
  EXPECT_EQ(book.record(web, 12, true), (streak_result{verdict::broken, 1}));
  // N finishes late, failing: broken against N-1; N+1 keeps its verdict.
  EXPECT_EQ(book.record(web, 11, true), (streak_result{verdict::broken, 1}));
  EXPECT_EQ(book.streaks().at(web).at(12).result, (streak_result{verdict::broken, 1}));
  // The next build is judged against the newest.
  EXPECT_EQ(book.record(web, 13, false), (streak_result{verdict::fixed, 0}));
}

TEST(streak, late_older_passing_build_does_not_fix_a_newer_failure) {
  streak_book book;
  book.record(web, 1, true);
  book.record(web, 3, true);
  EXPECT_EQ(book.record(web, 2, false), (streak_result{verdict::fixed, 0}));
  EXPECT_EQ(book.streaks().at(web).at(3).result, (streak_result{verdict::still_failing, 2}));
}

TEST(streak, same_number_in_two_pipelines_is_kept_apart) {
  streak_book book;
  streak_key api{"buildkite", "api", "main"};
  book.record(web, 5, true);
  EXPECT_EQ(book.record(api, 5, false), (streak_result{verdict::passed, 0}));
  EXPECT_EQ(book.record(web, 6, true), (streak_result{verdict::still_failing, 2}));
  EXPECT_EQ(book.streaks().size(), 2u);
}

TEST(streak, branches_are_separate_streaks) {
  streak_book book;
  book.record(web, 1, true);
  EXPECT_EQ(book.record({"buildkite", "web-app", "master"}, 2, true),
            (streak_result{verdict::broken, 1}));
}

TEST(streak, history_is_bounded) {
  streak_book book{4};
  for (int i = 1; i <= 10; ++i)
    book.record(web, i, true);
  EXPECT_EQ(book.streaks().at(web).size(), 4u);
  EXPECT_EQ(book.record(web, 11, true).failures, 11);
}

TEST(glob, matches_shell_style) {
  EXPECT_TRUE(glob_match("main", "main"));
  EXPECT_FALSE(glob_match("main", "mainline"));
  EXPECT_TRUE(glob_match("release/*", "release/1.2"));
  EXPECT_TRUE(glob_match("*-stable", "5.1-stable"));
  EXPECT_TRUE(glob_match("v?.*", "v1.0"));
  EXPECT_FALSE(glob_match("v?.*", "v10.0"));
  EXPECT_TRUE(glob_any({"main", "master"}, "master"));
}

TEST(time, parses_both_buildkite_formats) {
  auto a = parse_time("2024-05-10 12:34:56 UTC");
  auto b = parse_time("2024-05-10T12:34:56Z");
  auto c = parse_time("2024-05-10T14:34:56.000+02:00");
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ(*a, *b);
  EXPECT_EQ(*a, *c);
  EXPECT_EQ(format_time(*parse_time("2024-05-10T12:34:56.789Z")), "2024-05-10T12:34:56.789Z");
  EXPECT_FALSE(parse_time("2024-13-10 12:34:56 UTC"));
  EXPECT_FALSE(parse_time("yesterday"));
  EXPECT_FALSE(parse_time("2024-05-10 12:34:56"));
}

TEST(streak, recording_the_same_outcome_again_keeps_the_verdict) {
  streak_book book;
  book.record(web, 10, false);
  auto first = book.record(web, 12, true); // judged against 10: broken
  book.record(web, 11, true);              // a late older failure never flips 12
  // A replay of 12's outcome after recovery must not re-judge it against 11.
  EXPECT_EQ(book.record(web, 12, true), first);
  // A changed outcome is judged again.
  EXPECT_EQ(book.record(web, 12, false), (streak_result{verdict::fixed, 0}));
}
