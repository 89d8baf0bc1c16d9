#include "actors/build_actor.hpp"
#include "sources/buildkite.hpp"

#include <nlohmann/json.hpp>

#include "tests/actor_fixture.hpp"

using namespace bt;
using namespace std::chrono_literals;

namespace {

/// What a build actor told its peers.
struct recorded {
  std::vector<model::envelope> routed;
  std::vector<model::finished_effect> finished;
  std::vector<model::finished_effect> forgotten; ///< builds that left their streak
  std::vector<model::build_summary> summaries;
  std::vector<std::uint64_t> idle;
  std::vector<model::build> offered; ///< states offered with the idle requests
  std::vector<model::notice> notices;
};

actors::registry_actor::behavior_type recording_registry(actors::registry_actor::pointer,
                                                         std::shared_ptr<recorded> rec) {
  return {
    [=](model::envelope& e) { rec->routed.push_back(std::move(e)); },
    [=](std::vector<model::envelope>& events, actors::tally_ptr&) {
      for (auto& e : events)
        rec->routed.push_back(std::move(e));
    },
    [=](actors::replay_atom, model::envelope&) { return true; },
    [=](caf::get_atom, const model::build_key&) -> caf::result<std::string> {
      return caf::make_error(actors::errc::not_found);
    },
    [=](caf::idle_atom, model::build& b, std::uint64_t n) {
      rec->idle.push_back(n);
      rec->offered.push_back(std::move(b));
    },
    [=](caf::put_atom, const std::vector<model::build_key>&) {},
    [=](actors::snapshot_atom, std::size_t, std::uint64_t) { return actors::snapshot_batch{}; },
    [=](actors::snapshot_atom, bool) {},
    [=](actors::forget_atom, const actors::expired_builds& e) { return e; },
    [=](actors::rewrite_atom) { return actors::lost_builds{}; },
    [=](actors::load_atom, const model::build_key&, std::optional<model::build>&) {},
    [=](actors::retry_atom, const model::build_key&) {},
  };
}

/// A streak tracker that records what it is asked and judges nothing: the tests
/// send verdicts by hand.
actors::streak_tracker_actor::behavior_type recording_tracker(actors::streak_tracker_actor::pointer,
                                                              std::shared_ptr<recorded> rec) {
  return {
    [=](const model::finished_effect& f) -> std::optional<model::streak_result> {
      rec->finished.push_back(f);
      return std::nullopt;
    },
    [=](actors::forget_atom, const model::finished_effect& f) { rec->forgotten.push_back(f); },
    [=](caf::get_atom) { return std::string{"[]"}; },
    [=](actors::snapshot_atom) { return std::optional<model::streak_book>{}; },
    [=](actors::snapshot_atom, bool) {},
    [=](actors::rewrite_atom) {},
    [=](caf::put_atom, model::streak_book&) {},
  };
}

actors::catalog_actor::behavior_type recording_catalog(actors::catalog_actor::pointer,
                                                       std::shared_ptr<recorded> rec) {
  return {
    [=](caf::put_atom, const model::build_summary& s) { rec->summaries.push_back(s); },
    [=](caf::put_atom, const std::vector<model::build_summary>&) {},
    [=](caf::get_atom, const model::build_query&) { return std::string{"[]"}; },
    [=](caf::get_atom, const model::build_query&, std::size_t) { return std::string{"{}"}; },
    [=](actors::tick_atom) {},
    [=](actors::expire_atom, const actors::expiry_rule&) { return actors::expired_builds{}; },
    [=](actors::forget_atom, const actors::expired_builds&) {},
    [=](actors::forget_atom, const actors::lost_builds&) {},
  };
}

actors::notify_dispatcher_actor::behavior_type
recording_dispatcher(actors::notify_dispatcher_actor::pointer, std::shared_ptr<recorded> rec) {
  return {
    [=](model::notice& n) { rec->notices.push_back(std::move(n)); },
    [=](actors::delivery_report&) {},
    [=](caf::get_atom, const model::build_key&) { return std::string{"[]"}; },
    [=](actors::retry_atom, std::string&, std::uint64_t) {},
    [=](actors::tick_atom) {},
  };
}

const model::build_key key{"buildkite", "web", "9"};

model::envelope job(std::string id, model::job_state state, std::int64_t exit) {
  model::job_event j;
  j.report.id = id;
  j.group = "test";
  j.name = "test";
  j.report.state = state;
  j.report.exit_status = exit;
  j.report.fails = sources::buildkite_fails(state, exit, false);
  model::build_info info;
  info.number = 9;
  info.branch = "main";
  info.parent = model::build_key{"buildkite", "parent", "1"};
  return {key, "", model::timestamp{1000ms}, info, j};
}

model::envelope finished() {
  return {key, "", model::timestamp{2000ms}, std::nullopt,
          model::build_event{model::build_event::finished, model::build_end::completed, "x"}};
}

struct build_actor_test : test::actor_fixture {
  std::shared_ptr<recorded> rec = std::make_shared<recorded>();
  actors::registry_actor registry = sys->spawn(recording_registry, rec);
  actors::build_peers peers{sys->spawn(recording_tracker, rec), sys->spawn(recording_catalog, rec),
                            sys->spawn(recording_dispatcher, rec)};
  actors::build_actor build = sys->spawn(
    actors::build_actor_impl, model::build{}, registry, peers,
    actors::build_settings{30s, std::make_shared<const std::vector<std::string>>(
                                  std::vector<std::string>{"main"})});
};

} // namespace

TEST_F(build_actor_test, applies_events_and_hands_effects_to_its_peers) {
  caf::anon_send(build, job("a", model::job_state::failed, 1));
  caf::anon_send(build, finished());
  run();
  ASSERT_EQ(rec->finished.size(), 1u);
  EXPECT_EQ(rec->finished[0].state, model::build_state::failed);
  EXPECT_EQ(rec->finished[0].number, 9);
  // The parent gets the rollup as an ordinary routed event.
  ASSERT_EQ(rec->routed.size(), 1u);
  EXPECT_EQ(rec->routed[0].key.str(), "buildkite/parent/1");
  // Summaries only when they change: running, then failed.
  ASSERT_EQ(rec->summaries.size(), 2u);
  EXPECT_EQ(rec->summaries[1].state, model::build_state::failed);
  auto doc = nlohmann::json::parse(ask<std::string>(build, caf::get_atom::value));
  EXPECT_EQ(doc["state"], "failed");
  EXPECT_EQ(doc["failed_jobs"][0], "test");
}

TEST_F(build_actor_test, asks_to_stop_only_after_being_idle_and_offers_its_state) {
  caf::anon_send(build, finished());
  run();
  advance(10s);
  EXPECT_TRUE(rec->idle.empty());
  caf::anon_send(build, job("a", model::job_state::passed, 0));
  run();
  advance(20s); // the first check finds new activity and re-arms
  EXPECT_TRUE(rec->idle.empty());
  advance(30s);
  ASSERT_EQ(rec->idle.size(), 1u);
  EXPECT_EQ(rec->idle[0], 2u);
  ASSERT_EQ(rec->offered.size(), 1u);
  EXPECT_EQ(rec->offered[0].jobs.size(), 1u);
  EXPECT_EQ(rec->offered[0], ask<model::build>(build, actors::snapshot_atom::value));
}

// Issue 9, point 10: a build that never finishes must not keep its actor.
TEST_F(build_actor_test, an_idle_running_build_asks_to_stop_too) {
  caf::anon_send(build, job("a", model::job_state::running, 0));
  run();
  advance(29s);
  EXPECT_TRUE(rec->idle.empty());
  advance(2s);
  ASSERT_EQ(rec->idle.size(), 1u);
  ASSERT_EQ(rec->offered.size(), 1u);
  EXPECT_EQ(rec->offered[0].state, model::build_state::running);
}

TEST_F(build_actor_test, a_judged_build_gives_notice_once_its_verdict_for_this_revision_is_in) {
  caf::anon_send(build, job("a", model::job_state::failed, 1));
  caf::anon_send(build, finished());
  run();
  ASSERT_EQ(rec->finished.size(), 1u);
  EXPECT_TRUE(rec->notices.empty()); // waits for the streak tracker
  auto revision = rec->finished[0].revision;
  model::streak_result stale{model::verdict::broken, 1, revision - 1};
  caf::anon_send(build, model::envelope{key, "", model::timestamp{3000ms}, std::nullopt, stale});
  run();
  EXPECT_TRUE(rec->notices.empty()); // a verdict on an older outcome settles nothing
  model::streak_result verdict{model::verdict::still_failing, 2, revision};
  caf::anon_send(build, model::envelope{key, "", model::timestamp{3000ms}, std::nullopt, verdict});
  run();
  ASSERT_EQ(rec->notices.size(), 1u);
  EXPECT_EQ(rec->notices[0].kind, model::notice_kind::still_failing);
  EXPECT_EQ(rec->notices[0].subject.revision, revision);
  // The same verdict again (a replay) is no news.
  caf::anon_send(build, model::envelope{key, "", model::timestamp{3000ms}, std::nullopt, verdict});
  run();
  EXPECT_EQ(rec->notices.size(), 1u);
}

TEST_F(build_actor_test, a_build_no_streak_judges_gives_notice_when_it_finishes) {
  auto on_branch = [](model::envelope e) {
    e.info->branch = "feature/x";
    return e;
  };
  caf::anon_send(build, on_branch(job("a", model::job_state::failed, 1)));
  caf::anon_send(build, finished());
  run();
  EXPECT_TRUE(rec->finished.empty()); // nothing for the streak tracker to judge
  ASSERT_EQ(rec->notices.size(), 1u);
  EXPECT_EQ(rec->notices[0].kind, model::notice_kind::failed);
}

TEST_F(build_actor_test, without_sinks_no_notice_is_made) {
  auto quiet = sys->spawn(actors::build_actor_impl, model::build{}, registry,
                          actors::build_peers{peers.tracker, peers.catalog, {}},
                          actors::build_settings{30s, std::make_shared<const std::vector<std::string>>()});
  caf::anon_send(quiet, job("a", model::job_state::failed, 1));
  caf::anon_send(quiet, finished());
  run();
  EXPECT_TRUE(rec->notices.empty());
  EXPECT_NE(ask<std::string>(quiet, caf::get_atom::value).find(R"("state":"failed")"),
            std::string::npos);
}

// A build judged failed, reopened by a retry that passes and waits for its message,
// then aborted: its outcome is one streaks do not judge, so the tracker drops it.
TEST_F(build_actor_test, a_judged_build_that_ends_aborted_leaves_its_streak) {
  caf::anon_send(build, job("a", model::job_state::failed, 1));
  caf::anon_send(build, finished());
  run();
  ASSERT_EQ(rec->finished.size(), 1u);
  EXPECT_TRUE(rec->forgotten.empty());
  auto retry = job("a2", model::job_state::passed, 0);
  std::get<model::job_event>(retry.body).report.waits = true;
  caf::anon_send(build, retry);
  caf::anon_send(build, model::envelope{key, "", model::timestamp{3000ms}, std::nullopt,
                                        model::build_command{model::command_kind::abort}});
  run();
  ASSERT_EQ(rec->forgotten.size(), 1u);
  EXPECT_EQ(rec->forgotten[0].state, model::build_state::aborted);
  EXPECT_EQ(rec->forgotten[0].number, 9);
  EXPECT_EQ(rec->finished.size(), 1u) << "no verdict is asked for it";
}
