#include "actors/snapshotter.hpp"

#include "support/clock.hpp"
#include "tests/registry_fixture.hpp"

using namespace bt;
using namespace std::chrono_literals;

namespace {

model::envelope job(const model::build_key& key, model::job_state state, model::timestamp at) {
  model::job_event j;
  j.report.id = key.id + "-job";
  j.group = "test";
  j.report.state = state;
  j.report.exit_status = state == model::job_state::failed ? 1 : 0;
  j.report.fails = state == model::job_state::failed;
  model::build_info info;
  info.number = std::stoi(key.id);
  info.branch = "main";
  return {key, "", at, info, j};
}

model::envelope finished(const model::build_key& key, model::timestamp at) {
  return {key, "", at, std::nullopt,
          model::build_event{model::build_event::finished, model::build_end::completed, "x"}};
}

/// A snapshot every 200 ms; a changed build waits `delay` before it is written.
struct snapshotter_fixture : test::registry_fixture {
  explicit snapshotter_fixture(std::chrono::milliseconds delay)
    // Not detached here: the test scheduler runs it deterministically.
    : snapshots{sys->spawn(actors::snapshotter, store, registry, tracker, catalog,
                           actors::treeherder_publisher_actor{},
                           actors::snapshot_policy{200ms, 1h, 2h, 1000, delay})} {
  }
  actors::snapshotter_actor snapshots;

  ~snapshotter_fixture() {
    caf::anon_send_exit(snapshots, caf::exit_reason::user_shutdown);
    run();
  }

  std::size_t stored() {
    std::size_t n = 0;
    store->for_each([&](const model::build&) { ++n; });
    return n;
  }
};

struct snapshotter_test : snapshotter_fixture {
  snapshotter_test() : snapshotter_fixture{0ms} {}
};

struct delayed_snapshotter_test : snapshotter_fixture {
  delayed_snapshotter_test() : snapshotter_fixture{500ms} {}
};

const model::build_key web1{"buildkite", "web", "1"};
const model::build_key web2{"buildkite", "web", "2"};

} // namespace

TEST_F(snapshotter_test, writes_changed_builds_and_streaks_every_interval) {
  auto now = support::wall_clock();
  caf::anon_send(registry, job(web1, model::job_state::failed, now));
  caf::anon_send(registry, finished(web1, now));
  run();
  EXPECT_EQ(stored(), 0u);
  advance(200ms);
  ASSERT_EQ(stored(), 1u);
  std::optional<model::streak_book> book;
  ASSERT_TRUE(store->load_streaks(book));
  ASSERT_TRUE(book);
  EXPECT_EQ(book->streaks().size(), 1u);
  bool failed = false;
  auto b = store->load(web1, failed);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->state, model::build_state::failed);
  // The verdict reached the build before that snapshot was taken, or reaches the
  // next one: either way the stored build ends up judged.
  advance(200ms);
  b = store->load(web1, failed);
  ASSERT_TRUE(b && b->streak);
  EXPECT_EQ(b->streak->kind, model::verdict::broken);
  EXPECT_EQ(stats->dirty.load(), 0u);
}

TEST_F(snapshotter_test, sweeps_expired_builds_from_memory_and_store) {
  auto now = support::wall_clock();
  caf::anon_send(registry, job(web1, model::job_state::running, now - 3h)); // abandoned
  caf::anon_send(registry, job(web2, model::job_state::running, now));
  run();
  advance(200ms);
  ASSERT_EQ(stored(), 2u);
  // The first sweep is due a minute in (a quarter of an hour, capped at a minute).
  for (int i = 0; i < 300 && stored() == 2; ++i)
    advance(200ms);
  EXPECT_EQ(stored(), 1u);
  bool failed = false;
  EXPECT_FALSE(store->load(web1, failed));
  EXPECT_TRUE(store->load(web2, failed));
  EXPECT_EQ(stats->tracked.load(), 1u);
}

TEST_F(delayed_snapshotter_test, writes_a_changed_build_once_the_delay_has_passed_with_what_came_meanwhile) {
  auto now = support::wall_clock();
  caf::anon_send(registry, job(web1, model::job_state::running, now));
  run();
  // 500 ms are three snapshots of 200 ms: the build changed before the first, so the
  // fourth (at 800 ms) is the first that writes it.
  advance(200ms);
  caf::anon_send(registry, job(web1, model::job_state::failed, now));
  caf::anon_send(registry, finished(web1, now));
  run();
  advance(200ms);
  advance(200ms);
  EXPECT_EQ(stored(), 0u);
  EXPECT_EQ(stats->dirty.load(), 1u);
  advance(200ms);
  ASSERT_EQ(stored(), 1u);
  bool failed = false;
  auto b = store->load(web1, failed);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->state, model::build_state::failed); // the later changes came with it
}
