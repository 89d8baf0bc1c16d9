// A restart over builds that earlier releases stored, over real loopback HTTP, the whole
// service on a real redis-server: listed as they were, and given their recovery records
// at the first start, which later starts read instead of the builds.
#include <map>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "model/codec.hpp"
#include "model/json.hpp"
#include "store/redis_client.hpp"
#include "tests/api_fixture.hpp"
#include "tests/fixtures.hpp"
#include "tests/redis_server.hpp"

using namespace bt;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

struct recovery_api : test::api_fixture {
  test::redis_server redis;
  store::redis_client raw{*store::parse_redis_url(redis.url()), 1000ms};

  recovery_api()
    : api_fixture{[] {
        config::config c;
        c.buildkite.token = "bk";
        // Nothing is written back while the test looks: what it reads is what the
        // first start made.
        c.store.snapshot_delay = std::chrono::hours{1};
        c.store.retention = std::chrono::hours{24 * 365 * 10}; // the builds are from 2023
        return c;
      }()} {}

  void SetUp() override {
    store = redis_store_on(redis);
    ASSERT_FALSE(raw.connect());
  }

  void TearDown() override {
    if (server) // not when the test stopped before it started the service
      api_fixture::TearDown();
    server.reset();
  }

  /// The listing by build key, without update times: the stored verdicts are for an
  /// older revision (format 1 kept none), so each start has the streaks judge the
  /// builds again, which updates them.
  std::map<std::string, json> listed() {
    auto r = client().get("/api/v1/builds?limit=1000");
    EXPECT_EQ(r.status, 200u) << r.body;
    std::map<std::string, json> out;
    for (auto& item : json::parse(r.body)) {
      item.erase("updated_at");
      out[item["key"].get<std::string>()] = item;
    }
    return out;
  }

  std::string reply(const store::redis_command& cmd) {
    auto result = raw.pipeline({cmd});
    auto* replies = std::get_if<std::vector<store::redis_reply>>(&result);
    if (!replies)
      return "(unreachable)";
    auto& r = replies->at(0);
    return r.kind == store::redis_reply::integer ? std::to_string(r.number) : r.text;
  }
};

} // namespace

TEST_F(recovery_api, builds_of_every_earlier_format_are_listed_and_get_their_records_once) {
  // As the releases before recovery records left Redis: builds, and no records. The
  // same build in each format, each under an id of its own.
  std::map<std::string, model::build> stored;
  for (std::string v : {"v1", "v2", "v3", "v4", "v5"}) {
    auto doc = json::parse(test::fixture("stored/" + v + "/build.json"));
    doc["key"][2] = "42-" + v;
    // Only the last rolls up into a parent: the others are recovered from their records
    // alone, their verdicts asked for again from them.
    if (v != "v5")
      doc["info"]["parent"] = nullptr;
    auto b = model::codec::decode_build(doc.dump());
    ASSERT_TRUE(b) << v;
    auto key = b->key.str();
    ASSERT_EQ(reply({"SET", "buildtrack:build:" + key, doc.dump()}), "OK");
    stored.emplace(key, std::move(*b));
  }
  ASSERT_EQ(reply({"EXISTS", "buildtrack:build-records"}), "0");
  auto expect_listed_as_stored = [&] {
    auto list = listed();
    for (auto& [key, b] : stored) {
      ASSERT_TRUE(list.contains(key)) << key;
      auto want = json::parse(model::summary_text(model::summarize(b)));
      want.erase("updated_at");
      EXPECT_EQ(list[key], want) << key;
    }
  };
  start();
  expect_listed_as_stored();
  // The first start made every record and said so...
  EXPECT_EQ(reply({"HLEN", "buildtrack:build-records"}), std::to_string(stored.size()));
  EXPECT_EQ(reply({"GET", "buildtrack:build-records-complete"}), "1");
  for (auto& [key, b] : stored)
    EXPECT_EQ(model::codec::decode_record(reply({"HGET", "buildtrack:build-records", key}), b.key),
              model::record_of(b))
      << key;
  // ...and the next start lists the same from them.
  TearDown();
  start();
  expect_listed_as_stored();
}
