// What recovery does with a stored build it knows only by its record (model/recovery).
#include <gtest/gtest.h>

#include "model/build.hpp"
#include "model/codec.hpp"
#include "model/recovery.hpp"
#include "sources/buildkite.hpp"
#include "model_checks.hpp"

using namespace bt::model;

namespace {

const build_key key{"native", "web", "7"};
const std::vector<std::string> all_branches{"*"};

timestamp at(int seconds) {
  return timestamp{std::chrono::milliseconds{1'700'000'000'000LL + seconds * 1000LL}};
}

/// A build on `branch` that ran one job and finished `state` at revision 2.
build finished(build_state state, std::string branch = "main") {
  build b;
  b.key = key;
  build_info info;
  info.branch = std::move(branch);
  info.number = 7;
  apply(b, envelope{key, "", at(0), info, build_event{build_event::started}}, at(0));
  job_event j;
  j.group = j.name = "test";
  j.report.id = "a1";
  j.report.state = state == build_state::failed ? job_state::failed : job_state::passed;
  j.report.exit_status = state == build_state::failed ? 1 : 0;
  j.report.fails = state == build_state::failed;
  apply(b, envelope{key, "", at(1), std::nullopt, j}, at(1));
  auto end = state == build_state::canceled ? build_end::canceled : build_end::completed;
  apply(b, envelope{key, "", at(2), std::nullopt,
                    build_event{build_event::finished, end, std::string{to_string(state)}}},
        at(2));
  EXPECT_EQ(b.state, state);
  return b;
}

} // namespace

TEST(recovery_record, a_judged_build_whose_notice_went_out_is_only_listed) {
  auto b = finished(build_state::failed);
  b.streak = streak_result{verdict::broken, 1, b.revision};
  auto r = record_of(b);
  EXPECT_FALSE(r.read);
  EXPECT_EQ(r.summary, summarize(b));
  EXPECT_EQ(need_of(r, b.revision, 0, true, all_branches), recovery_need::index);
  EXPECT_EQ(need_of(r, 0, 0, false, all_branches), recovery_need::index); // nobody to tell
  bt::testing::expect_record_matches(b);
}

TEST(recovery_record, a_notice_not_recorded_for_the_current_revision_needs_the_build) {
  auto b = finished(build_state::passed);
  b.streak = streak_result{verdict::passed, 0, b.revision};
  auto r = record_of(b);
  EXPECT_EQ(need_of(r, b.revision - 1, 0, true, all_branches), recovery_need::read);
  EXPECT_EQ(need_of(r, b.revision, 0, true, all_branches), recovery_need::index);
  bt::testing::expect_record_matches(b);
}

TEST(recovery_record, a_verdict_not_in_is_judged_from_the_record_on_tracked_branches_only) {
  auto b = finished(build_state::failed, "main");
  auto r = record_of(b);
  EXPECT_EQ(need_of(r, 0, 0, false, all_branches), recovery_need::judge);
  auto f = finished_of(r);
  EXPECT_EQ(f.key, key);
  EXPECT_EQ(f.branch, "main");
  EXPECT_EQ(f.number, 7);
  EXPECT_EQ(f.state, build_state::failed);
  EXPECT_EQ(f.revision, b.revision);
  // Not judged where no streak follows it: settled, and its notice owed.
  EXPECT_EQ(need_of(r, 0, 0, false, {"release/*"}), recovery_need::index);
  EXPECT_EQ(need_of(r, 0, 0, true, {"release/*"}), recovery_need::read);
  b.info.personal = true;
  EXPECT_EQ(need_of(record_of(b), 0, 0, false, all_branches), recovery_need::index);
  // A verdict for an older outcome is not this one's.
  b.info.personal = false;
  b.streak = streak_result{verdict::passed, 0, b.revision - 1};
  EXPECT_EQ(need_of(record_of(b), 0, 0, false, all_branches), recovery_need::judge);
  bt::testing::expect_record_matches(b);
}

TEST(recovery_record, a_canceled_build_owes_no_notice) {
  auto b = finished(build_state::canceled);
  EXPECT_EQ(need_of(record_of(b), 0, 0, true, all_branches), recovery_need::index);
  bt::testing::expect_record_matches(b);
}

TEST(recovery_record, job_notices_announced_and_not_recorded_need_the_build) {
  auto b = finished(build_state::failed);
  b.streak = streak_result{verdict::broken, 1, b.revision};
  b.announced_jobs = 2;
  auto r = record_of(b);
  EXPECT_EQ(need_of(r, b.revision, 1, true, all_branches), recovery_need::read);
  EXPECT_EQ(need_of(r, b.revision, 2, true, all_branches), recovery_need::index);
}

TEST(recovery_record, what_only_the_build_can_say_always_needs_it) {
  auto running = finished(build_state::passed);
  running.state = build_state::running;
  EXPECT_TRUE(record_of(running).read);
  auto child = finished(build_state::passed);
  child.info.parent = build_key{"native", "parent", "1"};
  EXPECT_TRUE(record_of(child).read); // its roll-up
  auto collating = finished(build_state::passed);
  collating.collations["hook"] = collation{at(0)};
  EXPECT_TRUE(record_of(collating).read); // its wait for statistics, its releases
  for (auto* b : {&running, &child, &collating})
    EXPECT_EQ(need_of(record_of(*b), b->revision, 0, false, all_branches), recovery_need::read);
}

TEST(recovery_record, round_trips_and_refuses_what_it_does_not_know) {
  auto b = finished(build_state::failed);
  b.streak = streak_result{verdict::still_failing, 3, b.revision};
  b.info.personal = true;
  b.announced_jobs = 4;
  auto r = record_of(b);
  auto doc = codec::encode(r);
  EXPECT_EQ(codec::decode_record(doc, key), r);
  std::string why;
  auto replaced = [&](std::string from, std::string to) {
    auto d = doc;
    d.replace(d.find(from), from.size(), to);
    return d;
  };
  EXPECT_FALSE(codec::decode_record(replaced("\"failed\"", "\"exploded\""), key, &why));
  EXPECT_NE(why.find("unknown build state 'exploded'"), std::string::npos) << why;
  EXPECT_FALSE(codec::decode_record(replaced("\"v\":6", "\"v\":99"), key, &why));
  EXPECT_NE(why.find("format version 99"), std::string::npos) << why;
  EXPECT_FALSE(codec::decode_record(replaced("\"v\":6", "\"v\":5"), key, &why));
  EXPECT_FALSE(codec::decode_record("{not json", key, &why));
}
