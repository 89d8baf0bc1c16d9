#include "actors/notify_dispatcher.hpp"

#include <nlohmann/json.hpp>

#include "store/memory_store.hpp"
#include "tests/actor_fixture.hpp"

using namespace bt;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

/// Requests the dispatcher sent, each with the callback that answers it.
struct wire {
  struct call {
    net::outbound_request request;
    std::function<void(net::inbound_response)> answer;
  };
  std::vector<call> calls;
  std::size_t answered = 0;

  actors::transport transport() {
    return [this](net::outbound_request r, std::chrono::milliseconds,
                  std::function<void(net::inbound_response)> done) {
      calls.push_back({std::move(r), std::move(done)});
    };
  }
  std::size_t open() const { return calls.size() - answered; }
  /// Answers the oldest unanswered request.
  void answer(int status, std::string body = "{}", std::optional<std::string> retry_after = {}) {
    calls.at(answered++).answer({status, "", std::move(body), std::move(retry_after)});
  }
};

config::sink_config webhook_sink() {
  config::sink_config s;
  s.name = "hook";
  s.kind = "webhook";
  s.url = "http://127.0.0.1:1/hook";
  s.on = {"failed", "passed"};
  s.branches = {"main"};
  s.concurrency = 2;
  s.retry = {3, 1s, 4s};
  return s;
}

config::sink_config slack_sink() {
  config::sink_config s;
  s.name = "slack";
  s.kind = "slack";
  s.token = "xoxb";
  s.channel = "C1";
  s.api_url = "http://127.0.0.1:1/api";
  s.on = {"failed"};
  s.branches = {"main"};
  return s;
}

model::notice notice(const std::string& id, std::uint64_t revision, bool failed = true) {
  model::build b;
  b.key = {"buildkite", "app", id};
  b.info.branch = "main";
  b.end = model::build_end::completed;
  b.state = failed ? model::build_state::failed : model::build_state::passed;
  b.revision = revision;
  return {b, failed ? model::notice_kind::failed : model::notice_kind::passed};
}

struct dispatcher_test : test::actor_fixture {
  std::shared_ptr<store::memory_store> store = std::make_shared<store::memory_store>();
  std::shared_ptr<actors::dispatcher_stats> stats = std::make_shared<actors::dispatcher_stats>();
  wire net;

  actors::notify_dispatcher_actor spawn(std::vector<config::sink_config> sinks) {
    auto d = sys->spawn(actors::notify_dispatcher, store, std::move(sinks),
                        std::vector<config::person_config>{}, net.transport(), stats);
    run();
    return d;
  }
  ~dispatcher_test() { run(); }
};

} // namespace

TEST_F(dispatcher_test, keeps_at_most_concurrency_deliveries_in_flight_per_sink) {
  auto d = spawn({webhook_sink()});
  for (int i = 1; i <= 5; ++i)
    caf::anon_send(d, notice(std::to_string(i), 1));
  run();
  EXPECT_EQ(net.calls.size(), 2u);
  EXPECT_EQ(stats->outbox.load(), 5u);
  net.answer(200);
  run();
  EXPECT_EQ(net.calls.size(), 3u);
  while (net.open() > 0) {
    net.answer(204);
    run();
  }
  EXPECT_EQ(net.calls.size(), 5u);
  EXPECT_EQ(stats->outbox.load(), 0u);
  std::vector<std::pair<std::string, std::string>> left;
  ASSERT_TRUE(store->outbox_load(left));
  EXPECT_TRUE(left.empty());
}

TEST_F(dispatcher_test, records_before_the_first_attempt_and_once_per_revision) {
  auto d = spawn({webhook_sink()});
  caf::anon_send(d, notice("1", 2));
  run();
  std::vector<std::pair<std::string, std::string>> recorded;
  ASSERT_TRUE(store->outbox_load(recorded));
  ASSERT_EQ(recorded.size(), 1u); // in the outbox while the attempt is out
  EXPECT_EQ(recorded[0].first, "hook|buildkite/app/1");
  caf::anon_send(d, notice("1", 2)); // a replay
  caf::anon_send(d, notice("1", 1)); // an older outcome
  run();
  EXPECT_EQ(net.calls.size(), 1u);
  // A newer outcome while the older is in flight goes out after it.
  caf::anon_send(d, notice("1", 3, false));
  run();
  EXPECT_EQ(net.calls.size(), 1u);
  net.answer(200);
  run();
  ASSERT_EQ(net.calls.size(), 2u);
  EXPECT_EQ(json::parse(net.calls[1].request.body)["revision"], 3);
  net.answer(200);
  run();
  ASSERT_TRUE(store->outbox_load(recorded));
  EXPECT_TRUE(recorded.empty());
}

TEST_F(dispatcher_test, backs_off_then_dead_letters_after_max_attempts) {
  auto d = spawn({webhook_sink()});
  caf::anon_send(d, notice("1", 1));
  run();
  net.answer(500);
  run();
  advance(499ms); // the first wait is 500 ms to 1 s
  EXPECT_EQ(net.calls.size(), 1u);
  advance(501ms);
  ASSERT_EQ(net.calls.size(), 2u);
  net.answer(503);
  run();
  advance(999ms); // the second is 1 s to 2 s
  EXPECT_EQ(net.calls.size(), 2u);
  advance(1001ms);
  ASSERT_EQ(net.calls.size(), 3u);
  net.answer(502);
  run();
  advance(1h);
  EXPECT_EQ(net.calls.size(), 3u) << "three attempts, then no more";
  auto dead = store->dead_letters();
  ASSERT_EQ(dead.size(), 1u);
  auto letter = json::parse(dead[0]);
  EXPECT_EQ(letter["id"], "hook|buildkite/app/1");
  EXPECT_EQ(letter["attempts"], 3);
  EXPECT_EQ(letter["reason"], "HTTP 502");
  EXPECT_EQ(stats->outbox.load(), 0u);
}

TEST_F(dispatcher_test, a_client_error_is_dead_lettered_at_once) {
  auto d = spawn({webhook_sink()});
  caf::anon_send(d, notice("1", 1));
  run();
  net.answer(404);
  run();
  advance(1h);
  EXPECT_EQ(net.calls.size(), 1u);
  EXPECT_EQ(store->dead_letters().size(), 1u);
}

TEST_F(dispatcher_test, waits_as_long_as_retry_after_says) {
  auto d = spawn({webhook_sink()});
  caf::anon_send(d, notice("1", 1));
  run();
  net.answer(429, "{}", "5");
  run();
  advance(4999ms);
  EXPECT_EQ(net.calls.size(), 1u);
  advance(1ms);
  EXPECT_EQ(net.calls.size(), 2u);
}

TEST_F(dispatcher_test, slack_posts_then_edits_its_message_whatever_the_new_outcome) {
  auto d = spawn({slack_sink()});
  caf::anon_send(d, notice("1", 1, false)); // passed: not wanted, no message yet
  run();
  EXPECT_TRUE(net.calls.empty());
  caf::anon_send(d, notice("2", 1));
  run();
  ASSERT_EQ(net.calls.size(), 1u);
  EXPECT_EQ(net.calls[0].request.url, "http://127.0.0.1:1/api/chat.postMessage");
  net.answer(200, R"({"ok":true,"channel":"C1","ts":"17.5"})");
  run();
  caf::anon_send(d, notice("2", 2, false)); // passed now: the message must say so
  run();
  ASSERT_EQ(net.calls.size(), 2u);
  EXPECT_EQ(net.calls[1].request.url, "http://127.0.0.1:1/api/chat.update");
  EXPECT_EQ(json::parse(net.calls[1].request.body)["ts"], "17.5");
}

TEST_F(dispatcher_test, a_new_dispatcher_sends_what_the_last_one_left_in_the_outbox) {
  {
    auto d = spawn({webhook_sink()});
    caf::anon_send(d, notice("1", 1));
    caf::anon_send(d, notice("2", 1));
    run();
    net.answer(200);
    run();
    caf::anon_send_exit(d, caf::exit_reason::kill);
    run();
  }
  net = wire{};
  auto d = spawn({webhook_sink()});
  ASSERT_EQ(net.calls.size(), 1u);
  EXPECT_EQ(json::parse(net.calls[0].request.body)["build"]["id"], "2");
  // Recorded before: a late replay of the same notice is not sent again.
  caf::anon_send(d, notice("1", 1));
  run();
  EXPECT_EQ(net.calls.size(), 1u);
}

TEST_F(dispatcher_test, an_outcome_that_changes_while_slack_posts_edits_the_new_message) {
  auto d = spawn({slack_sink()});
  caf::anon_send(d, notice("1", 1));
  run();
  ASSERT_EQ(net.calls.size(), 1u);
  caf::anon_send(d, notice("1", 2)); // a late failing job while the post is out
  run();
  EXPECT_EQ(net.calls.size(), 1u);
  net.answer(200, R"({"ok":true,"channel":"C1","ts":"42.1"})");
  run();
  ASSERT_EQ(net.calls.size(), 2u);
  EXPECT_EQ(net.calls[1].request.url, "http://127.0.0.1:1/api/chat.update")
    << "the ts of the post just answered must be used, not a second post";
  EXPECT_EQ(json::parse(net.calls[1].request.body)["ts"], "42.1");
}
