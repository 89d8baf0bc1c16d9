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
  // The same defaults config/example.yaml shows: a store that keeps what it acknowledged.
  EXPECT_EQ(c.store.kind, "redis");
  EXPECT_EQ(c.server.max_connections, 10'000);
  EXPECT_EQ(c.tracking.max_jobs_per_build, 4096);
  EXPECT_EQ(c.tracking.max_attempts_per_job, 64);
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
  EXPECT_NE(error_of("server:\n  body_limit: 0\n").find("between"), std::string::npos);
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
    "    key_prefix: \"ci:\"\n  snapshot_interval: 50ms\n  snapshot_max_builds: 10\n  snapshot_delay: 0ms\n  retention: 2d\n  abandoned_after: 3d\n");
  EXPECT_EQ(c.store.kind, "redis");
  EXPECT_EQ(c.store.redis.url, "redis://:secret@10.0.0.5:6380/2");
  EXPECT_EQ(c.store.redis.key_prefix, "ci:");
  EXPECT_EQ(c.store.snapshot_interval, std::chrono::milliseconds{50});
  EXPECT_EQ(c.store.snapshot_max_builds, 10);
  EXPECT_EQ(c.store.snapshot_delay, std::chrono::milliseconds{0});
  EXPECT_EQ(c.store.retention, std::chrono::hours{48});
  EXPECT_EQ(c.store.abandoned_after, std::chrono::hours{72});
  auto defaults = bt::config::parse("");
  EXPECT_EQ(defaults.store.snapshot_interval, std::chrono::milliseconds{200});
  EXPECT_EQ(defaults.store.snapshot_delay, std::chrono::seconds{5});
  EXPECT_EQ(defaults.store.retention, std::chrono::hours{24});
  EXPECT_EQ(defaults.store.abandoned_after, std::chrono::hours{48});
}

TEST(config, bad_redis_store_keys_name_the_key) {
  EXPECT_NE(error_of("store:\n  redis:\n    url: http://x\n").find("store.redis.url"),
            std::string::npos);
  EXPECT_NE(error_of("store:\n  snapshot_interval: 0ms\n").find("store.snapshot_interval"),
            std::string::npos);
  EXPECT_NE(error_of("store:\n  retention: soon\n").find("store.retention"), std::string::npos);
  EXPECT_NE(error_of("store:\n  snapshot_delay: 2h\n").find("store.snapshot_delay"),
            std::string::npos);
  EXPECT_NE(error_of("store:\n  redis:\n    host: x\n").find("store.redis.host"),
            std::string::npos);
}

TEST(config, notification_sinks_and_people) {
  auto c = parse(R"(
tracking:
  branches: [main, release/*]
notifications:
  - name: builds
    kind: slack
    token: xoxb-1
    channel: C012
  - name: audit
    kind: webhook
    url: https://hooks.example.com/ci
    on: [broken, fixed]
    pipelines: [web-*]
    branches: ["*"]
    headers: {X-Team: web}
    auth: {basic: {user: ci, password: pw}}
    secret: s
    retry: {max_attempts: 3, initial_backoff: 2s, max_backoff: 1m}
    concurrency: 8
    timeout: 5s
people:
  - {email: ada@example.com, github: ada, slack: U1}
)");
  ASSERT_EQ(c.notifications.size(), 2u);
  auto& slack = c.notifications[0];
  EXPECT_EQ(slack.api_url, "https://slack.com/api");
  EXPECT_EQ(slack.on, (std::vector<std::string>{"failed", "fixed"}));
  EXPECT_EQ(slack.branches, (std::vector<std::string>{"main", "release/*"})) << "tracked by default";
  EXPECT_EQ(slack.retry.max_attempts, 10);
  auto& hook = c.notifications[1];
  EXPECT_EQ(hook.on, (std::vector<std::string>{"broken", "fixed"}));
  EXPECT_EQ(hook.branches, (std::vector<std::string>{"*"}));
  EXPECT_EQ(hook.headers, (std::vector<std::pair<std::string, std::string>>{{"X-Team", "web"}}));
  EXPECT_EQ(hook.basic_user, "ci");
  EXPECT_EQ(hook.retry.initial_backoff, 2s);
  EXPECT_EQ(hook.concurrency, 8);
  ASSERT_EQ(c.people.size(), 1u);
  EXPECT_EQ(c.people[0].slack, "U1");
  // Every kind gets a default `on`: webhooks all of them.
  EXPECT_EQ(parse("notifications:\n  - {name: h, kind: webhook, url: 'http://127.0.0.1:9/x'}\n")
              .notifications[0]
              .on.size(),
            6u);
}

TEST(config, bad_sinks_name_the_key) {
  auto slack = [](const std::string& extra) {
    return "notifications:\n  - name: s\n    kind: slack\n    token: t\n    channel: C\n" + extra;
  };
  EXPECT_NE(error_of(slack("    on: [failing]\n")).find("notifications[0].on[0]"), std::string::npos);
  EXPECT_NE(error_of(slack("    api_url: http://slack.example.com/api\n"))
              .find("notifications[0].api_url: plain http is only allowed to loopback"),
            std::string::npos);
  EXPECT_NE(error_of(slack("    url: https://x\n")).find("notifications[0].url: only for kind webhook"),
            std::string::npos);
  EXPECT_NE(error_of(slack("    retry: {initial_backoff: 1m, max_backoff: 1s}\n"))
              .find("notifications[0].retry"),
            std::string::npos);
  EXPECT_NE(error_of("notifications:\n  - {name: s, kind: slack, channel: C}\n")
              .find("notifications[0].token: required"),
            std::string::npos);
  EXPECT_NE(error_of("notifications:\n  - {name: s, kind: pager}\n").find("notifications[0].kind"),
            std::string::npos);
  EXPECT_NE(error_of("notifications:\n  - {kind: webhook, url: 'https://x'}\n")
              .find("notifications[0].name"),
            std::string::npos);
  EXPECT_NE(error_of("notifications:\n  - {name: a, kind: webhook, url: 'https://x'}\n"
                     "  - {name: a, kind: webhook, url: 'https://y'}\n")
              .find("notifications[1].name: another sink is called 'a'"),
            std::string::npos);
  EXPECT_NE(error_of("people:\n  - {email: a@b.c}\n").find("people[0].slack"), std::string::npos);
}

// Issue 9, point 4: numbers that overflow, and values that would cut every request at
// once or never, are errors naming the key and line, never an uncaught exception.
TEST(config, numbers_out_of_range_name_the_key_and_line) {
  struct case_t {
    const char* yaml;
    const char* key;
  };
  for (auto [yaml, key] : std::initializer_list<case_t>{
         {"server:\n  read_timeout: 99999999999999999999d\n", "server.read_timeout"},
         {"server:\n  read_timeout: 9999999999999999s\n", "server.read_timeout"},
         {"server:\n  read_timeout: 0s\n", "server.read_timeout"},
         {"server:\n  read_timeout: 2h\n", "server.read_timeout"},
         {"server:\n  body_limit: 99999999999999999999\n", "server.body_limit"},
         {"server:\n  body_limit: 99999999999GiB\n", "server.body_limit"},
         {"server:\n  body_limit: 2GiB\n", "server.body_limit"},
         {"server:\n  io_threads: 99999999999999999999\n", "server.io_threads"},
         {"server:\n  max_connections: 0\n", "server.max_connections"},
         {"store:\n  retention: 999999999999999999999999999d\n", "store.retention"},
         {"store:\n  abandoned_after: 0s\n", "store.abandoned_after"},
         {"sources:\n  buildkite:\n    replay_window: 0s\n", "sources.buildkite.replay_window"},
         {"tracking:\n  max_attempts_per_job: 1\n", "tracking.max_attempts_per_job"},
         {"notifications:\n  - {name: h, kind: webhook, url: 'http://127.0.0.1:9/', timeout: 0ms}\n",
          "notifications[0].timeout"},
       }) {
    auto msg = error_of(yaml);
    EXPECT_NE(msg.find(key), std::string::npos) << yaml << " -> " << msg;
    EXPECT_NE(msg.find("line "), std::string::npos) << yaml << " -> " << msg;
  }
  EXPECT_THROW(parse_duration("99999999999999999999d"), config_error);
  EXPECT_THROW(parse_size("18446744073709551616"), config_error);
  EXPECT_THROW(parse_size("18014398509481984GiB"), config_error);
  EXPECT_EQ(parse_duration("36500d"), std::chrono::hours{24 * 36500});
  EXPECT_EQ(parse("server:\n  read_timeout: 1h\n").server.read_timeout, 1h);
}

// Issue 9, point 11: a key written twice in one mapping is an error, not half-taken.
TEST(config, duplicate_keys_are_errors) {
  auto msg = error_of("server:\n  listen: 127.0.0.1:1\n  listen: 127.0.0.1:2\n");
  EXPECT_NE(msg.find("server.listen: duplicate key"), std::string::npos) << msg;
  EXPECT_NE(msg.find("line 3"), std::string::npos) << msg;
  EXPECT_NE(error_of("server: {}\nserver: {}\n").find("server: duplicate key"), std::string::npos);
  EXPECT_NE(error_of("notifications:\n  - {name: h, kind: webhook, url: 'http://127.0.0.1:9/',"
                     " headers: {X-A: 1, X-A: 2}}\n")
              .find("notifications[0].headers.X-A: duplicate key"),
            std::string::npos);
}

TEST(config, per_build_limits_are_read) {
  auto c = parse("tracking:\n  max_jobs_per_build: 8\n  max_attempts_per_job: 3\n"
                 "  max_statistics_per_build: 2\n  max_messages_per_build: 5\n");
  EXPECT_EQ(c.tracking.max_jobs_per_build, 8);
  EXPECT_EQ(c.tracking.max_attempts_per_job, 3);
  EXPECT_EQ(c.tracking.max_statistics_per_build, 2);
  EXPECT_EQ(c.tracking.max_messages_per_build, 5);
}

// Webhook body templates (mustache): checked when the configuration is read, so a
// broken one stops start-up naming the sink and the line.
TEST(config, a_broken_body_template_is_an_error_naming_the_sink_and_the_line) {
  auto unclosed = error_of("notifications:\n  - name: hook\n    kind: webhook\n"
                           "    url: 'http://127.0.0.1:9/'\n"
                           "    template: \"{\\n  \\\"commit\\\": \\\"{{#build}}{{commit}}\\\"\\n}\"\n");
  EXPECT_NE(unclosed.find("notifications[0].template"), std::string::npos) << unclosed;
  EXPECT_NE(unclosed.find("line 2"), std::string::npos) << unclosed;
  auto not_json = error_of("notifications:\n  - name: hook\n    kind: webhook\n"
                           "    url: 'http://127.0.0.1:9/'\n"
                           "    template: '{\"message\": {{{build.message}}}}'\n");
  EXPECT_NE(not_json.find("renders invalid JSON"), std::string::npos) << not_json;
  // Escaped {{values}} keep quotes and newlines inside JSON strings.
  auto ok = parse("notifications:\n  - name: hook\n    kind: webhook\n"
                  "    url: 'http://127.0.0.1:9/'\n"
                  "    template: '{\"message\": \"{{build.message}}\", \"n\": {{build.number}}}'\n");
  EXPECT_FALSE(ok.notifications[0].body_template.empty());
  auto plain = parse("notifications:\n  - name: hook\n    kind: webhook\n"
                     "    url: 'http://127.0.0.1:9/'\n    content_type: text/plain\n"
                     "    template: 'Build {{build.number}} {{kind}}'\n");
  EXPECT_EQ(plain.notifications[0].content_type, "text/plain");
  EXPECT_NE(error_of("notifications:\n  - name: s\n    kind: slack\n    token: x\n"
                     "    channel: C1\n    template: '{}'\n")
              .find("only for kind webhook"),
            std::string::npos);
}

TEST(config, exchange_sinks_and_the_exchanges_they_make) {
  auto c = parse("notifications:\n"
                 "  - {name: bus, kind: exchange, exchange: outcomes}\n"
                 "  - {name: bus2, kind: exchange, exchange: outcomes, on: [failed]}\n"
                 "sources:\n  taskcluster: {exchange: th-jobs, root_url: 'https://tc.example.com/'}\n"
                 "exchanges: {backlog: 500, subscriber_queue: 16, idle_timeout: 5s}\n");
  ASSERT_EQ(c.notifications.size(), 2u);
  EXPECT_EQ(c.notifications[0].exchange, "outcomes");
  EXPECT_EQ(c.notifications[0].on.size(), 6u) << "every outcome kind by default";
  EXPECT_EQ(c.taskcluster.root_url, "https://tc.example.com") << "no trailing slash";
  EXPECT_EQ(c.exchanges.backlog, 500);
  EXPECT_EQ(c.exchanges.subscriber_queue, 16);
  EXPECT_EQ(c.exchanges.idle_timeout, 5s);
  EXPECT_EQ(exchange_names(c), (std::vector<std::string>{"builds", "th-jobs", "outcomes"}));
  EXPECT_EQ(exchange_names(parse("")),
            (std::vector<std::string>{"builds", "exchange/taskcluster-treeherder/v1/jobs"}));
  // `builds` is buildtrack's own feed of build changes: no sink or source may publish on it.
  EXPECT_NE(error_of("notifications:\n  - {name: b, kind: exchange, exchange: builds}\n")
              .find("notifications[0].exchange: 'builds' is buildtrack's own"),
            std::string::npos);
  EXPECT_NE(error_of("sources:\n  taskcluster: {exchange: builds}\n").find("sources.taskcluster.exchange"),
            std::string::npos);
  EXPECT_NE(error_of("notifications:\n  - {name: b, kind: exchange}\n").find("notifications[0].exchange: required"),
            std::string::npos);
  EXPECT_NE(error_of("notifications:\n  - {name: b, kind: exchange, exchange: x, url: 'https://x'}\n")
              .find("notifications[0].url: only for kind webhook"),
            std::string::npos);
  EXPECT_NE(error_of("notifications:\n  - {name: h, kind: webhook, url: 'https://x', exchange: x}\n")
              .find("notifications[0].exchange: only for kind exchange"),
            std::string::npos);
  EXPECT_NE(error_of("sources:\n  taskcluster: {route_prefix: a.b}\n").find("sources.taskcluster.route_prefix"),
            std::string::npos);
  EXPECT_NE(error_of("sources:\n  taskcluster: {root_url: ftp://x}\n").find("sources.taskcluster.root_url"),
            std::string::npos);
  EXPECT_NE(error_of("exchanges: {subscriber_queue: 0}\n").find("exchanges.subscriber_queue"),
            std::string::npos);
  auto tc = parse("sources:\n  taskcluster: {schemas: /etc/buildtrack/schemas, task_cache: 50}\n");
  EXPECT_EQ(tc.taskcluster.schemas, "/etc/buildtrack/schemas");
  EXPECT_EQ(tc.taskcluster.task_cache, 50);
  EXPECT_EQ(parse("").taskcluster.task_cache, 10'000);
  EXPECT_NE(error_of("sources:\n  taskcluster: {task_cache: 0}\n").find("sources.taskcluster.task_cache"),
            std::string::npos);
}

TEST(config, cdevents_source_and_sinks) {
  auto c = parse("sources:\n  cdevents: {token: t0k, schemas: /opt/cdevents}\n"
                 "notifications:\n"
                 "  - {name: cd, kind: cdevents, url: 'https://events.example.com/'}\n"
                 "  - {name: cd2, kind: cdevents, url: 'https://x/', mode: structured, source: /ci,"
                 " on: [failed, job_finished], auth: {bearer: b}}\n");
  EXPECT_EQ(c.cdevents.token, "t0k");
  EXPECT_EQ(c.cdevents.schemas, "/opt/cdevents");
  ASSERT_EQ(c.notifications.size(), 2u);
  EXPECT_EQ(c.notifications[0].mode, "binary");
  EXPECT_EQ(c.notifications[0].event_source, "/buildtrack");
  EXPECT_EQ(c.notifications[0].on.size(), 6u) << "every outcome kind by default";
  EXPECT_EQ(c.notifications[1].mode, "structured");
  EXPECT_EQ(c.notifications[1].event_source, "/ci");
  EXPECT_EQ(c.notifications[1].bearer_token, "b");
  EXPECT_NE(error_of("notifications:\n  - {name: cd, kind: cdevents}\n").find("notifications[0].url: required"),
            std::string::npos);
  EXPECT_NE(error_of("notifications:\n  - {name: cd, kind: cdevents, url: 'https://x/', mode: fancy}\n")
              .find("notifications[0].mode: expected binary or structured"),
            std::string::npos);
  EXPECT_NE(error_of("notifications:\n  - {name: h, kind: webhook, url: 'https://x/', mode: binary}\n")
              .find("notifications[0].mode: only for kind cdevents"),
            std::string::npos);
  EXPECT_NE(error_of("notifications:\n  - {name: cd, kind: cdevents, url: 'https://x/', template: '{}'}\n")
              .find("notifications[0].template: only for kind webhook"),
            std::string::npos);
}
