#pragma once

// What a Taskcluster storm needs beyond requests: the queue the target reads task
// definitions from (served by the storm, --queue-listen), and a watch on the target's
// Treeherder exchange that checks every job message the storm implies arrived, once,
// in publish order.

#include <chrono>
#include <map>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "storm/load.hpp"
#include "storm/verify.hpp"
#include "storm/workload.hpp"

namespace bt::storm {

/// The Taskcluster queue's API as far as buildtrack reads it, for the storm's tasks:
/// `GET /api/queue/v1/task/<id>` (the definition) and `.../runs/<n>/artifacts` (one
/// log). Point the target's `sources.taskcluster.root_url` at it.
class queue_server {
public:
  queue_server(const endpoint& at, std::map<std::string, nlohmann::json> definitions);
  ~queue_server();
  queue_server(const queue_server&) = delete;
  queue_server& operator=(const queue_server&) = delete;
  unsigned short port() const;

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// A WebSocket subscriber of the target's exchange `exchange` (binding `#`), reading on a
/// thread of its own from a minute before it started (a seamless resume: nothing
/// published after that is missed), resuming after a gap or a dropped connection.
class exchange_watch {
public:
  exchange_watch(endpoint target, std::string exchange, std::string admin_token);
  ~exchange_watch();
  exchange_watch(const exchange_watch&) = delete;
  exchange_watch& operator=(const exchange_watch&) = delete;

  /// Whether the subscription was accepted; when not, why.
  bool subscribed(std::string& why, std::chrono::milliseconds wait);

  /// Waits up to `drain` for every job message of `x`, then adds to `v` what is missing,
  /// heard at two positions, not expected of a task of the storm's, or out of order.
  void check(verification& v, const treeherder_expectation& x, std::chrono::milliseconds drain);

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace bt::storm
