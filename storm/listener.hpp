#pragma once

// A small HTTP/1.1 server on a thread of its own, for what the storm receives: the
// target's webhook notifications (--sink-listen) and its reads of the Taskcluster queue
// (--queue-listen).

#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "storm/load.hpp"

namespace bt::storm {

/// One request as the listener hands it over.
struct inbound {
  std::string method;
  std::string target;
  std::string delivery; ///< X-Buildtrack-Delivery, when present
  std::string body;
};

/// Serves every request with `handler` (called on the listener's thread) until destroyed.
class http_listener {
public:
  using handler = std::function<std::pair<unsigned, std::string>(const inbound&)>;

  /// Listens on `at` (port 0: any free port). Throws std::runtime_error when it cannot bind.
  http_listener(const endpoint& at, handler h);
  ~http_listener();
  http_listener(const http_listener&) = delete;
  http_listener& operator=(const http_listener&) = delete;

  unsigned short port() const;

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace bt::storm
