#include "actors/registry.hpp"

#include <set>

#include <nlohmann/json.hpp>

#include "support/clock.hpp"
#include "tests/registry_fixture.hpp"

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

struct registry_test : test::registry_fixture {
  /// Takes a snapshot, writes it to the store and tells the registry, as the
  /// snapshot supervisor does.
  store::snapshot snapshot(bool written = true, std::size_t limit = 1000) {
    auto batch = ask<actors::snapshot_batch>(registry, actors::snapshot_atom::value, limit);
    if (written)
      store->write(batch.state);
    caf::anon_send(registry, actors::snapshot_atom::value, written);
    run();
    return batch.state;
  }

  static std::set<std::string> keys(const store::snapshot& s) {
    std::set<std::string> out;
    for (auto& b : s.builds)
      out.insert(b.key.str());
    return out;
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

// Issue 9, point 10: 200,000 open builds kept 200,000 actors. An idle running build's
// actor stops like a finished one's, its state parked until written, and its next
// event brings it back with everything it knew.
TEST_F(registry_test, idle_running_actor_stops_and_comes_back_on_its_next_event) {
  caf::anon_send(registry, job(web9, 9, "a", model::job_state::running, 0));
  caf::anon_send(registry, job(api9, 9, "b", model::job_state::running, 0));
  run();
  EXPECT_EQ(stats->live.load(), 2u);
  advance(31s);
  EXPECT_EQ(stats->live.load(), 0u);
  EXPECT_EQ(stats->tracked.load(), 2u);
  EXPECT_EQ(get(web9)["state"], "running"); // from the parked state
  auto written = snapshot();
  EXPECT_EQ(keys(written), (std::set<std::string>{"buildkite/web/9", "buildkite/api/9"}));
  EXPECT_EQ(get(web9)["state"], "running"); // from the store now
  caf::anon_send(registry, job(web9, 9, "a", model::job_state::failed, 1));
  caf::anon_send(registry, finished(web9));
  run();
  EXPECT_EQ(stats->live.load(), 1u);
  auto doc = get(web9);
  EXPECT_EQ(doc["state"], "failed");
  EXPECT_EQ(doc["jobs"][0]["attempts"].size(), 1u);
  EXPECT_EQ(doc["streak"]["verdict"], "broken");
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

TEST_F(registry_test, snapshots_hold_changed_builds_and_streaks_once_written) {
  caf::anon_send(registry, job(web9, 9, "a", model::job_state::failed, 1));
  caf::anon_send(registry, finished(web9));
  caf::anon_send(registry, job(api9, 9, "b", model::job_state::running, 0));
  run();
  auto first = snapshot();
  EXPECT_EQ(keys(first), (std::set<std::string>{"buildkite/web/9", "buildkite/api/9"}));
  ASSERT_TRUE(first.streaks); // web9 finished and was judged
  EXPECT_EQ(first.streaks->streaks().size(), 1u);
  for (auto& b : first.builds)
    if (b.key == web9) {
      ASSERT_TRUE(b.streak);
      EXPECT_EQ(b.streak->revision, b.revision);
    }
  // Nothing changed since: nothing to write.
  auto second = snapshot();
  EXPECT_TRUE(second.builds.empty());
  EXPECT_FALSE(second.streaks);
  // One more event: only that build.
  caf::anon_send(registry, job(api9, 9, "b", model::job_state::passed, 0));
  run();
  EXPECT_EQ(keys(snapshot()), (std::set<std::string>{"buildkite/api/9"}));
}

TEST_F(registry_test, a_failed_snapshot_is_taken_again) {
  caf::anon_send(registry, job(web9, 9, "a", model::job_state::failed, 1));
  caf::anon_send(registry, finished(web9));
  run();
  auto lost = snapshot(false);
  EXPECT_EQ(keys(lost), (std::set<std::string>{"buildkite/web/9"}));
  auto again = snapshot();
  EXPECT_EQ(keys(again), keys(lost));
  EXPECT_TRUE(again.streaks);
}

TEST_F(registry_test, a_stopped_actors_state_is_kept_until_a_snapshot_wrote_it) {
  caf::anon_send(registry, job(web9, 9, "a", model::job_state::failed, 1));
  caf::anon_send(registry, finished(web9));
  run();
  advance(31s);
  advance(31s);
  ASSERT_EQ(stats->live.load(), 0u);
  bool failed = false;
  EXPECT_FALSE(store->load(web9, failed)); // never written yet
  EXPECT_EQ(get(web9)["state"], "failed"); // served from the parked state
  auto snap = snapshot();
  ASSERT_EQ(snap.builds.size(), 1u);
  auto stored = store->load(web9, failed);
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->state, model::build_state::failed);
  EXPECT_EQ(get(web9)["state"], "failed"); // now from the store
}

TEST_F(registry_test, expiry_drops_old_finished_and_abandoned_builds_only) {
  // Verdicts are stamped with the wall clock, so the events are too.
  auto now = support::wall_clock();
  auto at = [&](model::envelope e) {
    e.received = now;
    return e;
  };
  caf::anon_send(registry, at(job(web9, 9, "a", model::job_state::failed, 1)));
  caf::anon_send(registry, at(finished(web9)));
  caf::anon_send(registry, at(job(api9, 9, "b", model::job_state::running, 0)));
  caf::anon_send(registry, at(job(web10, 10, "c", model::job_state::running, 0)));
  run();
  // An hour on: the finished build is past a 30 min retention; the unfinished ones
  // are not past a 2 h limit.
  auto gone = ask<actors::expired_builds>(
    registry, actors::expire_atom::value, actors::expiry_rule{now + 1h, 30min, 2h});
  ASSERT_EQ(gone.finished.size(), 1u);
  EXPECT_EQ(gone.finished[0], web9);
  EXPECT_TRUE(gone.abandoned.empty());
  EXPECT_EQ(stats->tracked.load(), 2u);
  EXPECT_EQ(ask_error(registry, caf::get_atom::value, web9), actors::errc::not_found);
  gone = ask<actors::expired_builds>(
    registry, actors::expire_atom::value, actors::expiry_rule{now + 3h, 30min, 2h});
  EXPECT_EQ(gone.abandoned.size(), 2u);
  EXPECT_EQ(stats->tracked.load(), 0u);
  EXPECT_EQ(stats->live.load(), 0u);
  // Nothing expired is left for a snapshot to write back.
  EXPECT_TRUE(snapshot().builds.empty());
}

TEST_F(registry_test, a_snapshot_takes_the_longest_waiting_builds_first_and_says_who_waits) {
  caf::anon_send(registry, job(web9, 9, "a", model::job_state::running, 0));
  run();
  snapshot(false); // cycle 1 fails: web9 waits since cycle 1
  caf::anon_send(registry, job(api9, 9, "b", model::job_state::running, 0));
  caf::anon_send(registry, job(web10, 10, "c", model::job_state::running, 0));
  run();
  auto batch = ask<actors::snapshot_batch>(registry, actors::snapshot_atom::value, size_t{1});
  EXPECT_EQ(batch.cycle, 2u);
  ASSERT_EQ(batch.state.builds.size(), 1u);
  EXPECT_EQ(batch.state.builds[0].key, web9);
  ASSERT_TRUE(batch.oldest_waiting);
  EXPECT_EQ(*batch.oldest_waiting, 2u); // api9 and web10 changed in cycle 2
  caf::anon_send(registry, actors::snapshot_atom::value, true);
  run();
  auto rest = ask<actors::snapshot_batch>(registry, actors::snapshot_atom::value, size_t{5});
  EXPECT_EQ(rest.state.builds.size(), 2u);
  EXPECT_FALSE(rest.oldest_waiting);
}
