#include "actors/registry.hpp"

#include <nlohmann/json.hpp>

#include "actors/streak_tracker.hpp"
#include "store/memory_store.hpp"
#include "tests/actor_fixture.hpp"

using namespace bt;
using namespace std::chrono_literals;

namespace {

model::envelope job(const model::build_key& key, std::int64_t number, std::string id,
                    model::job_state state, std::int64_t exit) {
  model::job_event j;
  j.report.id = id;
  j.group = "test";
  j.report.state = state;
  j.report.exit_status = exit;
  model::build_info info;
  info.number = number;
  info.branch = "main";
  return {key, "", model::timestamp{1000ms}, info, j};
}

model::envelope finished(const model::build_key& key) {
  return {key, "", model::timestamp{2000ms}, std::nullopt,
          model::build_event{model::build_event::finished, model::build_end::completed, "x"}};
}

struct registry_test : test::actor_fixture {
  std::shared_ptr<store::memory_store> store = std::make_shared<store::memory_store>();
  std::shared_ptr<actors::registry_stats> stats = std::make_shared<actors::registry_stats>();
  actors::streak_tracker_actor tracker = sys->spawn(actors::streak_tracker,
                                                    std::vector<std::string>{"main"});
  actors::registry_actor registry = sys->spawn(actors::registry, store, tracker,
                                               std::chrono::milliseconds{30s}, stats);

  ~registry_test() {
    // Registry and build actors hold each other's handles: shut down explicitly.
    caf::anon_send_exit(registry, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(tracker, caf::exit_reason::user_shutdown);
    run();
  }

  nlohmann::json get(const model::build_key& key) {
    return nlohmann::json::parse(ask<std::string>(registry, caf::get_atom::value, key));
  }
};

const model::build_key web9{"buildkite", "web", "9"};
const model::build_key web10{"buildkite", "web", "10"};
const model::build_key api9{"buildkite", "api", "9"};

} // namespace

TEST_F(registry_test, one_actor_per_build_and_streak_verdicts_come_back) {
  caf::anon_send(registry, job(web9, 9, "a", model::job_state::failed, 1));
  caf::anon_send(registry, finished(web9));
  caf::anon_send(registry, job(api9, 9, "b", model::job_state::passed, 0));
  caf::anon_send(registry, finished(api9));
  run();
  EXPECT_EQ(stats->live.load(), 2u);
  auto web = get(web9);
  EXPECT_EQ(web["state"], "failed");
  EXPECT_EQ(web["streak"]["verdict"], "broken");
  auto api = get(api9);
  EXPECT_EQ(api["state"], "passed");
  EXPECT_EQ(api["streak"]["verdict"], "passed");

  caf::anon_send(registry, job(web10, 10, "c", model::job_state::failed, 1));
  caf::anon_send(registry, finished(web10));
  run();
  EXPECT_EQ(get(web10)["streak"]["verdict"], "still_failing");
  EXPECT_EQ(get(web10)["streak"]["failures"], 2);
}

TEST_F(registry_test, unknown_build_is_not_found) {
  EXPECT_EQ(ask_error(registry, caf::get_atom::value, web9), actors::errc::not_found);
}

TEST_F(registry_test, idle_finished_actor_stops_and_is_recreated_from_its_saved_state) {
  caf::anon_send(registry, job(web9, 9, "a", model::job_state::failed, 1));
  caf::anon_send(registry, finished(web9));
  run();
  // The streak verdict arrives after the first check was armed: it re-arms once.
  advance(31s);
  EXPECT_EQ(stats->live.load(), 1u);
  advance(31s);
  EXPECT_EQ(stats->live.load(), 0u);
  EXPECT_EQ(stats->tracked.load(), 1u);
  // Still readable while stopped.
  EXPECT_EQ(get(web9)["state"], "failed");
  // A late retry wakes it with everything it knew.
  caf::anon_send(registry, job(web9, 9, "a2", model::job_state::passed, 0));
  run();
  EXPECT_EQ(stats->live.load(), 1u);
  auto doc = get(web9);
  EXPECT_EQ(doc["state"], "passed");
  EXPECT_EQ(doc["fixed_jobs"][0], "test");
  EXPECT_EQ(doc["revision"], 2);
}

TEST_F(registry_test, lists_builds_by_filter) {
  caf::anon_send(registry, job(web9, 9, "a", model::job_state::failed, 1));
  caf::anon_send(registry, finished(web9));
  caf::anon_send(registry, job(api9, 9, "b", model::job_state::running, 0));
  run();
  auto all = nlohmann::json::parse(
    ask<std::string>(registry, caf::get_atom::value, model::build_query{}));
  EXPECT_EQ(all.size(), 2u);
  model::build_query failed;
  failed.state = model::build_state::failed;
  auto only = nlohmann::json::parse(ask<std::string>(registry, caf::get_atom::value, failed));
  ASSERT_EQ(only.size(), 1u);
  EXPECT_EQ(only[0]["key"], "buildkite/web/9");
  model::build_query api;
  api.pipeline = "api";
  api.limit = 1;
  auto one = nlohmann::json::parse(ask<std::string>(registry, caf::get_atom::value, api));
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0]["state"], "running");
}
