#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <nlohmann/json.hpp>

#include "actors/actors.hpp"
#include "config/config.hpp"
#include "net/client.hpp"
#include "net/taskcluster_queue.hpp"
#include "sources/treeherder.hpp"
#include "support/json_schema.hpp"

namespace bt::actors {

/// What the Treeherder publisher needs: its exchange, the mapping's settings and
/// schemas, and how far its waits and its cache go.
struct treeherder_settings {
  std::string exchange;       ///< `sources.taskcluster.exchange`
  std::string route_prefix;   ///< `sources.taskcluster.route_prefix`
  std::string root_url;       ///< the queue's deployment; links point at it
  std::shared_ptr<const support::json_schema> job_schema;    ///< pulse-job
  std::shared_ptr<const support::json_schema> config_schema; ///< task-treeherder-config
  std::size_t task_cache = 10'000; ///< task definitions kept, by task id
  std::chrono::milliseconds first_wait{500}; ///< before a failed step is tried again; doubles
  std::chrono::milliseconds longest_wait{std::chrono::minutes{1}};
  std::chrono::milliseconds queue_timeout{std::chrono::seconds{10}}; ///< per queue read
};

/// The schemas of `cfg` (`sources.taskcluster.schemas`, else buildtrack's own) and
/// its settings. Throws std::runtime_error naming the file that does not load.
treeherder_settings treeherder_settings_of(const config::config& cfg);

/// Counts how many inputs wait, for metrics.
struct treeherder_stats {
  std::atomic<std::uint64_t> pending{0};
};

/// One journaled queue message on its way.
struct relay_input {
  std::string id;        ///< sha256 of the message: the same message is one input
  model::envelope input; ///< as journaled (its body a model::relayed)
  sources::treeherder::queue_event event = sources::treeherder::queue_event::pending;
  std::string task_id;
  nlohmann::json payload; ///< the message's payload
};

/// A task's inputs, in arrival order: the first is worked on, the others wait, so a
/// task's job messages are published in the order its events came.
struct task_lane {
  std::deque<std::string> inputs; ///< ids
  /// What the first input's work got so far.
  enum step_t { ready, reading_task, listing, publishing, waiting } step = ready;
  std::shared_ptr<const nlohmann::json> task;
  bool listed = false; ///< its artifact listings are in (or not needed)
  std::map<std::int64_t, std::vector<std::string>> artifacts;
  std::size_t listings_due = 0;
  std::uint32_t failures = 0; ///< the step failed this many times in a row
  std::uint64_t wait = 0;     ///< names the retry armed while waiting
};

struct treeherder_publisher_state {
  treeherder_publisher_state() = default; // not an aggregate (see gateway_state)
  static inline const char* name = "treeherder_publisher";
  treeherder_settings settings;
  sources::treeherder::settings mapping; ///< points into `settings`' schemas
  exchange_actor exchange;
  std::shared_ptr<treeherder_stats> stats;
  std::unordered_map<std::string, relay_input> pending; ///< by id
  std::unordered_map<std::string, task_lane> lanes;     ///< by task id
  /// Task definitions, most recently used first, and where each is in that list.
  std::list<std::pair<std::string, std::shared_ptr<const nlohmann::json>>> cache;
  std::unordered_map<std::string, decltype(cache)::iterator> cached;
  /// Inputs whose stored presence may differ from `pending`, and those taken by the
  /// snapshot being written.
  std::unordered_set<std::string> changed, taken;
  std::uint64_t waits = 0;
  // Last, so that it goes first: its reads in flight never call back into the rest.
  std::unique_ptr<net::http_client> client;
  std::unique_ptr<net::taskcluster_queue> queue;
};

/// Publishes Taskcluster task events as Treeherder job messages (SPEC §3.2) on the
/// topic exchange: reads each task's definition (from the message, its cache, or the
/// queue, retried while the queue fails) and the artifact listings of ended runs,
/// maps and validates, then publishes through the exchange, which takes each job
/// message once. What is acknowledged but not published is logged and counted by
/// reason. Inputs not yet published are kept by the snapshots: the journal is
/// trimmed behind them.
treeherder_publisher_actor::behavior_type
treeherder_publisher(treeherder_publisher_actor::stateful_pointer<treeherder_publisher_state> self,
                     treeherder_settings settings, exchange_actor exchange,
                     std::shared_ptr<treeherder_stats> stats);

} // namespace bt::actors
