#include "actors/registry.hpp"

#include <set>

#include <nlohmann/json.hpp>

#include "sources/buildkite.hpp"
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
  j.report.fails = sources::buildkite_fails(state, exit, false);
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

// A command or a passed deadline is about a build that exists: for one the registry
// does not know, it makes none (a deadline may outlive its build's expiry). Replayed,
// the same.
TEST_F(registry_test, commands_and_deadlines_for_unknown_builds_make_no_build) {
  caf::anon_send(registry, model::envelope{web9, "", model::timestamp{1000ms}, std::nullopt,
                                           model::deadline_passed{"targets"}});
  auto tally = std::make_shared<actors::ingest_tally>();
  std::vector<model::envelope> command{model::envelope{
    web10, "", model::timestamp{1000ms}, std::nullopt, model::build_command{model::command_kind::pause}}};
  caf::anon_send(registry, command, tally);
  run();
  ASSERT_TRUE(tally->command);
  EXPECT_FALSE(tally->command->known);
  EXPECT_FALSE(ask<bool>(registry, actors::replay_atom::value,
                         model::envelope{api9, "", model::timestamp{1000ms}, std::nullopt,
                                         model::deadline_passed{"targets"}}));
  EXPECT_EQ(stats->live.load(), 0u);
  for (auto& key : {web9, web10, api9})
    EXPECT_EQ(ask_error(registry, caf::get_atom::value, key), actors::errc::not_found);
  EXPECT_TRUE(snapshot().builds.empty());
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
    ask<std::string>(catalog, caf::get_atom::value, model::build_query{}));
  EXPECT_EQ(all.size(), 2u);
  model::build_query failed;
  failed.state = model::build_state::failed;
  auto only = nlohmann::json::parse(ask<std::string>(catalog, caf::get_atom::value, failed));
  ASSERT_EQ(only.size(), 1u);
  EXPECT_EQ(only[0]["key"], "buildkite/web/9");
  model::build_query api;
  api.pipeline = "api";
  api.limit = 1;
  auto one = nlohmann::json::parse(ask<std::string>(catalog, caf::get_atom::value, api));
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
  advance(31s); // an hour on, every actor has long stopped (the verdict re-arms web9's)
  advance(31s);
  ASSERT_EQ(stats->live.load(), 0u);
  // An hour on: the finished build is past a 30 min retention; the unfinished ones
  // are not past a 2 h limit.
  auto gone = expire(actors::expiry_rule{now + 1h, 30min, 2h});
  ASSERT_EQ(gone.finished.size(), 1u);
  EXPECT_EQ(gone.finished[0], web9);
  EXPECT_TRUE(gone.abandoned.empty());
  EXPECT_EQ(stats->tracked.load(), 2u);
  EXPECT_EQ(ask_error(registry, caf::get_atom::value, web9), actors::errc::not_found);
  gone = expire(actors::expiry_rule{now + 3h, 30min, 2h});
  EXPECT_EQ(gone.abandoned.size(), 2u);
  EXPECT_EQ(stats->tracked.load(), 0u);
  EXPECT_EQ(stats->live.load(), 0u);
  // Nothing expired is left for a snapshot to write back.
  EXPECT_TRUE(snapshot().builds.empty());
}

// The catalog picks from summaries, which may lag an event by up to a second: a build
// that got an event after the pick is active, not expired, and keeps everything.
TEST_F(registry_test, a_build_with_an_event_after_the_expiry_pick_is_kept) {
  auto now = support::wall_clock();
  auto at = [&](model::envelope e) {
    e.received = now;
    return e;
  };
  caf::anon_send(registry, at(job(api9, 9, "b", model::job_state::running, 0)));
  run();
  advance(31s);
  ASSERT_EQ(stats->live.load(), 0u);
  auto gone = expire(actors::expiry_rule{now + 3h, 30min, 2h}, [&] {
    caf::anon_send(registry, at(job(api9, 9, "b", model::job_state::passed, 0)));
    run();
  });
  EXPECT_TRUE(gone.abandoned.empty());
  EXPECT_EQ(get(api9)["jobs"][0]["attempts"][0]["state"], "passed");
  auto listed = nlohmann::json::parse(
    ask<std::string>(catalog, caf::get_atom::value, model::build_query{}));
  EXPECT_EQ(listed.size(), 1u);
  EXPECT_EQ(keys(snapshot()), (std::set<std::string>{"buildkite/api/9"}));
}

TEST_F(registry_test, a_snapshot_takes_the_longest_waiting_builds_first_and_says_who_waits) {
  caf::anon_send(registry, job(web9, 9, "a", model::job_state::running, 0));
  run();
  snapshot(false); // cycle 1 fails: web9 waits since cycle 1
  caf::anon_send(registry, job(api9, 9, "b", model::job_state::running, 0));
  caf::anon_send(registry, job(web10, 10, "c", model::job_state::running, 0));
  run();
  auto batch = ask<actors::snapshot_batch>(registry, actors::snapshot_atom::value, size_t{1}, std::uint64_t{0});
  EXPECT_EQ(batch.cycle, 2u);
  ASSERT_EQ(batch.state.builds.size(), 1u);
  EXPECT_EQ(batch.state.builds[0].key, web9);
  ASSERT_TRUE(batch.oldest_waiting);
  EXPECT_EQ(*batch.oldest_waiting, 2u); // api9 and web10 changed in cycle 2
  caf::anon_send(registry, actors::snapshot_atom::value, true);
  run();
  auto rest = ask<actors::snapshot_batch>(registry, actors::snapshot_atom::value, size_t{5}, std::uint64_t{0});
  EXPECT_EQ(rest.state.builds.size(), 2u);
  EXPECT_FALSE(rest.oldest_waiting);
}

TEST_F(registry_test, a_changed_build_waits_the_delay_and_is_written_once_with_its_later_changes) {
  auto take = [&](std::uint64_t delay) {
    auto batch = ask<actors::snapshot_batch>(registry, actors::snapshot_atom::value, size_t{10}, delay);
    caf::anon_send(registry, actors::snapshot_atom::value, true);
    run();
    return batch;
  };
  caf::anon_send(registry, job(web9, 9, "a", model::job_state::running, 0));
  run();
  auto first = take(2); // cycle 1: web9 changed in it, waits until cycle 3
  EXPECT_TRUE(first.state.builds.empty());
  ASSERT_TRUE(first.oldest_waiting);
  EXPECT_EQ(*first.oldest_waiting, 1u); // the journal keeps web9's events
  caf::anon_send(registry, job(web9, 9, "a", model::job_state::passed, 0));
  caf::anon_send(registry, job(api9, 9, "b", model::job_state::running, 0));
  run();
  auto second = take(2); // cycle 2: still too soon for both
  EXPECT_TRUE(second.state.builds.empty());
  EXPECT_EQ(second.oldest_waiting, std::optional<std::uint64_t>{1u});
  auto third = take(2); // cycle 3: web9 (since 1) is due, with both of its changes
  ASSERT_EQ(third.state.builds.size(), 1u);
  EXPECT_EQ(third.state.builds[0].key, web9);
  ASSERT_EQ(third.state.builds[0].jobs.size(), 1u);
  EXPECT_EQ(third.state.builds[0].jobs.begin()->second.latest().state, model::job_state::passed);
  EXPECT_EQ(third.oldest_waiting, std::optional<std::uint64_t>{2u}); // api9, since cycle 2
  auto fourth = take(2); // cycle 4: api9 is due; nothing waits
  ASSERT_EQ(fourth.state.builds.size(), 1u);
  EXPECT_EQ(fourth.state.builds[0].key, api9);
  EXPECT_FALSE(fourth.oldest_waiting);
}

namespace {

/// Loads the test holds back: a store read that takes as long as the test wants.
struct held_loads {
  std::shared_ptr<store::memory_store> store;
  std::vector<std::pair<model::build_key,
                        caf::typed_response_promise<std::optional<model::build>>>> pending;
};

/// A loader whose reads complete only when the test says so: `(ok, i, true)` answers
/// read `i` from the store, `(ok, i, false)` fails it.
using slow_loader_actor
  = actors::build_loader_actor::extend<caf::reacts_to<caf::ok_atom, std::size_t, bool>>;

slow_loader_actor::behavior_type slow_loader(slow_loader_actor::pointer self,
                                             std::shared_ptr<held_loads> held) {
  return {
    [=](actors::load_atom, const model::build_key& key)
      -> caf::result<std::optional<model::build>> {
      auto rp = self->make_response_promise<std::optional<model::build>>();
      held->pending.emplace_back(key, rp);
      return rp;
    },
    [=](caf::get_atom, const model::build_key&) -> caf::result<std::string> {
      return caf::make_error(actors::errc::not_found);
    },
    [=](caf::ok_atom, std::size_t i, bool succeed) {
      auto& [key, rp] = held->pending.at(i);
      bool failed = false;
      if (succeed)
        rp.deliver(held->store->load(key, failed));
      else
        rp.deliver(caf::make_error(actors::errc::store_unavailable));
    },
  };
}

/// A registry whose loader reads only when the test says so, over a store that
/// holds web9 (one failed job) and nothing of it in memory.
struct slow_store_test : registry_test {
  std::shared_ptr<held_loads> held = std::make_shared<held_loads>(held_loads{store, {}});
  slow_loader_actor loader = sys->spawn(slow_loader, held);
  actors::registry_actor routing
    = spawn_registry(caf::actor_cast<actors::build_loader_actor>(loader));

  slow_store_test() { keep_only_in_store(web9, 9, "a"); }

  /// Build `key` with one failed job (attempt `attempt`), in the store and not in memory.
  void keep_only_in_store(const model::build_key& key, std::int64_t number, std::string attempt) {
    model::build saved;
    auto first = job(key, number, std::move(attempt), model::job_state::failed, 1);
    model::apply(saved, first, first.received);
    store->write(store::snapshot{{saved}, std::nullopt, ""});
    caf::anon_send(routing, caf::put_atom::value, std::vector<model::build_key>{key});
  }

  ~slow_store_test() {
    caf::anon_send_exit(routing, caf::exit_reason::user_shutdown);
    run();
  }
};

} // namespace

// Issue 10: a build that must come from the store is read by the loader, on its own
// thread in buildtrackd; meanwhile the registry goes on routing every other build's
// events, and the slow build's events wait, in order, for its state.
TEST_F(slow_store_test, a_slow_store_read_of_one_build_holds_up_no_other_build) {
  caf::anon_send(routing, job(web9, 9, "a2", model::job_state::passed, 0));
  caf::anon_send(routing, finished(web9));
  caf::anon_send(routing, job(api9, 9, "b", model::job_state::failed, 1));
  caf::anon_send(routing, finished(api9));
  run();
  ASSERT_EQ(held->pending.size(), 1u);
  EXPECT_EQ(held->pending[0].first, web9);
  EXPECT_EQ(stats->loading.load(), 1u);
  // api9 was routed, applied and judged while web9's read is still out.
  auto api = nlohmann::json::parse(ask<std::string>(routing, caf::get_atom::value, api9));
  EXPECT_EQ(api["state"], "failed");
  EXPECT_EQ(api["streak"]["verdict"], "broken");
  // The read completes: web9 starts from its stored state, then takes its two
  // waiting events in the order they came.
  caf::anon_send(loader, caf::ok_atom::value, std::size_t{0}, true);
  run();
  EXPECT_EQ(stats->loading.load(), 0u);
  auto web = nlohmann::json::parse(ask<std::string>(routing, caf::get_atom::value, web9));
  EXPECT_EQ(web["state"], "passed");
  EXPECT_EQ(web["fixed_jobs"][0], "test");
  EXPECT_EQ(web["jobs"][0]["attempts"].size(), 2u);
}

// A read that fails is tried again; the build's events wait for it, nothing is lost.
TEST_F(slow_store_test, a_failed_store_read_is_retried_and_its_events_wait) {
  caf::anon_send(routing, job(web9, 9, "a2", model::job_state::passed, 0));
  run();
  ASSERT_EQ(held->pending.size(), 1u);
  caf::anon_send(loader, caf::ok_atom::value, std::size_t{0}, false);
  run();
  EXPECT_EQ(stats->loading.load(), 1u);
  advance(250ms); // the retry
  ASSERT_EQ(held->pending.size(), 2u);
  caf::anon_send(loader, caf::ok_atom::value, std::size_t{1}, true);
  run();
  auto web = nlohmann::json::parse(ask<std::string>(routing, caf::get_atom::value, web9));
  EXPECT_EQ(web["jobs"][0]["attempts"].size(), 2u);
}

// Streak verdicts depend on the order in which a pipeline's builds finish. While one
// build of a pipeline is read from the store, the pipeline's later events wait behind
// it, so that web9 is judged before web10 as the journal says; and the journal behind
// the waiting events is kept until they are in a build.
TEST_F(slow_store_test, a_pipelines_events_wait_behind_a_read_in_journal_order) {
  caf::anon_send(routing, finished(web9)); // web9 is only in the store: a read
  caf::anon_send(routing, job(web10, 10, "c", model::job_state::failed, 1));
  caf::anon_send(routing, finished(web10));
  run();
  ASSERT_EQ(held->pending.size(), 1u);
  EXPECT_EQ(ask_error(routing, caf::get_atom::value, web10), actors::errc::not_found);
  auto batch = ask<actors::snapshot_batch>(routing, actors::snapshot_atom::value, size_t{10}, std::uint64_t{0});
  ASSERT_TRUE(batch.oldest_waiting);
  EXPECT_EQ(*batch.oldest_waiting, batch.cycle); // the held events came in this cycle
  caf::anon_send(routing, actors::snapshot_atom::value, true);
  caf::anon_send(loader, caf::ok_atom::value, std::size_t{0}, true);
  run();
  auto web = nlohmann::json::parse(ask<std::string>(routing, caf::get_atom::value, web9));
  auto later = nlohmann::json::parse(ask<std::string>(routing, caf::get_atom::value, web10));
  EXPECT_EQ(web["streak"]["verdict"], "broken");
  EXPECT_EQ(later["streak"]["verdict"], "still_failing");
  EXPECT_EQ(later["streak"]["failures"], 2);
}

// While a pipeline's events wait behind a read, its other builds do not leave memory:
// an idle actor stays (and checks again later), a parked state is kept after it was
// written. Otherwise each waiting event could need a read of its own, and under short
// idle timeouts the pipeline would crawl from read to read.
TEST_F(slow_store_test, a_held_pipelines_builds_stay_in_memory_until_it_moves_on) {
  caf::anon_send(routing, job(web10, 10, "c", model::job_state::running, 0));
  run();
  caf::anon_send(routing, finished(web9)); // a read: the web pipeline is held
  run();
  ASSERT_EQ(held->pending.size(), 1u);
  advance(31s); // web10 is idle, but stays
  EXPECT_EQ(stats->live.load(), 1u);
  caf::anon_send(routing, finished(web10)); // waits behind web9's read
  caf::anon_send(loader, caf::ok_atom::value, std::size_t{0}, true);
  run();
  EXPECT_EQ(held->pending.size(), 1u); // web10 needed no read of its own
  auto later = nlohmann::json::parse(ask<std::string>(routing, caf::get_atom::value, web10));
  EXPECT_EQ(later["state"], "passed");
  advance(31s);
  advance(31s);
  EXPECT_EQ(stats->live.load(), 0u); // and once the pipeline moves on, idle actors stop
}

namespace {

/// An event for build `pipeline`-less `cdevents/?/<run>`: a taskRun names its
/// pipelineRun by id alone. Received `at`.
model::envelope task_run(const std::string& run, const std::string& attempt, model::job_state state,
                         model::timestamp at) {
  model::job_event j;
  j.group = j.name = "unit";
  j.numbered = false;
  j.report.id = attempt;
  j.report.state = state;
  j.report.fails = state == model::job_state::failed;
  auto delivery = attempt + ":" + std::string{model::to_string(state)};
  return {{"cdevents", "", run}, delivery, at, std::nullopt, j};
}

model::envelope pipeline_run(const model::build_key& key, model::build_event::phase_t phase,
                             model::timestamp at) {
  model::build_info info;
  info.branch = "main";
  return {key, "", at, info, model::build_event{phase, model::build_end::completed, "x"}};
}

const model::build_key deploy1{"cdevents", "deploy", "run-1"};

} // namespace

// Issue 14: an event that names its build by id alone, before that build is known,
// waits (its journal entry with it: the snapshot says it waits since its cycle) and
// follows the build's first event, then counts from its own cycle. Later ones go
// straight to the build.
TEST_F(registry_test, an_event_naming_its_build_by_id_waits_for_the_build) {
  auto now = support::wall_clock();
  caf::anon_send(registry, task_run("run-1", "tr-1", model::job_state::failed, now));
  EXPECT_TRUE(ask<bool>(registry, actors::replay_atom::value,
                        task_run("run-1", "tr-2", model::job_state::running, now)))
    << "a replayed one is in the registry's hands";
  run();
  EXPECT_EQ(stats->unlinked.load(), 2u);
  EXPECT_EQ(stats->live.load(), 0u);
  auto first = ask<actors::snapshot_batch>(registry, actors::snapshot_atom::value, size_t{100}, std::uint64_t{0});
  EXPECT_TRUE(first.state.builds.empty());
  ASSERT_TRUE(first.oldest_waiting);
  EXPECT_EQ(*first.oldest_waiting, 1u);
  caf::anon_send(registry, actors::snapshot_atom::value, true);
  run();
  caf::anon_send(registry, pipeline_run(deploy1, model::build_event::started, now));
  run();
  EXPECT_EQ(stats->unlinked.load(), 0u);
  auto doc = get(deploy1);
  EXPECT_EQ(doc["state"], "running");
  ASSERT_EQ(doc["jobs"].size(), 1u) << doc.dump(2);
  // Written in this cycle; had it not fit the batch, the journal from cycle 1 stays.
  auto second = ask<actors::snapshot_batch>(registry, actors::snapshot_atom::value, size_t{0}, std::uint64_t{0});
  ASSERT_TRUE(second.oldest_waiting);
  EXPECT_EQ(*second.oldest_waiting, 1u);
  caf::anon_send(registry, actors::snapshot_atom::value, false);
  run();
  caf::anon_send(registry, task_run("run-1", "tr-2", model::job_state::passed, now));
  caf::anon_send(registry, pipeline_run(deploy1, model::build_event::finished, now));
  run();
  EXPECT_EQ(stats->unlinked.load(), 0u);
  EXPECT_EQ(get(deploy1)["state"], "passed") << "tr-2, the unit job's later attempt, passed";
}

// A build known only from the store is found by its id too, and one that never
// shows up lets its waiting events go after store.abandoned_after (the journal
// behind them with them).
TEST_F(registry_test, stored_builds_are_found_by_id_and_events_for_none_expire) {
  auto now = support::wall_clock();
  model::build saved;
  auto started = pipeline_run(deploy1, model::build_event::started, now);
  model::apply(saved, started, now);
  store->write(store::snapshot{{saved}, std::nullopt, ""});
  caf::anon_send(registry, caf::put_atom::value, std::vector<model::build_key>{deploy1});
  caf::anon_send(registry, task_run("run-1", "tr-1", model::job_state::running, now));
  run();
  EXPECT_EQ(stats->unlinked.load(), 0u);
  EXPECT_EQ(get(deploy1)["jobs"].size(), 1u);
  caf::anon_send(registry, task_run("run-9", "tr-9", model::job_state::running, now - 49h));
  caf::anon_send(registry, task_run("run-8", "tr-8", model::job_state::running, now - 47h));
  run();
  EXPECT_EQ(stats->unlinked.load(), 2u);
  snapshot();
  EXPECT_EQ(stats->unlinked.load(), 1u) << "run-9 waited past 48 h";
}

namespace {

/// web9 and web10 both only in the store, each with one failed job.
struct two_stored_builds_test : slow_store_test {
  two_stored_builds_test() {
    keep_only_in_store(web10, 10, "c");
    run();
  }

  /// Both builds finish; their reads complete in the order given (0: web9's).
  void finish_both_reading(std::size_t first_read, std::size_t second_read) {
    caf::anon_send(routing, finished(web9));
    caf::anon_send(routing, finished(web10)); // waits behind web9's read
    run();
    // web10's read started at once, not once web9's completed.
    ASSERT_EQ(held->pending.size(), 2u);
    EXPECT_EQ(held->pending[1].first, web10);
    EXPECT_EQ(stats->loading.load(), 2u);
    caf::anon_send(loader, caf::ok_atom::value, first_read, true);
    run();
    if (first_read == 1) {
      // web10 is in memory, but its finish still waits behind web9's.
      auto waiting = nlohmann::json::parse(ask<std::string>(routing, caf::get_atom::value, web10));
      EXPECT_EQ(waiting["state"], "running");
    }
    caf::anon_send(loader, caf::ok_atom::value, second_read, true);
    run();
    EXPECT_EQ(stats->loading.load(), 0u);
    EXPECT_EQ(held->pending.size(), 2u) << "no read twice";
    // Judged in journal order whichever read came first.
    auto web = nlohmann::json::parse(ask<std::string>(routing, caf::get_atom::value, web9));
    auto later = nlohmann::json::parse(ask<std::string>(routing, caf::get_atom::value, web10));
    EXPECT_EQ(web["streak"]["verdict"], "broken");
    EXPECT_EQ(later["streak"]["verdict"], "still_failing");
    EXPECT_EQ(later["streak"]["failures"], 2);
  }
};

} // namespace

// In a long storm most events of a held pipeline may need reads of their own. They
// start while the events wait, so reads overlap and a pipeline is not held read after
// read; the events still apply in the order they came.
TEST_F(two_stored_builds_test, a_held_pipelines_reads_overlap_and_its_events_keep_their_order) {
  finish_both_reading(0, 1);
}

TEST_F(two_stored_builds_test, a_later_read_that_completes_first_waits_for_the_earlier) {
  finish_both_reading(1, 0);
}

TEST(marks, keep_the_oldest_mark_and_give_the_oldest_names_first) {
  support::marks m;
  EXPECT_EQ(m.oldest(), nullptr);
  EXPECT_EQ(m.lower("b", 5), 5u);
  EXPECT_EQ(m.lower("b", 7), 5u); // an older mark stays
  EXPECT_EQ(m.lower("b", 3), 3u); // a newer one gives way
  m.add("a", 3);
  m.add("a", 1); // add keeps what is there
  m.add("c", 9);
  m.add("d", 4);
  m.erase("d");
  m.erase("none");
  ASSERT_NE(m.oldest(), nullptr);
  EXPECT_EQ(*m.oldest(), 3u);
  EXPECT_EQ(m.size(), 3u);
  // Marked at most 8, two at most: oldest first, ties by name; "c" (9) stays.
  auto taken = m.take(8, 2);
  EXPECT_EQ(taken, (std::vector<std::pair<std::uint64_t, std::string>>{{3, "a"}, {3, "b"}}));
  EXPECT_EQ(m.size(), 1u);
  EXPECT_TRUE(m.take(8, 10).empty());
  EXPECT_EQ(*m.oldest(), 9u);
  EXPECT_EQ(m.lower("c", 2), 2u); // re-indexed under its new mark
  EXPECT_EQ(m.take(2, 10).size(), 1u);
  EXPECT_EQ(m.size(), 0u);
  EXPECT_EQ(m.oldest(), nullptr);
}
