// The Treeherder publisher on CAF's deterministic scheduler: what the snapshots keep
// of its inputs, and when. Publishing end to end is taskcluster_api_test's. Every
// input here carries its whole task definition and needs no artifact listing: no
// read of the queue, whose answers would come from another thread, which the
// deterministic scheduler does not allow.
#include "actors/treeherder_publisher.hpp"

#include <algorithm>

#include "actors/exchange.hpp"
#include "store/memory_store.hpp"
#include "store/redis_store.hpp"
#include "support/crypto.hpp"
#include "tests/actor_fixture.hpp"
#include "tests/taskcluster_fakes.hpp"

using namespace bt;
namespace tc = bt::test::taskcluster;
using changes = std::vector<store::relay_change>;

namespace {

/// A publisher whose exchange keeps its backlog in `backlog`.
struct treeherder_publisher_test : test::actor_fixture {
  explicit treeherder_publisher_test(std::shared_ptr<store::store> backlog = std::make_shared<store::memory_store>())
    : store{std::move(backlog)} {}
  std::shared_ptr<store::store> store;
  actors::exchange_actor exchange = sys->spawn(actors::exchange, store, std::size_t{1000},
                                               std::make_shared<std::atomic<std::uint64_t>>(0));
  actors::treeherder_publisher_actor publisher =
    sys->spawn(actors::treeherder_publisher, actors::treeherder_settings_of(config::config{}), exchange,
               std::make_shared<actors::treeherder_stats>());

  /// A queue message about task `n`, journaled, with its whole definition in it.
  static model::envelope input(long n) {
    auto m = tc::task_life(tc::slug(n), tc::slug(999), 0)[1]; // running: no listing
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

/// The same with an exchange whose backlog cannot be written (a Redis where none
/// listens): every input waits, tried again later.
struct treeherder_publisher_unpublished : treeherder_publisher_test {
  treeherder_publisher_unpublished() : treeherder_publisher_test{nowhere()} {}
  static std::shared_ptr<store::store> nowhere() {
    store::redis_store_config c;
    c.endpoint.port = 1; // nothing listens on a privileged port here
    c.timeout = std::chrono::milliseconds{200};
    return std::make_shared<store::redis_store>(c);
  }
};

} // namespace

// An input that cannot be published yet is kept by the next snapshot, once; a failed
// write gives the same again; the same message again is the same input; after the
// store lost its data, every waiting input is written again.
TEST_F(treeherder_publisher_unpublished, snapshots_keep_what_is_not_published_yet) {
  auto waiting = input(1);
  caf::anon_send(publisher, waiting);
  run();
  auto first = snapshot();
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].id, id_of(waiting));
  ASSERT_TRUE(first[0].input);
  EXPECT_EQ(*first[0].input, waiting);
  caf::anon_send(publisher, actors::snapshot_atom::value, false);
  run();
  EXPECT_EQ(snapshot().size(), 1u) << "the write failed: taken again";
  caf::anon_send(publisher, actors::snapshot_atom::value, true);
  run();
  EXPECT_TRUE(snapshot().empty()) << "written: nothing changed since";
  caf::anon_send(publisher, waiting);
  run();
  EXPECT_TRUE(snapshot().empty()) << "one input, however often it came";
  caf::anon_send(publisher, actors::rewrite_atom::value);
  run();
  auto again = snapshot();
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].id, id_of(waiting));
  EXPECT_TRUE(again[0].input);
}

// An input published at once leaves nothing to keep: the snapshot deletes its copy.
TEST_F(treeherder_publisher_test, a_published_input_leaves_nothing_to_keep) {
  auto done = input(2);
  caf::anon_send(publisher, done);
  run();
  EXPECT_EQ(published(), 1u);
  auto out = snapshot();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].id, id_of(done));
  EXPECT_FALSE(out[0].input);
}

// Recovery hands back the stored inputs: each is worked again (and published when it
// can be), and its stored copy follows what becomes of it.
TEST_F(treeherder_publisher_test, recovered_inputs_are_published_and_their_copies_deleted) {
  auto stored = input(3);
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
