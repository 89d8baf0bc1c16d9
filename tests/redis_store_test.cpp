#include <algorithm>
#include <atomic>
#include <future>
#include <map>
#include <numeric>
#include <mutex>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "store/memory_store.hpp"
#include "store/redis_store.hpp"
#include "tests/eventually.hpp"
#include "tests/redis_server.hpp"

using namespace bt;
using namespace std::chrono_literals;
using bt::test::eventually;

namespace {

model::envelope event(const std::string& build, int n) {
  model::job_event j;
  j.group = "g" + std::to_string(n);
  j.name = "job " + std::to_string(n);
  j.report.id = build + "-" + std::to_string(n);
  j.report.state = model::job_state::passed;
  j.report.exit_status = 0;
  return {{"buildkite", "web", build}, "", model::timestamp{std::chrono::milliseconds{n}},
          std::nullopt, j};
}

store::redis_store_config config_for(const test::redis_server& server,
                                     std::string prefix = "bt-test:") {
  store::redis_store_config cfg;
  cfg.endpoint = *store::parse_redis_url(server.url());
  cfg.key_prefix = std::move(prefix);
  cfg.timeout = 500ms;
  cfg.max_backoff = 200ms;
  return cfg;
}

/// Counts the appends of one commit that gathered it; flushing notes that count.
struct counted_appends {
  counted_appends(std::mutex& m, std::vector<int>& flushed) : mutex{m}, flushes{flushed} {}
  void flush() {
    std::lock_guard guard{mutex};
    flushes.push_back(appends);
  }
  std::mutex& mutex;
  std::vector<int>& flushes;
  int appends = 0;
};

/// Appends and waits for the outcome.
bool append_sync(store::redis_store& s, std::vector<model::envelope> events) {
  std::promise<bool> outcome;
  s.append(events, [&](bool durable, store::commit&) { outcome.set_value(durable); });
  return outcome.get_future().get();
}

/// The journal entries after `after`; fails the test when Redis cannot be read.
std::vector<store::journal_entry> journal(store::redis_store& s, const std::string& after = "0",
                                          size_t count = 100000) {
  auto page = s.read_journal(after, count);
  EXPECT_TRUE(page);
  return page ? std::move(page->entries) : std::vector<store::journal_entry>{};
}

model::build build_with_job(int i) {
  model::build b;
  b.key = {"buildkite", "web", std::to_string(i)};
  model::apply(b, event(std::to_string(i), i), model::timestamp{});
  return b;
}

} // namespace

TEST(redis_store, concurrent_appends_are_all_journaled_in_each_callers_order) {
  test::redis_server server;
  store::redis_store s{config_for(server)};
  ASSERT_TRUE(eventually([&] { return s.ready(); }));
  constexpr int threads = 4, per_thread = 500;
  std::atomic<int> confirmed{0}, refused{0};
  std::vector<std::thread> senders;
  for (int t = 0; t < threads; ++t)
    senders.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i)
        s.append({event("b" + std::to_string(t), i)},
                 [&](bool durable, store::commit&) { (durable ? confirmed : refused).fetch_add(1); });
    });
  for (auto& th : senders)
    th.join();
  ASSERT_TRUE(eventually([&] { return confirmed + refused == threads * per_thread; }));
  EXPECT_EQ(refused.load(), 0);
  auto all = journal(s);
  ASSERT_EQ(all.size(), static_cast<size_t>(threads * per_thread));
  std::map<std::string, int> next;
  for (auto& entry : all) {
    auto& j = std::get<model::job_event>(entry.event.body);
    EXPECT_EQ(j.report.id, entry.event.key.id + "-" + std::to_string(next[entry.event.key.id]++));
  }
  // An entry holds what one commit gathered (at most max_batch appends), so there
  // are two entries at least; reading on from one returns only the entries after it.
  auto last_entry = std::find_if(all.begin(), all.end(),
                                 [&](auto& e) { return e.id == all.back().id; });
  ASSERT_NE(last_entry, all.begin());
  auto tail = journal(s, std::prev(last_entry)->id, 100);
  ASSERT_EQ(tail.size(), static_cast<std::size_t>(all.end() - last_entry));
  EXPECT_EQ(tail.front().id, all.back().id);
  EXPECT_EQ(tail.front().event, last_entry->event);
}

TEST(redis_store, appends_queued_during_a_commit_share_one_entry_in_order) {
  test::redis_server server;
  store::redis_store s{config_for(server)}; // a 500 ms timeout outlasts the pause
  ASSERT_TRUE(eventually([&] { return s.ready(); }));
  std::atomic<int> first_done{0}, confirmed{0};
  s.append({event("solo", 0)}, [&](bool ok, store::commit&) { first_done = ok ? 1 : -1; });
  ASSERT_TRUE(eventually([&] { return first_done == 1; }));
  // Writes paused (CLIENT PAUSE answers once the pause holds): the writer's XADD of
  // "a" waits in Redis, and the appends made meanwhile queue for its next commit.
  server.text("CLIENT PAUSE 300 WRITE");
  // Each callback counts itself in its commit; the commit hands the count on once.
  std::mutex mutex;
  std::vector<int> flushes;
  auto done = [&](bool ok, store::commit& c) {
    confirmed += ok;
    ++c.gather<counted_appends>(mutex, flushes).appends;
  };
  s.append({event("a", 0)}, done);
  for (int i = 0; i < 5; ++i)
    s.append({event("b", i), event("c", i)}, done);
  ASSERT_TRUE(eventually([&] {
    std::lock_guard guard{mutex};
    return std::accumulate(flushes.begin(), flushes.end(), 0) == 6;
  }));
  auto all = journal(s);
  ASSERT_EQ(all.size(), 12u);
  // Every append after the first, in the order made, under at most two entry ids (the
  // probe's timing may split them once).
  EXPECT_EQ(all[1].event.key.id, "a");
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(all[2 + 2 * i].event, event("b", i));
    EXPECT_EQ(all[3 + 2 * i].event, event("c", i));
  }
  std::set<std::string> ids;
  for (std::size_t i = 1; i < all.size(); ++i)
    ids.insert(all[i].id);
  EXPECT_LE(ids.size(), 2u);
  // One flush per commit, that is per entry, after all of its callbacks.
  std::lock_guard guard{mutex};
  EXPECT_EQ(flushes.size(), ids.size());
}

TEST(redis_store, a_multi_event_append_is_journaled_whole_and_round_trips) {
  test::redis_server server;
  store::redis_store s{config_for(server)};
  std::vector<model::envelope> events{event("x", 1), event("x", 2), event("x", 3)};
  ASSERT_TRUE(append_sync(s, events));
  auto all = journal(s);
  ASSERT_EQ(all.size(), 3u);
  for (size_t i = 0; i < 3; ++i)
    EXPECT_EQ(all[i].event, events[i]);
}

TEST(redis_store, an_empty_append_is_done_without_a_journal_entry) {
  test::redis_server server;
  store::redis_store s{config_for(server)};
  EXPECT_TRUE(append_sync(s, {}));
  EXPECT_TRUE(journal(s).empty());
}

TEST(redis_store, snapshots_write_load_scan_and_erase) {
  test::redis_server server;
  store::redis_store s{config_for(server)};
  constexpr int builds = 2500; // several SCAN pages and write pipelines
  store::snapshot snap;
  for (int i = 0; i < builds; ++i)
    snap.builds.push_back(build_with_job(i));
  ASSERT_TRUE(s.write(snap));
  bool failed = true;
  auto one = s.load({"buildkite", "web", "1234"}, failed);
  EXPECT_FALSE(failed);
  ASSERT_TRUE(one);
  EXPECT_EQ(*one, snap.builds[1234]);
  EXPECT_FALSE(s.load({"buildkite", "web", "nope"}, failed));
  EXPECT_FALSE(failed); // missing is not a failure
  std::set<std::string> seen;
  // Each page is decoded on several threads: each build must still be the one stored.
  std::size_t same = 0;
  EXPECT_TRUE(s.for_each([&](const model::build& b) {
    seen.insert(b.key.id);
    same += b == snap.builds.at(static_cast<std::size_t>(std::stoi(b.key.id)));
  }));
  EXPECT_EQ(seen.size(), static_cast<size_t>(builds));
  EXPECT_EQ(same, static_cast<size_t>(builds));
  // A document that does not decode is skipped; the others are still visited.
  store::redis_client raw{*store::parse_redis_url(server.url()), 500ms};
  ASSERT_FALSE(raw.connect());
  raw.pipeline({{"SET", "bt-test:build:buildkite/web/garbage", "{not json"}});
  seen.clear();
  EXPECT_TRUE(s.for_each([&](const model::build& b) { seen.insert(b.key.id); }));
  EXPECT_EQ(seen.size(), static_cast<size_t>(builds));
  ASSERT_TRUE(s.erase({{"buildkite", "web", "1234"}, {"buildkite", "web", "7"}}));
  EXPECT_FALSE(s.load({"buildkite", "web", "1234"}, failed));
  seen.clear();
  s.for_each([&](const model::build& b) { seen.insert(b.key.id); });
  EXPECT_EQ(seen.size(), static_cast<size_t>(builds - 2));
}

/// Every record `s` visits, by build id.
std::map<std::string, model::recovery_record> records_of(store::store& s) {
  std::map<std::string, model::recovery_record> out;
  EXPECT_TRUE(s.for_each_record([&](model::recovery_record&& r) {
    auto id = r.summary.key.id;
    EXPECT_TRUE(out.emplace(id, std::move(r)).second) << "visited twice: " << id;
  }));
  return out;
}

TEST(redis_store, builds_are_written_and_erased_with_their_recovery_records) {
  test::redis_server server;
  store::redis_store s{config_for(server)};
  constexpr int builds = 1500; // several HSCAN pages and script calls
  store::snapshot snap;
  for (int i = 0; i < builds; ++i)
    snap.builds.push_back(build_with_job(i));
  ASSERT_TRUE(s.write(snap));
  // Records are kept from the first start of this release on: made from the builds
  // (none were stored yet, so every build written since has its own).
  auto seen = records_of(s);
  ASSERT_EQ(seen.size(), static_cast<std::size_t>(builds));
  for (auto& b : snap.builds)
    EXPECT_EQ(seen.at(b.key.id), model::record_of(b));
  // A build written again comes with its new record; an erased one goes with its.
  model::apply(snap.builds[3], event("3", 99), model::timestamp{});
  ASSERT_TRUE(s.write(store::snapshot{{snap.builds[3]}}));
  ASSERT_TRUE(s.erase({{"buildkite", "web", "4"}}));
  seen = records_of(s);
  EXPECT_EQ(seen.size(), static_cast<std::size_t>(builds - 1));
  EXPECT_FALSE(seen.contains("4"));
  EXPECT_EQ(seen.at("3"), model::record_of(snap.builds[3]));
  EXPECT_EQ(seen.at("3").summary.failed_jobs, 0u);
  // load_each reads the builds asked for that are still there.
  std::vector<std::string> loaded;
  ASSERT_TRUE(s.load_each({{"buildkite", "web", "3"}, {"buildkite", "web", "4"}, {"buildkite", "web", "9"}},
                          [&](const model::build& b) { loaded.push_back(b.key.id); }));
  EXPECT_EQ(loaded, (std::vector<std::string>{"3", "9"}));
}

TEST(redis_store, builds_stored_without_records_get_them_at_the_first_start) {
  test::redis_server server;
  store::redis_store s{config_for(server)};
  store::snapshot snap;
  for (int i = 0; i < 300; ++i)
    snap.builds.push_back(build_with_job(i));
  ASSERT_TRUE(s.write(snap));
  // As the release before records left Redis: builds only. A record left by a
  // release that kept them, before an older one ran, says nothing reliable: replaced.
  store::redis_client raw{*store::parse_redis_url(server.url()), 500ms};
  ASSERT_FALSE(raw.connect());
  raw.pipeline({{"DEL", "bt-test:build-records", "bt-test:build-records-complete"}});
  raw.pipeline({{"HSET", "bt-test:build-records", "buildkite/web/5", "{\"v\":6,\"state\":\"canceled\"}"}});
  auto seen = records_of(s);
  ASSERT_EQ(seen.size(), 300u);
  for (auto& b : snap.builds)
    EXPECT_EQ(seen.at(b.key.id), model::record_of(b));
  // ...and kept: the next start reads them, not the builds.
  auto kept = raw.pipeline({{"HLEN", "bt-test:build-records"}, {"GET", "bt-test:build-records-complete"}});
  auto& replies = std::get<0>(kept);
  EXPECT_EQ(replies.at(0).number, 300);
  EXPECT_EQ(replies.at(1).text, "1");
  // A build taken away behind the store's back still shows: the records were read.
  raw.pipeline({{"DEL", "bt-test:build:buildkite/web/7"}});
  EXPECT_EQ(records_of(s), seen);
}

TEST(redis_store, a_record_that_does_not_decode_is_made_again_from_its_build) {
  test::redis_server server;
  store::redis_store s{config_for(server)};
  store::snapshot snap;
  for (int i = 0; i < 10; ++i)
    snap.builds.push_back(build_with_job(i));
  ASSERT_TRUE(s.write(snap));
  ASSERT_EQ(records_of(s).size(), 10u); // records complete
  store::redis_client raw{*store::parse_redis_url(server.url()), 500ms};
  ASSERT_FALSE(raw.connect());
  raw.pipeline({{"HSET", "bt-test:build-records", "buildkite/web/2", "{\"v\":6,\"state\":\"exploded\"}",
                 "no key", "{}"}});
  auto seen = records_of(s);
  ASSERT_EQ(seen.size(), 10u);
  EXPECT_EQ(seen.at("2"), model::record_of(snap.builds[2]));
}

TEST(redis_store, streaks_round_trip_and_absent_streaks_are_not_a_failure) {
  test::redis_server server;
  store::redis_store s{config_for(server)};
  std::optional<model::streak_book> back;
  ASSERT_TRUE(s.load_streaks(back));
  EXPECT_FALSE(back);
  model::streak_book book;
  book.record({"buildkite", "web", "main"}, 1, true);
  book.record({"buildkite", "web", "main"}, 2, true);
  store::snapshot snap;
  snap.streaks = book;
  ASSERT_TRUE(s.write(snap));
  ASSERT_TRUE(s.load_streaks(back));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->streaks(), book.streaks());
}

TEST(redis_store, the_mark_follows_completed_appends_and_a_snapshot_trims_behind_it) {
  test::redis_server server;
  store::redis_store s{config_for(server)};
  EXPECT_EQ(s.journal_mark(), "");
  ASSERT_TRUE(append_sync(s, {event("m", 1)}));
  ASSERT_TRUE(append_sync(s, {event("m", 2), event("m", 3)}));
  auto all = journal(s);
  ASSERT_EQ(all.size(), 3u);
  // The mark moves once the callback has returned, on the writer thread, so it may
  // trail append_sync by a moment: the last id of the transaction.
  EXPECT_TRUE(eventually([&] { return s.journal_mark() == all[2].id; })) << s.journal_mark();
  // While a callback runs, and while what its commit gathered is handed on, the mark
  // does not yet cover its entry: a snapshot must not trim what is not routed yet.
  struct mark_reader {
    mark_reader(const store::redis_store& s, std::promise<std::string>& p) : store{s}, at_flush{p} {}
    void flush() { at_flush.set_value(store.journal_mark()); }
    const store::redis_store& store;
    std::promise<std::string>& at_flush;
  };
  std::string mark_inside;
  std::promise<std::string> mark_at_flush;
  s.append({event("m", 4)}, [&](bool, store::commit& c) {
    mark_inside = s.journal_mark();
    c.gather<mark_reader>(s, mark_at_flush);
  });
  EXPECT_EQ(mark_at_flush.get_future().get(), all[2].id);
  EXPECT_EQ(mark_inside, all[2].id);
  ASSERT_TRUE(eventually([&] { return s.journal_mark() != all[2].id; }));

  store::snapshot snap;
  snap.journal_mark = all[1].id;
  ASSERT_TRUE(s.write(snap));
  auto left = journal(s);
  ASSERT_EQ(left.size(), 3u); // entries from the mark on stay; replaying them is harmless
  EXPECT_EQ(left[0].id, all[1].id);
  size_t replayed = 0;
  auto visited = s.replay([&](model::envelope e) {
    EXPECT_EQ(e, left[replayed].event);
    ++replayed;
  });
  ASSERT_TRUE(visited);
  EXPECT_EQ(*visited, 3u);
  // A store opened afresh (a restart) marks what it replayed.
  store::redis_store restarted{config_for(server)};
  ASSERT_TRUE(eventually([&] { return restarted.ready(); }));
  EXPECT_EQ(restarted.journal_mark(), "");
  ASSERT_TRUE(restarted.replay([](model::envelope) {}));
  EXPECT_EQ(restarted.journal_mark(), left.back().id);
}

TEST(redis_store, key_prefixes_keep_stores_apart) {
  test::redis_server server;
  store::redis_store a{config_for(server, "a:")};
  store::redis_store b{config_for(server, "b:")};
  ASSERT_TRUE(append_sync(a, {event("1", 1)}));
  store::snapshot snap;
  snap.builds.push_back(build_with_job(1));
  ASSERT_TRUE(a.write(snap));
  bool failed = false;
  EXPECT_EQ(journal(b).size(), 0u);
  EXPECT_FALSE(b.load(snap.builds[0].key, failed));
  EXPECT_TRUE(a.load(snap.builds[0].key, failed));
}

TEST(redis_store, reads_during_an_outage_fail_rather_than_look_empty) {
  test::redis_server server;
  store::redis_store s{config_for(server)};
  store::snapshot snap;
  snap.builds.push_back(build_with_job(1));
  ASSERT_TRUE(s.write(snap));
  server.stop();
  bool failed = false;
  EXPECT_FALSE(s.load(snap.builds[0].key, failed));
  EXPECT_TRUE(failed);
  EXPECT_FALSE(s.for_each([](const model::build&) {}));
  std::optional<model::streak_book> book;
  EXPECT_FALSE(s.load_streaks(book));
  EXPECT_FALSE(s.replay([](model::envelope) {}));
  EXPECT_FALSE(s.write(snap));
}

TEST(redis_store, outage_refuses_appends_and_recovers_without_traffic) {
  test::redis_server server;
  store::redis_store s{config_for(server)};
  ASSERT_TRUE(append_sync(s, {event("o", 1)}));
  EXPECT_TRUE(s.ready());
  server.stop();
  EXPECT_FALSE(append_sync(s, {event("o", 2)}));
  EXPECT_FALSE(s.ready());
  // Between reconnect attempts appends are refused at once, not held.
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(append_sync(s, {event("o", 3)}));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
  server.start();
  EXPECT_TRUE(eventually([&] { return s.ready(); })); // the writer probes by itself
  EXPECT_TRUE(append_sync(s, {event("o", 4)}));
  auto all = journal(s);
  ASSERT_EQ(all.size(), 1u); // this test server keeps no data across the restart
  EXPECT_EQ(all[0].event, event("o", 4));
}

// Issue 9, point 3: after Redis came back, the first append failed on the connection
// left over from before. No probe comes between here (an hour apart): the append
// itself retries once on a fresh connection.
TEST(redis_store, the_first_append_after_a_redis_restart_is_journaled) {
  test::redis_server server;
  auto cfg = config_for(server);
  cfg.probe_interval = 1h;
  store::redis_store s{cfg};
  ASSERT_TRUE(append_sync(s, {event("r", 1)}));
  server.stop();
  server.start();
  EXPECT_TRUE(append_sync(s, {event("r", 2)}));
  EXPECT_TRUE(s.ready());
}

// Issue 9, point 3: with no traffic at all, readiness follows Redis within a second.
TEST(redis_store, readiness_follows_redis_without_traffic) {
  test::redis_server server;
  store::redis_store s{config_for(server)};
  ASSERT_TRUE(eventually([&] { return s.ready(); }));
  server.stop();
  EXPECT_TRUE(eventually([&] { return !s.ready(); }, 1s));
  server.start();
  EXPECT_TRUE(eventually([&] { return s.ready(); }, 1s));
}

// Issue 9, point 8: a Redis emptied under the store (restarted without its data,
// flushed) is noticed by the missing marker: data_epoch() moves, once per loss.
TEST(redis_store, losing_the_data_moves_the_data_epoch) {
  test::redis_server server;
  store::redis_store s{config_for(server)};
  ASSERT_TRUE(append_sync(s, {event("m", 1)}));
  EXPECT_EQ(s.data_epoch(), 0u);
  EXPECT_EQ(server.integer("EXISTS bt-test:instance"), 1);
  server.stop();
  server.start(); // not durable: it comes back empty
  EXPECT_TRUE(eventually([&] { return s.data_epoch() == 1; }));
  EXPECT_TRUE(eventually([&] { return server.integer("EXISTS bt-test:instance") == 1; }));
  EXPECT_TRUE(append_sync(s, {event("m", 2)}));
  EXPECT_EQ(s.data_epoch(), 1u) << "the marker is back: one loss, counted once";
  // Appends alone (no quiet spell) still check the marker.
  server.stop();
  server.start();
  int n = 3;
  EXPECT_TRUE(eventually([&] {
    append_sync(s, {event("m", n++)});
    return s.data_epoch() == 2;
  }, 2s));
}

namespace {

/// The outbox contract, the same for every store.
void check_outbox(store::store& s) {
  model::build_key b1{"buildkite", "web", "1"}, b2{"buildkite", "web", "2"};
  using ids = std::vector<std::string>;
  std::vector<ids> admitted;
  auto add = [&](store::outbox_record r) {
    EXPECT_TRUE(s.outbox_add(std::span{&r, 1}, admitted));
    return admitted.at(0);
  };
  EXPECT_EQ(add({b1, 2, {{"slack|b1", "doc-2"}, {"hook|b1", "hook-2"}}}),
            (ids{"slack|b1", "hook|b1"}));
  // The same revision again: what still waits is to be sent (the caller may have lost
  // the first answer), and nothing is overwritten.
  EXPECT_EQ(add({b1, 2, {{"slack|b1", "again"}, {"hook|b1", "again"}}}),
            (ids{"slack|b1", "hook|b1"}));
  EXPECT_EQ(add({b1, 1, {{"slack|b1", "older"}}}), ids{}) << "older than recorded";
  // Several records in one call, each judged on its own.
  std::vector<store::outbox_record> two{{b2, 1, {}}, {b1, 1, {{"slack|b1", "older"}}}};
  ASSERT_TRUE(s.outbox_add(two, admitted));
  EXPECT_EQ(admitted, (std::vector<ids>{{}, {}}));
  std::vector<std::pair<std::string, std::string>> entries;
  ASSERT_TRUE(s.outbox_load(entries));
  std::sort(entries.begin(), entries.end());
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[1].first, "slack|b1");
  EXPECT_EQ(entries[1].second, "doc-2");
  std::unordered_map<std::string, store::build_notices> notified;
  ASSERT_TRUE(s.notified(notified));
  EXPECT_EQ(notified[b1.str()].revision, 2u);
  EXPECT_EQ(notified[b2.str()].revision, 1u) << "a notice no sink wants is still remembered";
  // Delivered with a message kept; retried with attempts counted: one write.
  store::outbox_change delivered{"slack|b1", b1, "slack"};
  delivered.remove = true;
  delivered.message_ref = R"({"channel":"C","ts":"1.1"})";
  store::outbox_change retried{"hook|b1", b1, "hook"};
  retried.entry = "hook-2, attempt 1";
  std::vector<store::outbox_change> changes{delivered, retried};
  ASSERT_TRUE(s.outbox_apply(changes));
  ASSERT_TRUE(s.outbox_load(entries));
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].second, "hook-2, attempt 1");
  EXPECT_EQ(add({b1, 2, {{"slack|b1", "doc-2"}, {"hook|b1", "hook-2"}}}), ids{"hook|b1"})
    << "a delivered entry is not sent again";
  bool failed = true;
  EXPECT_EQ(s.message_ref(b1, "slack", failed), delivered.message_ref);
  EXPECT_FALSE(failed);
  EXPECT_FALSE(s.message_ref(b1, "other", failed));
  EXPECT_FALSE(failed);
  store::outbox_change dead{"hook|b1", b1, "hook"};
  dead.remove = true;
  dead.dead_letter = "letter";
  ASSERT_TRUE(s.outbox_apply(std::span{&dead, 1}));
  ASSERT_TRUE(s.outbox_load(entries));
  EXPECT_TRUE(entries.empty());
  // A part of a build (a release to one sink) is taken once on its own, whatever the
  // build's revision says; the same part again is not.
  store::outbox_record part{b1, 2, {{"wait|b1", "release"}}, "wait"};
  EXPECT_EQ(add(part), ids{"wait|b1"});
  store::outbox_change sent{"wait|b1", b1, "wait"};
  sent.remove = true;
  ASSERT_TRUE(s.outbox_apply(std::span{&sent, 1}));
  EXPECT_EQ(add(part), ids{}) << "a delivered release is not sent again";
  // Job notices are parts counted per build, each once however often it comes.
  store::outbox_record job{b1, 1, {{"hook|b1|job:a", "job a"}}, "job:a", true};
  EXPECT_EQ(add(job), ids{"hook|b1|job:a"});
  EXPECT_EQ(add(job), ids{"hook|b1|job:a"}) << "recorded, not yet sent";
  EXPECT_EQ(add({b1, 1, {}, "job:b", true}), ids{}) << "a job notice no sink wants";
  ASSERT_TRUE(s.notified(notified));
  EXPECT_EQ(notified[b1.str()].jobs, 2u);
  EXPECT_EQ(notified[b1.str()].revision, 2u);
  EXPECT_EQ(notified[b2.str()].jobs, 0u);
  // Expiry forgets the message, the notified revision and the parts.
  ASSERT_TRUE(s.erase({b1}));
  EXPECT_FALSE(s.message_ref(b1, "slack", failed));
  ASSERT_TRUE(s.notified(notified));
  EXPECT_EQ(notified.count(b1.str()), 0u) << "neither its revision nor its job count";
  EXPECT_EQ(notified.count(b2.str()), 1u);
  EXPECT_EQ(add(part), ids{"wait|b1"}) << "the part went with the build";
  EXPECT_EQ(add(job), ids{"hook|b1|job:a"});
  // Changes and records in one write: the changes first. The entry delivered for
  // revision 3 goes, the one revision 4 adds under the same id stays and is admitted.
  model::build_key b3{"buildkite", "web", "3"};
  EXPECT_EQ(add({b3, 3, {{"hook|b3", "hook-3"}}}), ids{"hook|b3"});
  store::outbox_change delivered3{"hook|b3", b3, "hook"};
  delivered3.remove = true;
  store::outbox_change retried_job{"hook|b1|job:a", b1, "hook"};
  retried_job.entry = "job a, attempt 1";
  std::vector<store::outbox_change> both{delivered3, retried_job};
  std::vector<store::outbox_record> newer{{b3, 4, {{"hook|b3", "hook-4"}}}, {b3, 2, {}}};
  ASSERT_TRUE(s.outbox_write(both, newer, admitted));
  EXPECT_EQ(admitted, (std::vector<ids>{{"hook|b3"}, {}}));
  ASSERT_TRUE(s.outbox_load(entries));
  std::sort(entries.begin(), entries.end());
  EXPECT_EQ(entries, (std::vector<std::pair<std::string, std::string>>{
                       {"hook|b1|job:a", "job a, attempt 1"}, {"hook|b3", "hook-4"},
                       {"wait|b1", "release"}}));
  ASSERT_TRUE(s.notified(notified));
  EXPECT_EQ(notified[b3.str()].revision, 4u);
  // Either half may be empty.
  ASSERT_TRUE(s.outbox_write({}, std::span{&newer[0], 1}, admitted));
  EXPECT_EQ(admitted, std::vector<ids>{{"hook|b3"}}) << "recorded, not yet sent";
  ASSERT_TRUE(s.outbox_write(std::span{&delivered3, 1}, {}, admitted));
  EXPECT_TRUE(admitted.empty());
  ASSERT_TRUE(s.outbox_load(entries));
  EXPECT_EQ(entries.size(), 2u) << "hook|b3 delivered";
}

} // namespace

TEST(redis_store, outbox_records_each_revision_once_and_keeps_messages) {
  test::redis_server server;
  store::redis_store s{config_for(server)};
  check_outbox(s);
  EXPECT_EQ(server.integer("LLEN bt-test:deadletters"), 1);
  EXPECT_EQ(server.integer("HLEN bt-test:notified:buildkite/web/1"), 2) << "the last adds";
  EXPECT_EQ(server.integer("HLEN bt-test:notified-jobs"), 1) << "counted again after the erase";
}

TEST(memory_store, outbox_records_each_revision_once_and_keeps_messages) {
  store::memory_store s;
  check_outbox(s);
  EXPECT_EQ(s.dead_letters(), std::vector<std::string>{"letter"});
}

namespace {

/// The exchange backlog contract, the same for every store.
void check_exchange(store::store& s) {
  using pubs = std::vector<store::exchange_publication>;
  auto publish = [&](pubs m, std::size_t backlog = 100) {
    auto out = s.exchange_publish("jobs", m, backlog);
    EXPECT_TRUE(out);
    return out.value_or(std::vector<store::published>{});
  };
  auto first = publish({{"m1", "a.b._", R"({"n":1})"}, {"m2", "a.c._", R"({"n":2})"}});
  ASSERT_EQ(first.size(), 2u);
  EXPECT_TRUE(first[0].fresh && first[1].fresh);
  // The same message again (a retried delivery) keeps its place; a new one follows.
  auto again = publish({{"m2", "a.c._", R"({"n":2})"}, {"m3", "x._", R"({"n":3})"}});
  ASSERT_EQ(again.size(), 2u);
  EXPECT_FALSE(again[0].fresh);
  EXPECT_EQ(again[0].id, first[1].id);
  EXPECT_TRUE(again[1].fresh);
  auto all = s.exchange_read("jobs", "", 10);
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].id, first[0].id);
  EXPECT_EQ((*all)[0].routing_key, "a.b._");
  EXPECT_EQ((*all)[0].payload, R"({"n":1})");
  EXPECT_EQ((*all)[2].id, again[1].id);
  // After a position: what follows it, at most `count`.
  auto after = s.exchange_read("jobs", first[0].id, 1);
  ASSERT_TRUE(after);
  ASSERT_EQ(after->size(), 1u);
  EXPECT_EQ((*after)[0].id, first[1].id);
  EXPECT_TRUE(s.exchange_read("jobs", again[1].id, 10)->empty());
  EXPECT_TRUE(s.exchange_read("other", "", 10)->empty()) << "exchanges are apart";
  // Past the backlog the oldest dedup ids go: after m4, m3 is still known, m1 is not.
  EXPECT_TRUE(publish({{"m4", "x._", "{}"}}, 2).at(0).fresh);
  EXPECT_FALSE(publish({{"m3", "x._", "{}"}}, 2).at(0).fresh) << "m3 is one of the last two";
  EXPECT_TRUE(publish({{"m1", "a.b._", "{}"}}, 2).at(0).fresh) << "m1 went with the backlog";
  auto kept = s.exchange_read("jobs", "", 10);
  ASSERT_TRUE(kept);
  EXPECT_EQ(kept->back().routing_key, "a.b._");
  auto span = s.exchange_span("jobs");
  ASSERT_TRUE(span);
  EXPECT_EQ(span->oldest, kept->front().id);
  auto none = s.exchange_span("other");
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->oldest.empty());
  EXPECT_FALSE(none->trimmed);
  // An empty dedup id is not deduplicated: each such message is appended.
  auto plain = publish({{"", "n._", "{}"}, {"", "n._", "{}"}}, 2);
  ASSERT_EQ(plain.size(), 2u);
  EXPECT_TRUE(plain[0].fresh && plain[1].fresh);
  EXPECT_NE(plain[0].id, plain[1].id);
  EXPECT_EQ(s.exchange_read("jobs", kept->back().id, 10)->size(), 2u);
  // Mixed in one batch, each kind keeps its rule.
  auto mixed = publish({{"", "n._", "{}"}, {"m9", "x._", "{}"}, {"m9", "x._", "{}"}}, 10);
  ASSERT_EQ(mixed.size(), 3u);
  EXPECT_TRUE(mixed[0].fresh && mixed[1].fresh);
  EXPECT_FALSE(mixed[2].fresh);
  EXPECT_EQ(mixed[2].id, mixed[1].id);
  EXPECT_EQ(s.exchange_read("jobs", plain[1].id, 10)->size(), 2u);
}

} // namespace

TEST(redis_store, exchange_backlog_takes_each_message_once_in_order) {
  test::redis_server server;
  store::redis_store s{config_for(server)};
  check_exchange(s);
  // m3 and m1 (kept to two), then m9: messages without a dedup id leave no trace.
  EXPECT_EQ(server.integer("LLEN bt-test:exchange:jobs:dedup-order"), 3);
  EXPECT_EQ(server.integer("HLEN bt-test:exchange:jobs:dedup"), 3);
}

TEST(memory_store, exchange_backlog_takes_each_message_once_in_order) {
  store::memory_store s;
  check_exchange(s);
  EXPECT_TRUE(s.exchange_span("jobs")->trimmed) << "kept to the last two";
}

// Redis trims a stream by whole nodes (XADD MAXLEN ~): the span says trimmed once
// messages really went, not before.
TEST(redis_store, exchange_span_says_when_messages_were_let_go) {
  test::redis_server server;
  store::redis_store s{config_for(server)};
  std::vector<store::exchange_publication> batch;
  for (int i = 0; i < 10; ++i)
    batch.push_back({"m" + std::to_string(i), "k", "{}"});
  ASSERT_TRUE(s.exchange_publish("x", batch, 1000));
  EXPECT_FALSE(s.exchange_span("x")->trimmed);
  batch.clear();
  for (int i = 10; i < 1000; ++i)
    batch.push_back({"m" + std::to_string(i), "k", "{}"});
  ASSERT_TRUE(s.exchange_publish("x", batch, 10));
  auto span = s.exchange_span("x");
  ASSERT_TRUE(span);
  EXPECT_TRUE(span->trimmed);
  EXPECT_EQ(span->oldest, s.exchange_read("x", "", 1)->front().id);
}

namespace {

/// The relays' pending inputs, the same for every store: put, replaced, deleted,
/// loaded back whole.
void check_relays(store::store& s) {
  auto input = [](std::string text) {
    return model::envelope{{"taskcluster", "gecko-level-3", "group"}, "", model::timestamp{},
                           std::nullopt, model::relayed{"treeherder", std::move(text)}};
  };
  store::relay_inputs back;
  ASSERT_TRUE(s.load_relays(back));
  EXPECT_TRUE(back.empty());
  store::snapshot first;
  first.relays = {{"a", input(R"({"n":1})")}, {"b", input(R"({"n":2})")}};
  ASSERT_TRUE(s.write(first));
  store::snapshot second;
  second.relays = {{"a", std::nullopt}, {"c", input(R"({"n":"ü"})")}, {"gone", std::nullopt}};
  ASSERT_TRUE(s.write(second));
  ASSERT_TRUE(s.load_relays(back));
  std::sort(back.begin(), back.end(), [](auto& x, auto& y) { return x.first < y.first; });
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[0].first, "b");
  EXPECT_EQ(back[0].second, input(R"({"n":2})"));
  EXPECT_EQ(back[1].first, "c");
  EXPECT_EQ(back[1].second, input(R"({"n":"ü"})"));
}

} // namespace

TEST(redis_store, relay_inputs_are_kept_until_deleted) {
  test::redis_server server;
  store::redis_store s{config_for(server)};
  check_relays(s);
  EXPECT_EQ(server.integer("HLEN bt-test:relay-pending"), 2);
  // A stored input that does not decode is skipped, not a failed read.
  EXPECT_EQ(server.integer("HSET bt-test:relay-pending broken {"), 1);
  store::relay_inputs back;
  ASSERT_TRUE(s.load_relays(back));
  EXPECT_EQ(back.size(), 2u);
}

TEST(memory_store, relay_inputs_are_kept_until_deleted) {
  store::memory_store s;
  check_relays(s);
}

TEST(store_commit, gathers_one_part_per_type_and_flushes_each_once_in_order) {
  std::vector<std::string> log;
  struct first {
    explicit first(std::vector<std::string>& l) : log{l} {}
    void flush() { log.push_back("first " + std::to_string(n)); }
    std::vector<std::string>& log;
    int n = 0;
  };
  struct second {
    explicit second(std::vector<std::string>& l) : log{l} {}
    void flush() { log.push_back("second"); }
    std::vector<std::string>& log;
  };
  {
    store::commit c;
    EXPECT_EQ(c.find<first>(), nullptr);
    ++c.gather<first>(log).n;
    c.gather<second>(log);
    ++c.gather<first>(log).n; // the same part again
    ASSERT_NE(c.find<first>(), nullptr);
    EXPECT_EQ(c.find<first>()->n, 2);
    c.finish();
    EXPECT_EQ(log, (std::vector<std::string>{"first 2", "second"}));
    EXPECT_EQ(c.find<first>(), nullptr); // finished parts are gone
    c.gather<second>(log);
  } // what was gathered after finish is flushed when the commit ends
  EXPECT_EQ(log, (std::vector<std::string>{"first 2", "second", "second"}));
}
