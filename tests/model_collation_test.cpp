// The statistics collator's rules (SPEC §5), pure: every criterion, and every ordering
// of two statistics, the finish and the timeouts, with time as an input.
#include <algorithm>
#include <array>
#include <map>

#include <gtest/gtest.h>

#include "model/build.hpp"
#include "model/collation.hpp"

using namespace bt::model;
using namespace std::chrono_literals;

namespace {

timestamp at(std::chrono::milliseconds t) { return timestamp{1'700'000'000'000ms + t}; }

/// The rule of the acceptance: A and B required, 2 s quiet period, 8 s in all.
collation_rule rule() { return {{"A", "B"}, 2s, 8s}; }

struct outcome {
  std::optional<release_reason> reason;
  bool dropped = false;
  std::chrono::milliseconds when{-1};
  bool operator==(const outcome&) const = default;
};

/// Runs a wait started at 0 through `events` (time, what: "A", "B", "X" for a
/// statistic nobody requires, "finish"), looking at it after each event and at each
/// time it asks to be looked at again, as the build actor and the timeout supervisor
/// do. Returns how it ended.
outcome run(std::vector<std::pair<std::chrono::milliseconds, std::string>> events,
            const collation_rule& r = rule()) {
  std::sort(events.begin(), events.end(),
            [](auto& a, auto& b) { return a.first < b.first; });
  collation c{at(0ms)};
  outcome out;
  auto look = [&](std::chrono::milliseconds now) {
    auto step = settle(c, r, at(now));
    if ((step.release || step.drop) && out.when < 0ms) {
      out.reason = step.release;
      out.dropped = step.drop;
      out.when = now;
    }
    return step.next;
  };
  std::optional<timestamp> next = look(0ms);
  std::size_t i = 0;
  while (!c.ended() && (i < events.size() || next)) {
    auto deadline = next ? std::optional{*next - at(0ms)} : std::nullopt;
    if (i < events.size() && (!deadline || events[i].first < *deadline)) {
      auto& [t, what] = events[i++];
      if (what == "finish")
        c.finished = at(t);
      else
        collate_statistic(c, r, what, at(t));
      next = look(t);
    } else {
      next = look(std::chrono::duration_cast<std::chrono::milliseconds>(*deadline));
    }
  }
  return out;
}

outcome released(release_reason r, std::chrono::milliseconds when) { return {r, false, when}; }

} // namespace

TEST(collation, criterion_1_all_statistics_before_the_finish_release_at_the_finish) {
  EXPECT_EQ(run({{1s, "A"}, {2s, "B"}, {3s, "finish"}}),
            released(release_reason::all_statistics, 3s));
}

TEST(collation, criterion_2_the_last_statistic_after_the_finish_releases_when_it_arrives) {
  EXPECT_EQ(run({{1s, "finish"}, {1500ms, "A"}, {2500ms, "B"}}),
            released(release_reason::all_statistics, 2500ms));
}

TEST(collation, criterion_3_the_quiet_period_after_the_finish_with_no_statistic) {
  EXPECT_EQ(run({{1s, "finish"}}), released(release_reason::build_completed_timeout, 3s));
}

TEST(collation, criterion_4_the_quiet_period_after_the_last_statistic) {
  EXPECT_EQ(run({{1s, "finish"}, {2s, "A"}, {3500ms, "X"}}),
            released(release_reason::build_completed_timeout, 5500ms));
  // Statistics only before the finish: the quiet period runs from the finish.
  EXPECT_EQ(run({{500ms, "A"}, {1s, "finish"}}),
            released(release_reason::build_completed_timeout, 3s));
}

TEST(collation, criterion_5_the_failure_timeout_releases_only_a_finished_build) {
  // Statistics keep the quiet period from ending until past 8 s after the start.
  EXPECT_EQ(run({{5s, "finish"}, {6s, "X"}, {7500ms, "A"}}),
            released(release_reason::failure_timeout, 8s));
}

TEST(collation, an_unfinished_build_past_the_failure_timeout_drops_its_wait) {
  EXPECT_EQ(run({{1s, "A"}, {9s, "finish"}}), (outcome{std::nullopt, true, 8s}));
  collation c{at(0ms)};
  settle(c, rule(), at(8s));
  EXPECT_TRUE(c.dropped);
  // Nothing moves it any more: the finish that follows is sent at once, unwaited.
  c.finished = at(9s);
  EXPECT_EQ(settle(c, rule(), at(9s)).release, std::nullopt);
}

TEST(collation, nothing_required_means_only_the_timeouts_release) {
  collation_rule none{{}, 2s, 8s};
  EXPECT_EQ(run({{1s, "finish"}}, none), released(release_reason::build_completed_timeout, 3s));
}

TEST(collation, names_are_trimmed_and_case_is_kept) {
  collation_rule r{{trim_statistic(" BuildDuration"), trim_statistic("Coverage\t")}, 2s, 8s};
  EXPECT_EQ(r.required[0], "BuildDuration");
  EXPECT_EQ(run({{1s, "finish"}, {1200ms, "BuildDuration"}, {1300ms, " Coverage "}}, r),
            released(release_reason::all_statistics, 1300ms));
  EXPECT_EQ(run({{1s, "finish"}, {1200ms, "buildduration"}, {1300ms, "Coverage"}}, r),
            released(release_reason::build_completed_timeout, 3300ms));
}

TEST(collation, a_released_wait_is_never_released_again) {
  collation c{at(0ms)};
  c.finished = at(1s);
  EXPECT_EQ(settle(c, rule(), at(3s)).release, release_reason::build_completed_timeout);
  collate_statistic(c, rule(), "A", at(4s));
  collate_statistic(c, rule(), "B", at(4s));
  auto again = settle(c, rule(), at(9s));
  EXPECT_FALSE(again.release);
  EXPECT_FALSE(again.next);
  EXPECT_EQ(c.released, release_reason::build_completed_timeout);
}

// Every order of A, B and the finish, at every spacing on a 1 s grid up to 10 s: the
// wait ends once, at the time and for the reason the rules give in closed form.
TEST(collation, every_ordering_of_two_statistics_the_finish_and_the_timeouts) {
  std::size_t cases = 0;
  for (int a = 0; a <= 10; ++a)
    for (int b = 0; b <= 10; ++b)
      for (int f = 0; f <= 10; ++f) {
        std::chrono::milliseconds ta{a * 1000 + 100}, tb{b * 1000 + 200}, tf{f * 1000 + 300};
        auto got = run({{ta, "A"}, {tb, "B"}, {tf, "finish"}});
        outcome want;
        auto last_stat = std::max(ta, tb);
        if (tf >= 8s) {
          want = {std::nullopt, true, 8s}; // dropped unfinished
        } else {
          // Looked at after each event and at each deadline before the next event.
          auto all_at = std::max(tf, last_stat);
          // The quiet period runs from the later of the finish and the last statistic
          // seen so far; A and B both count when they arrive.
          std::optional<std::chrono::milliseconds> quiet;
          {
            auto since = tf;
            std::array<std::chrono::milliseconds, 2> stats{std::min(ta, tb), std::max(ta, tb)};
            for (auto s : stats) {
              if (s > since && s < since + 2s)
                since = s;
              else if (s >= since + 2s)
                break;
            }
            quiet = since + 2s;
          }
          if (all_at < *quiet && all_at < 8s)
            want = released(release_reason::all_statistics, all_at);
          else if (*quiet <= 8s)
            want = released(release_reason::build_completed_timeout, *quiet);
          else
            want = released(release_reason::failure_timeout, 8s);
        }
        EXPECT_EQ(got, want) << "A " << ta.count() << " B " << tb.count() << " finish "
                             << tf.count();
        ++cases;
      }
  EXPECT_EQ(cases, 1331u);
}

// The same rules inside a build: waits are made at its first event, and every move
// of a wait's deadline is an effect the build actor hands to the timeout supervisor.
namespace {

std::optional<timestamp> deadline_of(const applied& a, const std::string& name) {
  for (auto& e : a.effects)
    if (auto* d = std::get_if<deadline_effect>(&e); d && d->name == name)
      return d->due ? d->due : std::optional<timestamp>{at(-1ms)};
  return std::nullopt;
}

envelope edge(build_event::phase_t phase, build_end end = build_end::completed) {
  return {{"native", "p", "1"}, "", {}, std::nullopt, build_event{phase, end, "x"}};
}

} // namespace

TEST(collation_in_a_build, the_first_event_sets_the_failure_deadline_and_the_finish_moves_it) {
  collation_rules waits{{"hook", rule()}};
  build b;
  auto first = apply(b, edge(build_event::started), at(0ms), {}, waits);
  ASSERT_TRUE(b.collations.contains("hook"));
  EXPECT_EQ(deadline_of(first, "collate:hook"), at(8s));
  auto finish = apply(b, edge(build_event::finished), at(1s), {}, waits);
  EXPECT_EQ(deadline_of(finish, "collate:hook"), at(3s)); // the quiet period ends first
  auto due = apply(b, {{"native", "p", "1"}, "", {}, std::nullopt, deadline_passed{"collate:hook"}},
                   at(3s), {}, waits);
  EXPECT_EQ(b.collations.at("hook").released, release_reason::build_completed_timeout);
  EXPECT_EQ(b.collations.at("hook").released_revision, b.revision);
  EXPECT_TRUE(std::any_of(due.effects.begin(), due.effects.end(), [](auto& e) {
    return std::holds_alternative<release_effect>(e);
  }));
  // Nothing to cancel: the supervisor forgets a deadline when it goes off.
  EXPECT_FALSE(deadline_of(due, "collate:hook"));
}

TEST(collation_in_a_build, a_release_by_a_statistic_cancels_the_deadline) {
  collation_rules waits{{"hook", rule()}};
  build b;
  apply(b, edge(build_event::started), at(0ms), {}, waits);
  apply(b, edge(build_event::finished), at(1s), {}, waits);
  apply(b, {{"native", "p", "1"}, "", {}, std::nullopt, statistic_event{"A", 1}}, at(1500ms), {},
        waits);
  auto last = apply(b, {{"native", "p", "1"}, "", {}, std::nullopt, statistic_event{"B", 2}},
                    at(1600ms), {}, waits);
  EXPECT_EQ(b.collations.at("hook").released, release_reason::all_statistics);
  EXPECT_EQ(deadline_of(last, "collate:hook"), at(-1ms)); // cancelled
}

TEST(collation_in_a_build, an_interrupted_build_drops_its_waits) {
  collation_rules waits{{"hook", rule()}};
  build b;
  apply(b, edge(build_event::started), at(0ms), {}, waits);
  auto a = apply(b, edge(build_event::finished, build_end::interrupted), at(1s), {}, waits);
  EXPECT_TRUE(b.collations.at("hook").dropped);
  EXPECT_TRUE(std::any_of(a.effects.begin(), a.effects.end(), [](auto& e) {
    return std::holds_alternative<wait_dropped_effect>(e);
  }));
  EXPECT_EQ(deadline_of(a, "collate:hook"), at(-1ms));
}
