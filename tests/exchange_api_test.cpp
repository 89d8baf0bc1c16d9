// The topic exchange's WebSocket subscribers (SPEC §8) end to end: the whole service
// on a real redis-server behind the real Beast server, Beast WebSocket clients.
// Messages are published through the service, as the exchange's publishers do.
#include <chrono>
#include <future>
#include <map>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "store/redis_store.hpp"
#include "tests/api_fixture.hpp"
#include "tests/redis_server.hpp"
#include "tests/ws_client.hpp"

using namespace bt;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

const std::string jobs = "exchange/taskcluster-treeherder/v1/jobs";
const std::string jobs_path = "/api/v1/exchanges/exchange%2Ftaskcluster-treeherder%2Fv1%2Fjobs/subscribe";

struct exchange_api : test::api_fixture {
  test::redis_server redis;
  explicit exchange_api(int backlog = 100'000)
    : api_fixture{[backlog] {
        config::config c;
        c.exchanges.subscriber_queue = 64;
        c.exchanges.backlog = backlog;
        return c;
      }()} {}
  void SetUp() override {
    store = redis_store_on(redis);
    api_fixture::SetUp();
  }

  /// Publishes messages `from`..`to` (`{"n":i}`, dedup id `m<i>`) with routing key
  /// `key(i)`; returns their positions once the exchange took them.
  std::vector<std::string> publish(int from, int to, const std::function<std::string(int)>& key,
                                   std::size_t padding = 0) {
    std::vector<store::exchange_publication> batch;
    for (int i = from; i <= to; ++i)
      batch.push_back({"m" + std::to_string(i), key(i),
                       json{{"n", i}, {"pad", std::string(padding, 'x')}}.dump()});
    std::promise<std::optional<std::vector<store::published>>> done;
    service->publish(jobs, std::move(batch), [&](auto fates) { done.set_value(std::move(fates)); });
    auto f = done.get_future();
    EXPECT_EQ(f.wait_for(20s), std::future_status::ready) << "publishing waited";
    auto fates = f.get();
    std::vector<std::string> ids;
    if (fates)
      for (auto& p : *fates)
        ids.push_back(p.id);
    return ids;
  }

  /// Reads frames until one with payload n == `last` (or a failure); returns them.
  static std::vector<json> read_until(test::ws_client& c, int last) {
    std::vector<json> out;
    while (auto frame = c.read(10s)) {
      out.push_back(json::parse(*frame));
      if (out.back().contains("payload") && out.back()["payload"]["n"] == last)
        break;
    }
    return out;
  }
  static std::vector<int> numbers(const std::vector<json>& frames) {
    std::vector<int> out;
    for (auto& f : frames)
      if (f.contains("payload"))
        out.push_back(f["payload"]["n"].get<int>());
    return out;
  }
};

} // namespace

// Each subscriber gets exactly the messages one of its bindings matches, in publish
// order, whether they came from the backlog (published before it subscribed) or live.
TEST_F(exchange_api, two_subscribers_with_different_bindings_get_exactly_their_messages) {
  publish(1, 2, [](int i) { return i == 1 ? "tc-treeherder.mozilla-central._" : "tc-treeherder.try._"; });
  test::ws_client a{port, jobs_path + "?since=0&bind=*.mozilla-central.%23&bind=end.%23"};
  test::ws_client b{port, jobs_path + "?since=0&bind=tc-treeherder.try._&bind=%23.fenix.%23&bind=end"};
  ASSERT_TRUE(a.open()) << a.status << " " << a.body;
  ASSERT_TRUE(b.open()) << b.status << " " << b.body;
  auto key = [](int i) {
    switch (i % 4) {
      case 0: return std::string{"tc-treeherder.mozilla-central._"};
      case 1: return std::string{"tc-treeherder.try._"};
      case 2: return std::string{"staging.fenix._"};
      default: return std::string{"tc-treeherder.autoland._"};
    }
  };
  publish(3, 40, key);
  publish(41, 41, [](int) { return "end"; });
  auto got_a = read_until(a, 41), got_b = read_until(b, 41);
  std::vector<int> want_a{1}, want_b{2};
  for (int i = 3; i <= 40; ++i)
    (i % 4 == 0 ? want_a : i % 4 == 1 || i % 4 == 2 ? want_b : want_a).push_back(i);
  want_a.erase(std::remove_if(want_a.begin() + 1, want_a.end(), [](int i) { return i % 4 == 3; }),
               want_a.end());
  want_a.push_back(41);
  want_b.push_back(41);
  EXPECT_EQ(numbers(got_a), want_a);
  EXPECT_EQ(numbers(got_b), want_b);
  auto& first = got_a.front();
  EXPECT_EQ(first["exchange"], jobs);
  EXPECT_EQ(first["routingKey"], "tc-treeherder.mozilla-central._");
  EXPECT_TRUE(first["id"].is_string());
}

// A subscriber that goes away and comes back with `since` gets every message once:
// what it missed from the backlog, then what is published, with no seam.
TEST_F(exchange_api, a_subscriber_that_resumes_with_since_gets_every_message_once) {
  auto any = [](int) { return std::string{"tc-treeherder.try._"}; };
  test::ws_client first{port, jobs_path + "?bind=%23&since=0"};
  ASSERT_TRUE(first.open());
  auto ids = publish(1, 5, any);
  auto seen = read_until(first, 3);
  ASSERT_EQ(numbers(seen), (std::vector<int>{1, 2, 3}));
  first.drop();
  publish(6, 10, any);
  test::ws_client again{port, jobs_path + "?bind=%23&since=" + seen.back()["id"].get<std::string>()};
  ASSERT_TRUE(again.open());
  publish(11, 12, any); // while it replays, or after: either way once
  EXPECT_EQ(numbers(read_until(again, 12)), (std::vector<int>{4, 5, 6, 7, 8, 9, 10, 11, 12}));
  EXPECT_EQ(ids.size(), 5u);
  // A message published again (a retried delivery) is not sent again.
  publish(12, 13, any);
  EXPECT_EQ(numbers(read_until(again, 13)), (std::vector<int>{13}));
}

// A subscriber that never reads gets, once it reads, what its queue and the socket
// held, and for every run of messages its queue could not take one notice of how
// many and where to resume; meanwhile a fast one got everything, and publishing never
// waited for either.
TEST_F(exchange_api, a_subscriber_that_never_reads_is_told_what_it_missed) {
  auto any = [](int) { return std::string{"tc-treeherder.try._"}; };
  test::ws_client slow{port, jobs_path + "?bind=%23&since=0"};
  test::ws_client fast{port, jobs_path + "?bind=%23&since=0"};
  ASSERT_TRUE(slow.open() && fast.open());
  // 3,000 frames of 4 KiB, far more than the kernel's socket buffers take, in batches
  // of 32 (half the queue), each once the fast subscriber read the one before.
  constexpr int total = 3000, batch = 32;
  std::vector<int> fast_numbers;
  for (int from = 1; from <= total; from += batch) {
    int to = std::min(from + batch - 1, total);
    publish(from, to, any, 4096);
    auto got = numbers(read_until(fast, to));
    fast_numbers.insert(fast_numbers.end(), got.begin(), got.end());
    ASSERT_TRUE(fast.open());
  }
  std::vector<int> all;
  for (int i = 1; i <= total; ++i)
    all.push_back(i);
  EXPECT_EQ(fast_numbers, all);
  // Now the slow one reads: runs of messages in order, a notice after each gap.
  std::vector<int> slow_numbers;
  std::vector<json> notices;
  std::string last_id, first_resume;
  int first_resume_n = 0;
  std::size_t missed = 0;
  while (slow_numbers.size() + missed < static_cast<std::size_t>(total)) {
    auto frame = slow.read(10s);
    ASSERT_TRUE(frame) << "stopped after " << slow_numbers.size() << " messages, " << missed
                       << " missed";
    auto f = json::parse(*frame);
    if (f.contains("missed")) {
      EXPECT_EQ(f["resume"], last_id) << "a notice resumes after the message before its gap";
      if (notices.empty()) {
        first_resume = last_id;
        first_resume_n = slow_numbers.empty() ? 0 : slow_numbers.back();
      }
      missed += f["missed"].get<std::size_t>();
      notices.push_back(f);
      continue;
    }
    auto n = f["payload"]["n"].get<int>();
    EXPECT_TRUE(slow_numbers.empty() || n > slow_numbers.back());
    slow_numbers.push_back(n);
    last_id = f["id"].get<std::string>();
  }
  ASSERT_FALSE(notices.empty()) << "the slow subscriber never missed anything";
  EXPECT_EQ(slow_numbers.size() + missed, static_cast<std::size_t>(total));
  EXPECT_EQ(slow_numbers.front(), 1);
  // Resuming after the first notice's position starts right after it, with no gap
  // until its own queue is full.
  test::ws_client resumed{port, jobs_path + "?bind=%23&since=" + first_resume};
  std::vector<int> rest;
  while (auto frame = resumed.read(10s)) {
    auto f = json::parse(*frame);
    if (f.contains("missed") || f["payload"]["n"] == total)
      break;
    rest.push_back(f["payload"]["n"].get<int>());
  }
  ASSERT_FALSE(rest.empty());
  for (std::size_t i = 0; i < rest.size(); ++i)
    ASSERT_EQ(rest[i], first_resume_n + 1 + static_cast<int>(i));
  auto& m = support::metrics();
  EXPECT_NE(m.render().find("buildtrack_exchange_missed_total"), std::string::npos);
}

// The backlog lives in Redis: a new process serves it.
TEST_F(exchange_api, a_restart_keeps_the_backlog) {
  publish(1, 3, [](int) { return std::string{"tc-treeherder.try._"}; });
  TearDown();
  start();
  test::ws_client c{port, jobs_path + "?bind=%23&since=0"};
  ASSERT_TRUE(c.open());
  EXPECT_EQ(numbers(read_until(c, 3)), (std::vector<int>{1, 2, 3}));
}

namespace {

/// A backlog of 100 messages.
struct exchange_api_short_backlog : exchange_api {
  exchange_api_short_backlog() : exchange_api{100} {}
};

} // namespace

// A subscriber without `since` gets what is published from now on; one whose position
// is older than the backlog is told that messages after it were let go, then gets the
// backlog; one within the backlog is not told anything.
TEST_F(exchange_api_short_backlog, a_position_older_than_the_backlog_is_told_so) {
  auto any = [](int) { return std::string{"tc-treeherder.try._"}; };
  auto first = publish(1, 1, any);
  test::ws_client live{port, jobs_path + "?bind=%23"};
  ASSERT_TRUE(live.open());
  publish(2, 400, any);
  auto positions = publish(401, 401, any);
  test::ws_client old{port, jobs_path + "?bind=%23&since=" + first.at(0)};
  ASSERT_TRUE(old.open());
  auto notice = old.read(10s);
  ASSERT_TRUE(notice);
  auto n = json::parse(*notice);
  EXPECT_EQ(n["truncated"], true) << n.dump();
  EXPECT_EQ(n["since"], first.at(0));
  auto next = old.read(10s);
  ASSERT_TRUE(next);
  EXPECT_EQ(json::parse(*next)["id"], n["oldest"]) << "the backlog follows, oldest first";
  // Within the backlog: no notice, the next message first.
  auto recent = publish(402, 402, any);
  test::ws_client fresh{port, jobs_path + "?bind=%23&since=" + positions.at(0)};
  auto after = fresh.read(10s);
  ASSERT_TRUE(after);
  EXPECT_EQ(json::parse(*after)["payload"]["n"], 402);
  // The live subscriber was never sent the backlog: message 1 came before it. (Which
  // message is its first depends on when its subscription took effect, after its
  // handshake: not before message 2, and surely before 402.)
  auto live_first = live.read(10s);
  ASSERT_TRUE(live_first);
  EXPECT_GE(json::parse(*live_first)["payload"]["n"].get<int>(), 2);
}

TEST_F(exchange_api, bad_subscriptions_are_refused_before_the_upgrade) {
  auto refused = [&](const std::string& target) {
    test::ws_client c{port, target};
    EXPECT_FALSE(c.open()) << target;
    return std::make_pair(c.status, c.open() ? json{} : json::parse(c.body));
  };
  auto [status, body] = refused(jobs_path + "?bind=a%2A.b");
  EXPECT_EQ(status, 400u);
  EXPECT_EQ(body["error"]["field"], "bind");
  EXPECT_EQ(refused(jobs_path).first, 400u) << "no binding";
  EXPECT_EQ(refused(jobs_path + "?bind=%23&since=yesterday").first, 400u);
  EXPECT_EQ(refused(jobs_path + "?bind=%23&color=red").first, 400u);
  EXPECT_EQ(refused("/api/v1/exchanges/nope/subscribe?bind=%23").first, 404u);
  EXPECT_EQ(refused("/api/v1/builds?bind=%23").first, 404u);
}

namespace {

struct exchange_api_with_token : test::api_fixture {
  exchange_api_with_token()
    : api_fixture{[] {
        config::config c;
        c.server.admin_token = "admin-0123456789";
        return c;
      }()} {}
};

} // namespace

TEST_F(exchange_api_with_token, subscribing_needs_the_admin_token) {
  test::ws_client none{port, jobs_path + "?bind=%23"};
  EXPECT_FALSE(none.open());
  EXPECT_EQ(none.status, 401u);
  test::ws_client wrong{port, jobs_path + "?bind=%23", "Bearer nope"};
  EXPECT_EQ(wrong.status, 401u);
  test::ws_client header{port, jobs_path + "?bind=%23", "Bearer admin-0123456789"};
  EXPECT_TRUE(header.open());
  test::ws_client query{port, jobs_path + "?bind=%23&access_token=admin-0123456789"};
  EXPECT_TRUE(query.open());
}

namespace {

const std::string native_token = "native-token-0123456789";

/// An `exchange` sink on the `outcomes` exchange, fed by native events.
struct exchange_sink_api : test::api_fixture {
  test::redis_server redis;
  exchange_sink_api()
    : api_fixture{[] {
        auto c = config::parse("notifications:\n  - {name: bus, kind: exchange, exchange: outcomes}\n"
                               "tracking: {branches: [main]}\n");
        c.native.token = native_token;
        return c;
      }()} {}
  void SetUp() override {
    store = redis_store_on(redis);
    api_fixture::SetUp();
  }
  /// A message on `outcomes` routed `end`, straight through the service.
  void publish_on_outcomes() {
    std::promise<bool> done;
    service->publish("outcomes", {{"barrier", "end", "{}"}},
                     [&](auto fates) { done.set_value(fates.has_value()); });
    EXPECT_TRUE(done.get_future().get());
  }
  void event(const std::string& type, int id, json extra = json::object()) {
    json e = {{"type", type},
              {"build", {{"pipeline", "deploy.prod"}, {"id", std::to_string(id)}, {"number", id},
                         {"branch", "main"}}}};
    e.update(extra);
    auto r = client().post("/api/v1/events", e.dump(),
                           {{"Authorization", "Bearer " + native_token},
                            {"Content-Type", "application/json"}});
    ASSERT_EQ(r.status, 202) << r.body;
  }
};

} // namespace

// Build outcomes go through the outbox onto the exchange, each once, routed by
// source, pipeline and kind; a subscriber binds to what it cares about.
TEST_F(exchange_sink_api, outcomes_are_published_once_with_source_pipeline_and_kind) {
  test::ws_client bus{port, "/api/v1/exchanges/outcomes/subscribe?since=0&bind=native.%23"};
  test::ws_client other{port, "/api/v1/exchanges/outcomes/subscribe?since=0&bind=buildkite.%23&bind=end"};
  ASSERT_TRUE(bus.open()) << bus.status << bus.body;
  ASSERT_TRUE(other.open());
  auto job = [](const std::string& state) {
    return json{{"job", {{"id", "u-" + state}, {"name", "unit"}, {"state", state}}}};
  };
  event("job.finished", 1, job("failed"));
  event("build.finished", 1);
  event("build.finished", 1); // a repeat: nothing new
  event("job.finished", 2, job("passed"));
  event("build.finished", 2);
  std::map<std::string, json> by_build;
  for (int i = 0; i < 2; ++i) {
    auto frame = bus.read(10s);
    ASSERT_TRUE(frame);
    auto f = json::parse(*frame);
    auto build = f["payload"]["build"]["key"].get<std::string>();
    EXPECT_FALSE(by_build.count(build)) << "twice: " << build;
    by_build[build] = f;
  }
  ASSERT_EQ(by_build.size(), 2u);
  auto& failed = by_build["native/deploy.prod/1"];
  EXPECT_EQ(failed["exchange"], "outcomes");
  EXPECT_EQ(failed["routingKey"], "native.deploy_prod." + failed["payload"]["kind"].get<std::string>())
    << "a dot in the pipeline is not a word break";
  EXPECT_NE(failed["payload"]["kind"], "passed");
  EXPECT_EQ(failed["payload"]["delivery"], "bus:native/deploy.prod/1:1");
  auto& fixed = by_build["native/deploy.prod/2"];
  EXPECT_EQ(fixed["payload"]["kind"], "fixed");
  EXPECT_EQ(fixed["routingKey"], "native.deploy_prod.fixed");
  // The other subscriber's bindings match none of it: its first frame is the barrier.
  publish_on_outcomes();
  auto first = other.read(10s);
  ASSERT_TRUE(first);
  EXPECT_EQ(json::parse(*first)["routingKey"], "end");
}
