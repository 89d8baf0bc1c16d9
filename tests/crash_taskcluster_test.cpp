// buildtrackd killed with SIGKILL during a Taskcluster storm and restarted: every
// queue message that got its 202 is published on the Treeherder exchange, each job
// message exactly once (by id), whatever step its publication was at.
#include <atomic>
#include <algorithm>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "sources/treeherder.hpp"
#include "tests/daemon_process.hpp"
#include "tests/eventually.hpp"
#include "tests/http_client.hpp"
#include "tests/lane_storm.hpp"
#include "tests/redis_server.hpp"
#include "tests/taskcluster_fakes.hpp"
#include "tests/ws_client.hpp"

using namespace bt;
using namespace std::chrono_literals;
using bt::test::eventually;
using nlohmann::json;
namespace http = boost::beast::http;
namespace tc = bt::test::taskcluster;

namespace {

const std::string token = "tc-crash";

std::string daemon_config(unsigned short redis_port, unsigned short port, const std::string& queue) {
  std::ostringstream cfg;
  cfg << "server:\n  listen: 127.0.0.1:" << port
      << "\nstore:\n  kind: redis\n  redis:\n    url: redis://127.0.0.1:" << redis_port
      << "/0\n  snapshot_interval: 30ms\n  snapshot_max_builds: 40\n  snapshot_delay: 0ms\nsources:\n  taskcluster:\n    token: "
      << token << "\n    root_url: " << queue
      << "\ntracking:\n  actor_idle_timeout: 40ms\nlog:\n  level: error\n";
  return cfg.str();
}

/// Each lane's tasks' messages, each sent until it got a 202.
struct taskcluster_storm : test::lane_storm<std::string> {
  void run(unsigned short port) {
    send(
      port,
      [](test::http_client& c, const std::string& body) {
        return c.send(http::verb::post, "/webhooks/taskcluster", body,
                      {{"Authorization", "Bearer " + token}, {"Content-Type", "application/json"}})
          .status;
      },
      [](const std::string&, unsigned status) { return status == 202; });
  }
};

} // namespace

TEST(crash, kill_9_during_a_taskcluster_storm_publishes_every_acknowledged_event_once) {
  test::redis_server redis{true};
  tc::fake_queue queue;
  queue.anything = tc::task_definition();
  auto port = test::redis_server::free_port();
  test::daemon_process daemon{port, daemon_config(redis.port(), port, queue.root_url())};
  daemon.start();
  // Every message of the storm, and the job message ids the mapping makes of them.
  taskcluster_storm s;
  std::set<std::string> want;
  std::mt19937 rng{13};
  long task = 0;
  for (int l = 0; l < 6; ++l) {
    std::vector<json> lane;
    for (int t = 0; t < 40; ++t, ++task) {
      auto life = tc::task_life(tc::slug(task), tc::slug(1000 + l), static_cast<int>(rng() % 5));
      lane.insert(lane.end(), life.begin(), life.end());
    }
    std::vector<std::string> bodies;
    for (auto& m : lane) {
      auto event = *sources::treeherder::event_of_exchange(m["exchange"].get<std::string>());
      sources::treeherder::settings mapping{"tc-treeherder", queue.root_url()};
      for (auto& job : sources::treeherder::map_task_event(event, m["payload"], *queue.anything, {}, mapping).jobs)
        want.insert(job.id);
      bodies.push_back(m.dump());
    }
    s.lanes.push_back(std::move(bodies));
  }
  std::thread sender([&] { s.run(daemon.port()); });
  // Killed at random points of the storm, found by count: the storm's pace does not
  // decide whether the kills land inside it.
  auto total = s.total();
  std::uniform_real_distribution<double> fraction{0.05, 0.95};
  std::vector<std::size_t> points;
  for (int i = 0; i < 5; ++i)
    points.push_back(static_cast<std::size_t>(fraction(rng) * static_cast<double>(total)));
  std::sort(points.begin(), points.end());
  int kills = 0;
  for (auto point : points) {
    if (!eventually([&] { return s.acknowledged >= point; }, 120s))
      break;
    daemon.kill9();
    ++kills;
    daemon.start();
  }
  sender.join();
  std::printf("%d kills during %zu acknowledged messages, %zu job messages expected\n", kills,
              s.acknowledged.load(), want.size());
  EXPECT_EQ(kills, 5);
  EXPECT_EQ(s.unexpected, 0);
  // Once more after the last message: what was not published yet comes back.
  daemon.kill9();
  daemon.start();
  auto backlog = "buildtrack:exchange:" + tc::exchange;
  EXPECT_TRUE(eventually([&] { return redis.integer("XLEN " + backlog) >= static_cast<long long>(want.size()); },
                         60s))
    << redis.integer("XLEN " + backlog) << " of " << want.size() << " published";
  // Each job message once, read back as a subscriber reads them.
  test::ws_client sub{daemon.port(), tc::subscribe_path + "?bind=%23&since=0"};
  ASSERT_TRUE(sub.open()) << sub.status << " " << sub.body;
  std::map<std::string, int> got;
  for (std::size_t i = 0; i < want.size(); ++i) {
    auto frame = sub.read(10s);
    if (!frame)
      break;
    ++got[tc::job_id(json::parse(*frame)["payload"])];
  }
  std::size_t missing = 0, twice = 0;
  for (auto& id : want)
    if (got[id] == 0 && ++missing <= 3)
      ADD_FAILURE() << "never published: " << id;
  for (auto& [id, n] : got) {
    if (n > 1 && ++twice <= 3)
      ADD_FAILURE() << id << " published " << n << " times";
    EXPECT_TRUE(want.contains(id)) << "not a message of the storm: " << id;
  }
  EXPECT_EQ(missing, 0u);
  EXPECT_EQ(twice, 0u);
  EXPECT_EQ(redis.integer("XLEN " + backlog), static_cast<long long>(want.size()));
  // Nothing is left pending, in memory or stored.
  EXPECT_TRUE(eventually([&] { return redis.integer("HLEN buildtrack:relay-pending") == 0; }))
    << redis.integer("HLEN buildtrack:relay-pending") << " inputs still stored as pending";
}
