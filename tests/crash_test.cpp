// Real processes: buildtrackd with the Redis store, killed with SIGKILL mid-storm and
// restarted, and a Redis outage mid-storm. Every build must end exactly as the model
// computes it from the deliveries that got a 202, and so must the streaks.
#include <atomic>
#include <csignal>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "storm/payloads.hpp"
#include "model/json.hpp"
#include "model/streak.hpp"
#include "sources/buildkite.hpp"
#include "tests/eventually.hpp"
#include "tests/daemon_process.hpp"
#include "tests/http_client.hpp"
#include "tests/lane_storm.hpp"
#include "tests/redis_server.hpp"

using namespace bt;
using namespace std::chrono_literals;
using bt::test::eventually;
using nlohmann::json;
namespace http = boost::beast::http;

namespace {

/// One Buildkite delivery.
struct delivery {
  std::string event;
  std::string body;
};

/// A pipeline's builds, one after another; each build's deliveries are shuffled
/// after build.running, so jobs may finish after the build did.
std::vector<delivery> lane(const std::string& pipeline, int builds, std::mt19937& rng) {
  std::uniform_real_distribution<double> chance{0, 1};
  std::vector<delivery> out;
  for (int b = 1; b <= builds; ++b) {
    std::vector<delivery> rest;
    bool build_failed = false;
    for (int step = 0; step < 3; ++step) {
      bool retried = chance(rng) < 0.2;
      bool last_fails = chance(rng) < 0.2;
      for (int attempt = 0; attempt <= (retried ? 1 : 0); ++attempt) {
        bool fails = attempt == 0 && retried ? true : last_fails;
        for (bool done : {false, true}) {
          auto doc = payloads::job_delivery(pipeline, b, step, attempt, done, fails);
          rest.push_back({doc["event"], doc.dump()});
        }
      }
      build_failed = build_failed || last_fails;
    }
    rest.push_back({"build.finished",
                    payloads::build_delivery("build.finished", pipeline, b,
                                             build_failed ? "failed" : "passed")
                      .dump()});
    std::shuffle(rest.begin(), rest.end(), rng);
    out.push_back({"build.running",
                   payloads::build_delivery("build.running", pipeline, b, "running").dump()});
    out.insert(out.end(), rest.begin(), rest.end());
  }
  return out;
}

/// buildtrackd on the Redis store with short snapshot and idle intervals, and no
/// snapshot delay: the kills land before, during and after builds are written.
std::string daemon_config(unsigned short redis_port, unsigned short port) {
  std::ostringstream cfg;
  cfg << "server:\n  listen: 127.0.0.1:" << port
      << "\nstore:\n  kind: redis\n  redis:\n    url: redis://127.0.0.1:" << redis_port
      << "/0\n  snapshot_interval: 30ms\n  snapshot_max_builds: 40\n  snapshot_delay: 0ms\nsources:\n  buildkite:\n    token: "
      << payloads::token
      // Short idle timeout: actors stop and park their state between events.
      << "\ntracking:\n  actor_idle_timeout: 40ms\nlog:\n  level: error\n";
  return cfg.str();
}

/// The deliveries, each sent until it got a 202.
struct storm : test::lane_storm<delivery> {
  void run(unsigned short port) {
    send(
      port,
      [](test::http_client& c, const delivery& d) {
        return c.send(http::verb::post, "/webhooks/buildkite", d.body,
                      {{"X-Buildkite-Event", d.event}, {"X-Buildkite-Token", payloads::token}})
          .status;
      },
      [](const delivery&, unsigned status) { return status == 202; });
  }
};

/// What the model says: every accepted delivery applied in order, verdicts as the
/// service gives them.
struct expectation {
  std::map<std::string, model::build> builds;
  model::streak_book streaks;

  explicit expectation(const storm& s) {
    model::timestamp now{};
    for (auto& lane : s.taken)
      for (auto* d : lane) {
        auto parsed = sources::buildkite_parse(d->event, d->body, now);
        auto& envelopes = std::get<sources::buildkite_delivery>(parsed).envelopes;
        for (auto& e : envelopes) {
          auto& b = builds[e.key.str()];
          for (auto& effect : model::apply(b, e, now).effects) {
            auto& f = std::get<model::finished_effect>(effect);
            if (f.branch != "main")
              continue;
            auto verdict = streaks.record({f.key.source, f.key.pipeline, f.branch}, f.number,
                                          f.state == model::build_state::failed);
            verdict.revision = f.revision;
            model::apply(b, {f.key, "", now, std::nullopt, verdict}, now);
          }
        }
      }
  }
};

/// A build document without the times the server stamps on arrival.
json comparable(json doc) {
  for (auto key : {"updated_at", "created_at", "started_at", "finished_at"})
    doc.erase(key);
  return doc;
}

void verify(const expectation& want, unsigned short port) {
  test::http_client c{port};
  size_t wrong = 0;
  for (auto& [key, b] : want.builds) {
    auto r = c.send(http::verb::get, "/api/v1/builds/" + key);
    ASSERT_EQ(r.status, 200u) << key;
    auto got = comparable(json::parse(r.body));
    auto expected = comparable(model::to_json(b));
    if (got != expected && ++wrong <= 3)
      ADD_FAILURE() << key << "\n got:  " << got.dump() << "\n want: " << expected.dump();
  }
  EXPECT_EQ(wrong, 0u) << "of " << want.builds.size() << " builds";
  // The listing says the same: after a restart it comes from each build's recovery
  // record, not from the build.
  auto listed = c.send(http::verb::get, "/api/v1/builds?limit=1000");
  ASSERT_EQ(listed.status, 200u);
  std::map<std::string, json> summaries;
  for (auto& item : json::parse(listed.body))
    summaries[item["key"].get<std::string>()] = comparable(item);
  EXPECT_EQ(summaries.size(), want.builds.size());
  wrong = 0;
  for (auto& [key, b] : want.builds) {
    auto expected = comparable(json::parse(model::summary_text(model::summarize(b))));
    auto got = summaries.find(key);
    if ((got == summaries.end() || got->second != expected) && ++wrong <= 3)
      ADD_FAILURE() << key << " listed as\n "
                    << (got == summaries.end() ? "nothing" : got->second.dump())
                    << "\n want: " << expected.dump();
  }
  EXPECT_EQ(wrong, 0u) << "of " << want.builds.size() << " listed builds";
  auto r = c.send(http::verb::get, "/api/v1/streaks");
  ASSERT_EQ(r.status, 200u);
  EXPECT_EQ(json::parse(r.body), model::to_json(want.streaks));
}

void fill(storm& s, unsigned seed, int pipelines, int builds) {
  std::mt19937 rng{seed};
  for (int p = 0; p < pipelines; ++p)
    s.lanes.push_back(lane("crash-" + std::to_string(p), builds, rng));
}

} // namespace

// Processes are started from the test's main thread only: a child's
// PR_SET_PDEATHSIG fires when the *thread* that forked it ends.

TEST(crash, kill_9_at_random_points_loses_nothing_acknowledged) {
  test::redis_server redis{true};
  auto port = test::redis_server::free_port();
  test::daemon_process daemon{port, daemon_config(redis.port(), port)};
  daemon.start();
  storm s;
  // Under the sanitizers every request costs several times more: half the builds keep
  // the test well inside its time limit, with the same kills and the same checks.
#ifdef BT_UBSAN
  fill(s, 7, 8, 45);
#else
  fill(s, 7, 8, 90);
#endif
  std::thread sender([&] { s.run(daemon.port()); });
  std::mt19937 rng{11};
  std::uniform_int_distribution<int> pause_ms{30, 250};
  int kills = 0;
  auto lanes = static_cast<int>(s.lanes.size());
  while (s.lanes_done < lanes) {
    std::this_thread::sleep_for(std::chrono::milliseconds{pause_ms(rng)});
    if (s.lanes_done == lanes)
      break;
    daemon.kill9();
    ++kills;
    daemon.start();
  }
  sender.join();
  std::printf("%d kills during %zu accepted deliveries\n", kills, s.taken_count());
  EXPECT_GE(kills, 3) << "the storm ended before the daemon was killed a few times";
  EXPECT_EQ(s.unexpected, 0);
  // Once more after the last delivery: the final state must come back from Redis.
  daemon.kill9();
  daemon.start();
  verify(expectation{s}, daemon.port());
  // With every build written, the journal is trimmed to (about) nothing.
  EXPECT_TRUE(eventually([&] { return redis.integer("XLEN buildtrack:journal") <= 1; }))
    << redis.integer("XLEN buildtrack:journal") << " journal entries left";
}

TEST(crash, redis_outage_answers_503_and_ingest_resumes_by_itself) {
  test::redis_server redis{true};
  auto port = test::redis_server::free_port();
  test::daemon_process daemon{port, daemon_config(redis.port(), port)};
  daemon.start();
  storm s;
  fill(s, 8, 6, 30);
  auto total = s.total();
  std::thread sender([&] { s.run(daemon.port()); });
  // Mid-storm by count, not by a sleep: a fast machine finished the whole storm in
  // the 100 ms this once waited.
  EXPECT_TRUE(eventually([&] { return s.acknowledged >= total / 4; }, 30s));
  redis.stop();
  bool saw_not_ready = false;
  for (int i = 0; i < 40; ++i) {
    try {
      test::http_client c{daemon.port()};
      saw_not_ready = saw_not_ready || c.send(http::verb::get, "/readyz").status == 503;
    } catch (const std::exception&) {
    }
    std::this_thread::sleep_for(20ms);
  }
  redis.start();
  sender.join();
  EXPECT_TRUE(daemon.running()) << "buildtrackd must ride out the outage";
  std::printf("%d answers 503 during the outage, %zu deliveries accepted\n",
              s.unavailable.load(), s.taken_count());
  EXPECT_GT(s.unavailable, 0) << "the storm did not overlap the outage";
  EXPECT_TRUE(saw_not_ready);
  EXPECT_EQ(s.unexpected, 0);
  verify(expectation{s}, daemon.port());
  // And what was acknowledged is in Redis, not only in memory.
  daemon.kill9();
  daemon.start();
  verify(expectation{s}, daemon.port());
}
