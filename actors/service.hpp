#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "config/config.hpp"
#include "model/event.hpp"
#include "model/index.hpp"
#include "store/store.hpp"

namespace bt::actors {

/// The actor system behind a CAF-free face, for the HTTP layer, the binaries and tests.
/// Every method is safe to call from any thread and never blocks.
class service {
public:
  /// Completion of an asynchronous read: HTTP status and JSON body.
  using reply_fn = std::function<void(int status, std::string body)>;

  /// Starts the actor system (scheduler settings from `cfg.actors`) and the actors.
  service(const config::config& cfg, std::shared_ptr<store::store> store);
  /// Stops every actor and waits for them.
  ~service();
  service(const service&) = delete;
  service& operator=(const service&) = delete;

  /// Hands an accepted (journaled) event to its build. Events sent from one thread
  /// reach their build in that order.
  void route(model::envelope e);

  /// One build as JSON (404 when unknown).
  void get_build(const model::build_key& key, reply_fn reply);
  /// Builds matching `q`, most recently updated first.
  void list_builds(const model::build_query& q, reply_fn reply);
  /// Every streak.
  void streaks(reply_fn reply);

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace bt::actors
