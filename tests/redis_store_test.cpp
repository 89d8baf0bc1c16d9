#include <atomic>
#include <future>
#include <thread>

#include <gtest/gtest.h>

#include "store/redis_store.hpp"
#include "tests/redis_server.hpp"

using namespace bt;
using namespace std::chrono_literals;

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

/// Appends and waits for the outcome.
bool append_sync(store::redis_store& s, std::vector<model::envelope> events) {
  std::promise<bool> outcome;
  s.append(events, [&](bool durable) { outcome.set_value(durable); });
  return outcome.get_future().get();
}

template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = 10s) {
  for (auto until = std::chrono::steady_clock::now() + limit;
       std::chrono::steady_clock::now() < until; std::this_thread::sleep_for(10ms))
    if (pred())
      return true;
  return pred();
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
                 [&](bool durable) { (durable ? confirmed : refused).fetch_add(1); });
    });
  for (auto& th : senders)
    th.join();
  ASSERT_TRUE(eventually([&] { return confirmed + refused == threads * per_thread; }));
  EXPECT_EQ(refused.load(), 0);
  auto journal = s.read_journal("0", 100000);
  ASSERT_EQ(journal.size(), static_cast<size_t>(threads * per_thread));
  std::map<std::string, int> next;
  for (auto& entry : journal) {
    auto& j = std::get<model::job_event>(entry.event.body);
    EXPECT_EQ(j.report.id, entry.event.key.id + "-" + std::to_string(next[entry.event.key.id]++));
  }
  // Reading on from an id returns only what follows it.
  auto tail = s.read_journal(journal[1995].id, 100);
  ASSERT_EQ(tail.size(), 4u);
  EXPECT_EQ(tail[0].id, journal[1996].id);
}

TEST(redis_store, a_multi_event_append_is_journaled_whole_and_round_trips) {
  test::redis_server server;
  store::redis_store s{config_for(server)};
  std::vector<model::envelope> events{event("x", 1), event("x", 2), event("x", 3)};
  ASSERT_TRUE(append_sync(s, events));
  auto journal = s.read_journal("0", 10);
  ASSERT_EQ(journal.size(), 3u);
  for (size_t i = 0; i < 3; ++i)
    EXPECT_EQ(journal[i].event, events[i]);
}

TEST(redis_store, snapshots_save_load_and_scan) {
  test::redis_server server;
  store::redis_store s{config_for(server)};
  constexpr int builds = 2500; // several SCAN pages
  for (int i = 0; i < builds; ++i) {
    model::build b;
    b.key = {"buildkite", "web", std::to_string(i)};
    model::apply(b, event(std::to_string(i), i), model::timestamp{});
    s.save(b);
  }
  auto one = s.load({"buildkite", "web", "1234"});
  ASSERT_TRUE(one);
  EXPECT_EQ(one->jobs.size(), 1u);
  EXPECT_FALSE(s.load({"buildkite", "web", "nope"}));
  std::set<std::string> seen;
  s.for_each([&](const model::build& b) { seen.insert(b.key.id); });
  EXPECT_EQ(seen.size(), static_cast<size_t>(builds));
}

TEST(redis_store, key_prefixes_keep_stores_apart) {
  test::redis_server server;
  store::redis_store a{config_for(server, "a:")};
  store::redis_store b{config_for(server, "b:")};
  ASSERT_TRUE(append_sync(a, {event("1", 1)}));
  model::build snapshot;
  snapshot.key = {"buildkite", "web", "1"};
  a.save(snapshot);
  EXPECT_EQ(b.read_journal("0", 10).size(), 0u);
  EXPECT_FALSE(b.load(snapshot.key));
  EXPECT_TRUE(a.load(snapshot.key));
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
  auto journal = s.read_journal("0", 10);
  ASSERT_EQ(journal.size(), 1u); // this test server keeps no data across the restart
  EXPECT_EQ(journal[0].event, event("o", 4));
}
