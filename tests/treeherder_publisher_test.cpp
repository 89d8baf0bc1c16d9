// The Treeherder publisher on CAF's deterministic scheduler: what the snapshots keep
// of its inputs, and when. Publishing end to end is taskcluster_api_test's.
#include "actors/treeherder_publisher.hpp"

#include <algorithm>

#include "actors/exchange.hpp"
#include "store/memory_store.hpp"
#include "support/crypto.hpp"
#include "tests/actor_fixture.hpp"
#include "tests/taskcluster_fakes.hpp"

using namespace bt;
namespace tc = bt::test::taskcluster;
using changes = std::vector<store::relay_change>;

namespace {

struct treeherder_publisher_test : test::actor_fixture {
  std::shared_ptr<store::memory_store> store = std::make_shared<store::memory_store>();
  actors::exchange_actor exchange =
    sys->spawn(actors::exchange, std::static_pointer_cast<store::store>(store), std::size_t{1000},
               std::make_shared<std::atomic<std::uint64_t>>(0));
  actors::treeherder_publisher_actor publisher = sys->spawn(
    actors::treeherder_publisher,
    [] {
      config::config c;
      // Nothing answers there: a task whose definition must be read stays pending.
      c.taskcluster.root_url = "http://127.0.0.1:1";
      return actors::treeherder_settings_of(c);
    }(),
    exchange, std::make_shared<actors::treeherder_stats>());

  /// A queue message about task `n`, journaled: with its whole definition in it when
  /// `whole`, else one that must be read from the queue.
  static model::envelope input(long n, bool whole) {
    auto m = tc::task_life(tc::slug(n), tc::slug(999), 0)[1]; // running: no listing
    if (whole)
      m["payload"]["task"] = tc::task_definition();
    return {{"taskcluster", "gecko-level-3", tc::slug(999)}, "", model::timestamp{}, std::nullopt,
            model::relayed{"treeherder", m.dump()}};
  }
  static std::string id_of(const model::envelope& e) {
    return support::sha256_hex(std::get<model::relayed>(e.body).message);
  }
  changes snapshot() {
    auto out = ask<changes>(publisher, actors::snapshot_atom::value);
    std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.id < b.id; });
    return out;
  }
  std::size_t published() { return store->exchange_read(tc::exchange, "", 100)->size(); }
};

} // namespace

// An input waiting for its task is kept by the next snapshot, once; one published at
// once is not (its delete is harmless); a failed write gives the same again.
TEST_F(treeherder_publisher_test, snapshots_keep_what_is_not_published_yet) {
  auto waiting = input(1, false), done = input(2, true);
  caf::anon_send(publisher, waiting);
  caf::anon_send(publisher, done);
  run();
  EXPECT_EQ(published(), 1u);
  auto first = snapshot();
  ASSERT_EQ(first.size(), 2u);
  auto put = std::find_if(first.begin(), first.end(), [&](auto& c) { return c.id == id_of(waiting); });
  ASSERT_NE(put, first.end());
  ASSERT_TRUE(put->input);
  EXPECT_EQ(*put->input, waiting);
  auto gone = std::find_if(first.begin(), first.end(), [&](auto& c) { return c.id == id_of(done); });
  ASSERT_NE(gone, first.end());
  EXPECT_FALSE(gone->input);
  // The write failed: the next snapshot takes the same again.
  caf::anon_send(publisher, actors::snapshot_atom::value, false);
  run();
  EXPECT_EQ(snapshot().size(), 2u);
  caf::anon_send(publisher, actors::snapshot_atom::value, true);
  run();
  EXPECT_TRUE(snapshot().empty()) << "written: nothing changed since";
  // The same message again while it waits is the same input.
  caf::anon_send(publisher, waiting);
  run();
  EXPECT_TRUE(snapshot().empty());
  // The store lost its data: every waiting input is written again.
  caf::anon_send(publisher, actors::rewrite_atom::value);
  run();
  auto again = snapshot();
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].id, id_of(waiting));
  EXPECT_TRUE(again[0].input);
}

// Recovery hands back the stored inputs: each is worked again (and published when it
// can be), and its stored copy follows what becomes of it.
TEST_F(treeherder_publisher_test, recovered_inputs_are_published_and_their_copies_deleted) {
  auto stored = input(3, true);
  caf::anon_send(publisher, caf::put_atom::value,
                 actors::relay_inputs{{id_of(stored), stored}});
  run();
  EXPECT_EQ(published(), 1u);
  auto out = snapshot();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].id, id_of(stored));
  EXPECT_FALSE(out[0].input) << "published: its stored copy goes";
}

TEST(treeherder_settings, a_schema_folder_that_does_not_load_stops_the_start) {
  config::config c;
  c.taskcluster.schemas = "/nonexistent";
  try {
    actors::treeherder_settings_of(c);
    ADD_FAILURE() << "loaded";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string{e.what()}.find("sources.taskcluster.schemas"), std::string::npos) << e.what();
    EXPECT_NE(std::string{e.what()}.find("/nonexistent/pulse-job.schema.yml"), std::string::npos) << e.what();
  }
}
