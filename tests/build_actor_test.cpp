#include "actors/build_actor.hpp"

#include <nlohmann/json.hpp>

#include "tests/actor_fixture.hpp"

using namespace bt;
using namespace std::chrono_literals;

namespace {

/// What a build actor told its registry.
struct recorded {
  std::vector<model::envelope> routed;
  std::vector<model::finished_effect> finished;
  std::vector<model::build_summary> summaries;
  std::vector<std::uint64_t> idle;
  std::vector<model::build> offered; ///< states offered with the idle requests
};

actors::registry_actor::behavior_type recording_registry(actors::registry_actor::pointer,
                                                         std::shared_ptr<recorded> rec) {
  return {
    [=](model::envelope& e) { rec->routed.push_back(std::move(e)); },
    [=](actors::replay_atom, model::envelope&) { return true; },
    [=](caf::get_atom, const model::build_key&) -> caf::result<std::string> {
      return caf::make_error(actors::errc::not_found);
    },
    [=](caf::get_atom, const model::build_query&) -> std::string { return "[]"; },
    [=](caf::put_atom, const model::build_summary& s) { rec->summaries.push_back(s); },
    [=](const model::finished_effect& f) { rec->finished.push_back(f); },
    [=](caf::idle_atom, model::build& b, std::uint64_t n) {
      rec->idle.push_back(n);
      rec->offered.push_back(std::move(b));
    },
    [=](caf::put_atom, const std::vector<model::build_summary>&) {},
    [=](actors::snapshot_atom, std::size_t) { return actors::snapshot_batch{}; },
    [=](actors::snapshot_atom, bool) {},
    [=](actors::expire_atom, const actors::expiry_rule&) -> actors::expired_builds { return {}; },
    [=](actors::retry_atom, const model::build_key&) {},
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
  actors::build_actor build = sys->spawn(actors::build_actor_impl, model::build{},
                                         registry, std::chrono::milliseconds{30s});
};

} // namespace

TEST_F(build_actor_test, applies_events_and_hands_effects_to_the_registry) {
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

TEST_F(build_actor_test, unfinished_builds_never_ask_to_stop) {
  caf::anon_send(build, job("a", model::job_state::running, 0));
  run();
  advance(1h);
  EXPECT_TRUE(rec->idle.empty());
}
