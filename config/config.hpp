#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace bt::config {

using duration = std::chrono::milliseconds;

/// A configuration error; the message names the key path and line.
struct config_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// `server.*`
struct server_config {
  std::string listen = "127.0.0.1:8080";
  int io_threads = 2;
  std::size_t body_limit = 1024 * 1024;
  duration read_timeout = std::chrono::seconds{30};
  std::string admin_token; ///< when set, read endpoints require it
  /// Open connections at most; the surplus is answered 503 and closed at once.
  int max_connections = 10'000;
};

/// `store.redis.*`
struct redis_config {
  std::string url = "redis://127.0.0.1:6379/0"; ///< redis://[[user]:password@]host[:port][/db]
  std::string key_prefix = "buildtrack:";
};

/// `store.*`
struct store_config {
  std::string kind = "redis"; ///< "redis", or "memory" for tests and throwaway runs
  redis_config redis;
  duration snapshot_interval = std::chrono::milliseconds{200};
  int snapshot_max_builds = 1000; ///< builds written per snapshot at most
  /// How long a changed build waits before a snapshot writes it, so that the changes of
  /// a busy build are written together; the journal keeps them meanwhile.
  duration snapshot_delay = std::chrono::seconds{5};
  duration retention = std::chrono::hours{24};       ///< finished builds
  duration abandoned_after = std::chrono::hours{48}; ///< builds that never finish
};

/// `sources.buildkite.*`
struct buildkite_config {
  std::string token;            ///< X-Buildkite-Token, and the signature key by default
  std::string signature_secret; ///< HMAC key for X-Buildkite-Signature, if not the token
  duration replay_window = std::chrono::minutes{5};
};

/// `sources.native.*`: the native event API, `POST /api/v1/events`.
struct native_config {
  std::string token; ///< `Authorization: Bearer <token>`; empty: the API refuses every call
};

/// `sources.taskcluster.*`: queue task events, `POST /webhooks/taskcluster`.
struct taskcluster_config {
  std::string token; ///< `Authorization: Bearer <token>`; empty: refuses every call
  /// The deployment's root URL: task definitions, artifact listings and links.
  std::string root_url;
  std::string route_prefix = "tc-treeherder";
  /// Where Treeherder job messages are published.
  std::string exchange = "exchange/taskcluster-treeherder/v1/jobs";
  /// The folder holding `pulse-job.schema.yml` and `task-treeherder-config.schema.yml`,
  /// loaded at start; empty: the schemas that came with buildtrack.
  std::string schemas;
  int task_cache = 10'000; ///< task definitions kept, by task id (one task's runs read it once)
};

/// `sources.cdevents.*`: CDEvents as CloudEvents, `POST /webhooks/cdevents`.
struct cdevents_config {
  std::string token; ///< `Authorization: Bearer <token>`; empty: refuses every call
  /// The folder holding the CDEvents 0.4.1 schemas (`pipelinerunfinished.json`, ...,
  /// `links/`), loaded at start; empty: the schemas that came with buildtrack.
  std::string schemas;
};

/// `exchanges.*`: the topic exchanges and their WebSocket subscribers (SPEC §8).
struct exchanges_config {
  int backlog = 100'000; ///< messages kept per exchange for subscribers to resume
  int subscriber_queue = 1024;   ///< frames waiting per subscriber before a gap opens
  /// A subscriber connection with nothing received for this long is closed; pings go
  /// out at half of it, so a live client always answers in time.
  duration idle_timeout = std::chrono::seconds{30};
};

/// `collator.*`: the defaults of every sink's `wait_for` (SPEC §5).
struct collator_config {
  /// tcWebHooks' polling period. buildtrack does not poll (waits end on timers and
  /// events); the key is accepted so that a tcWebHooks setting carries over.
  duration check_interval = std::chrono::seconds{1};
  duration build_completed_timeout = std::chrono::minutes{5};
  duration failure_timeout = std::chrono::hours{1};
};

/// A sink's `wait_for`: its finished-notice waits for these statistics (names trimmed,
/// case kept), released by the first of the criteria of SPEC §5.
struct wait_for_config {
  std::vector<std::string> statistics;
  duration build_completed_timeout{};
  duration failure_timeout{};
};

/// `tracking.*`
struct tracking_config {
  std::vector<std::string> branches{"main", "master"};
  /// A build's actor stops after this long without events (its state stays stored).
  duration actor_idle_timeout = std::chrono::seconds{30};
  /// Bounds on one build's memory. Past them the model keeps what decides the outcome
  /// and counts what it let go (model::build_limits).
  int max_jobs_per_build = 4096;
  int max_attempts_per_job = 64;
  int max_statistics_per_build = 1024;
  int max_messages_per_build = 1024;
};

/// `actors.*`: the CAF scheduler.
struct actors_config {
  /// One worker: a webhook's event is a few microseconds of actor work, and a second
  /// worker costs more in wake-ups than it adds (bench/RESULTS.md, 2026-12-03). Raise
  /// it for large native batches on more cores.
  int threads = 1;
  int max_throughput = 300;
  std::string policy = "sharing"; ///< "sharing" or "stealing"
};

/// `notifications[].retry`: exponential backoff with full jitter between attempts.
struct retry_config {
  int max_attempts = 10;                          ///< then the notice is dead-lettered
  duration initial_backoff = std::chrono::seconds{1}; ///< before the second attempt
  duration max_backoff = std::chrono::minutes{10};    ///< cap of the exponential growth
};

/// `notifications[]`: one sink. Kind-specific keys are empty for other kinds.
struct sink_config {
  std::string name; ///< unique; part of every outbox key
  std::string kind; ///< "slack", "webhook", "exchange" or "cdevents"
  /// Notice kinds this sink wants: failed, broken, still_failing, fixed, passed,
  /// recovered. Default: failed and fixed for Slack, all for webhooks.
  std::vector<std::string> on;
  std::vector<std::string> branches;             ///< globs; default `tracking.branches`
  std::vector<std::string> pipelines{"*"};       ///< globs on the pipeline slug
  retry_config retry;
  std::optional<wait_for_config> wait_for;       ///< none: sent at the finish
  int concurrency = 4;                           ///< deliveries in flight at most
  duration timeout = std::chrono::seconds{10};   ///< per attempt
  // slack
  std::string token;
  std::string channel;
  std::string api_url = "https://slack.com/api";
  // webhook
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string bearer_token;                      ///< `auth.bearer`
  std::string basic_user, basic_password;        ///< `auth.basic.{user,password}`
  std::string secret;                            ///< HMAC-SHA256 key for X-Buildtrack-Signature
  /// The body as a mustache template (`template:` inline, or read from
  /// `template_file:`); empty: the default document. Checked at load.
  std::string body_template;
  std::string content_type = "application/json";
  // exchange
  std::string exchange; ///< the topic exchange it publishes on
  // cdevents (and url, headers, auth, secret as a webhook's)
  std::string mode = "binary"; ///< CloudEvents HTTP mode: binary or structured
  std::string event_source = "/buildtrack"; ///< `source:`, the CDEvents' context.source
};

/// `people[]`: who someone is in each system, for Slack mentions.
struct person_config {
  std::string email;
  std::string github;
  std::string slack; ///< Slack member id, e.g. U012AB3CD
};

/// The whole configuration; every member has its documented default.
struct config {
  server_config server;
  store_config store;
  buildkite_config buildkite;
  native_config native;
  taskcluster_config taskcluster;
  cdevents_config cdevents;
  exchanges_config exchanges;
  tracking_config tracking;
  collator_config collator;
  actors_config actors;
  std::vector<sink_config> notifications;
  std::vector<person_config> people;
  std::string log_level = "info";
};

/// The exchange buildtrack publishes every build change on (routing key
/// `<source>.<pipeline>.<state>`, the build's summary as payload): the status page's feed.
inline constexpr const char* builds_exchange = "builds";

/// The topic exchanges that exist: what subscribers may subscribe to (`builds` always).
std::vector<std::string> exchange_names(const config& c);

/// Parses YAML text. `${VAR}` and `${VAR:-default}` in scalar values are taken from
/// the environment. Throws config_error naming the key path and line.
config parse(const std::string& yaml_text);

/// Reads and parses a file.
config load(const std::string& path);

/// `30s`, `5m`, `4h`, `200ms`, `1d`.
duration parse_duration(const std::string& text);

/// `1MiB`, `512KiB`, `1GiB`, `1000` (bytes), `1MB` (10^6).
std::uint64_t parse_size(const std::string& text);

} // namespace bt::config
