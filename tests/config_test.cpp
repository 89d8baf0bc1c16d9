#include <cstdlib>
#include <gtest/gtest.h>

#include "config/config.hpp"

using namespace bt::config;
using namespace std::chrono_literals;

namespace {

std::string error_of(const std::string& yaml) {
  try {
    parse(yaml);
  } catch (const config_error& e) {
    return e.what();
  }
  return "";
}

} // namespace

TEST(config, defaults_for_every_key) {
  auto c = parse("");
  EXPECT_EQ(c.server.listen, "127.0.0.1:8080");
  EXPECT_EQ(c.server.body_limit, 1024u * 1024u);
  EXPECT_EQ(c.store.kind, "memory");
  EXPECT_EQ(c.buildkite.replay_window, 5min);
  EXPECT_EQ(c.tracking.branches, (std::vector<std::string>{"main", "master"}));
}

TEST(config, the_example_file_is_valid) {
  setenv("BUILDKITE_TOKEN", "t", 1);
  auto c = load(std::string{BT_SOURCE_DIR} + "/config/example.yaml");
  EXPECT_EQ(c.buildkite.token, "t");
}

TEST(config, durations_and_sizes) {
  EXPECT_EQ(parse_duration("200ms"), 200ms);
  EXPECT_EQ(parse_duration("30s"), 30s);
  EXPECT_EQ(parse_duration("5m"), 5min);
  EXPECT_EQ(parse_duration("4h"), 4h);
  EXPECT_EQ(parse_duration("1d"), 24h);
  EXPECT_THROW(parse_duration("5 minutes"), config_error);
  EXPECT_THROW(parse_duration("-5s"), config_error);
  EXPECT_EQ(parse_size("1MiB"), 1024u * 1024u);
  EXPECT_EQ(parse_size("512KiB"), 512u * 1024u);
  EXPECT_EQ(parse_size("1MB"), 1000000u);
  EXPECT_EQ(parse_size("1000"), 1000u);
  EXPECT_THROW(parse_size("lots"), config_error);
}

TEST(config, unknown_keys_name_path_and_line) {
  auto msg = error_of("server:\n  listen: 127.0.0.1:9000\n  bodylimit: 1MiB\n");
  EXPECT_NE(msg.find("server.bodylimit"), std::string::npos) << msg;
  EXPECT_NE(msg.find("unknown key"), std::string::npos) << msg;
  EXPECT_NE(msg.find("line 3"), std::string::npos) << msg;
  EXPECT_NE(error_of("nonsense: 1\n").find("nonsense"), std::string::npos);
}

TEST(config, bad_values_name_path_and_line) {
  auto msg = error_of("sources:\n  buildkite:\n    replay_window: forever\n");
  EXPECT_NE(msg.find("sources.buildkite.replay_window"), std::string::npos) << msg;
  EXPECT_NE(msg.find("line 3"), std::string::npos) << msg;
  EXPECT_NE(error_of("server:\n  io_threads: many\n").find("server.io_threads"),
            std::string::npos);
  EXPECT_NE(error_of("server:\n  io_threads: 0\n").find("between"), std::string::npos);
  EXPECT_NE(error_of("server:\n  listen: localhost\n").find("server.listen"), std::string::npos);
  EXPECT_NE(error_of("server:\n  listen: \"127.0.0.1:http\"\n").find("host:port"),
            std::string::npos);
  EXPECT_NE(error_of("server:\n  listen: \"127.0.0.1:70000\"\n").find("server.listen"),
            std::string::npos);
  EXPECT_NE(error_of("server:\n  body_limit: 0\n").find("positive"), std::string::npos);
  EXPECT_NE(error_of("tracking:\n  branches: main\n").find("tracking.branches"),
            std::string::npos);
  EXPECT_NE(error_of("store:\n  kind: postgres\n").find("store.kind"), std::string::npos);
  EXPECT_NE(error_of("server: [\n").find("invalid YAML"), std::string::npos);
}

TEST(config, environment_substitution) {
  setenv("BT_TEST_SECRET", "from-env", 1);
  unsetenv("BT_TEST_MISSING");
  auto c = parse("sources:\n  buildkite:\n    token: ${BT_TEST_SECRET}\n"
                 "    signature_secret: ${BT_TEST_MISSING:-fallback}\n");
  EXPECT_EQ(c.buildkite.token, "from-env");
  EXPECT_EQ(c.buildkite.signature_secret, "fallback");
  auto msg = error_of("sources:\n  buildkite:\n    token: ${BT_TEST_MISSING}\n");
  EXPECT_NE(msg.find("sources.buildkite.token"), std::string::npos) << msg;
  EXPECT_NE(msg.find("BT_TEST_MISSING"), std::string::npos) << msg;
}

TEST(config, redis_store_keys_are_read_and_checked) {
  auto c = bt::config::parse(
    "store:\n  kind: redis\n  redis:\n    url: redis://:secret@10.0.0.5:6380/2\n"
    "    key_prefix: \"ci:\"\n  snapshot_interval: 50ms\n  snapshot_max_builds: 10\n  retention: 2d\n  abandoned_after: 3d\n");
  EXPECT_EQ(c.store.kind, "redis");
  EXPECT_EQ(c.store.redis.url, "redis://:secret@10.0.0.5:6380/2");
  EXPECT_EQ(c.store.redis.key_prefix, "ci:");
  EXPECT_EQ(c.store.snapshot_interval, std::chrono::milliseconds{50});
  EXPECT_EQ(c.store.snapshot_max_builds, 10);
  EXPECT_EQ(c.store.retention, std::chrono::hours{48});
  EXPECT_EQ(c.store.abandoned_after, std::chrono::hours{72});
  auto defaults = bt::config::parse("");
  EXPECT_EQ(defaults.store.snapshot_interval, std::chrono::milliseconds{200});
  EXPECT_EQ(defaults.store.retention, std::chrono::hours{24});
  EXPECT_EQ(defaults.store.abandoned_after, std::chrono::hours{48});
}

TEST(config, bad_redis_store_keys_name_the_key) {
  EXPECT_NE(error_of("store:\n  redis:\n    url: http://x\n").find("store.redis.url"),
            std::string::npos);
  EXPECT_NE(error_of("store:\n  snapshot_interval: 0ms\n").find("store.snapshot_interval"),
            std::string::npos);
  EXPECT_NE(error_of("store:\n  retention: soon\n").find("store.retention"), std::string::npos);
  EXPECT_NE(error_of("store:\n  redis:\n    host: x\n").find("store.redis.host"),
            std::string::npos);
}
