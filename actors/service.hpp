#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "config/config.hpp"
#include "model/event.hpp"
#include "model/index.hpp"
#include "store/store.hpp"
#include "support/push_channel.hpp"

namespace bt::actors {

/// The actor system behind a CAF-free face, for the HTTP layer, the binaries and tests.
/// Every method is safe to call from any thread and never blocks.
class service {
public:
  /// Completion of an asynchronous read: HTTP status and JSON body.
  using reply_fn = std::function<void(int status, std::string body)>;

  /// Starts the actor system (scheduler settings from `cfg.actors`) and the actors.
  /// Throws std::runtime_error when the Treeherder schemas do not load.
  service(const config::config& cfg, std::shared_ptr<store::store> store);
  /// Stops every actor and waits for them.
  ~service();
  service(const service&) = delete;
  service& operator=(const service&) = delete;

  /// Puts back what the store holds: streaks, the index of stored builds, the
  /// announcements of finished builds that may not have been acted on, then the
  /// journal tail, replayed through the same model. Call once, before serving.
  /// Returns why it could not (the store could not be read to the end).
  std::optional<std::string> recover();

  /// Hands an accepted (journaled) event to its build, or a relayed input to its
  /// relay. Events sent from one thread reach their build in that order.
  void route(model::envelope e);
  /// The same for an event confirmed in commit `c`: the commit's events go to the
  /// registry together, in journal order, once its callbacks ran (one message per
  /// group commit, not one per event).
  void route(model::envelope e, store::commit& c);
  /// Hands a request's accepted events, confirmed in commit `c`, to their builds, in
  /// order after what `c` gathered before them; `applied` runs once every one of them
  /// was applied (or dropped with a failed actor), with how many were duplicates
  /// (changed nothing). It runs on an actor thread.
  void route(std::vector<model::envelope> events,
             std::function<void(std::size_t duplicates)> applied, store::commit& c);

  /// Hands an accepted (journaled) build command, confirmed in commit `c`, to its
  /// build, in order with the events routed before it; `reply` gets the answer once
  /// the build's actor decided: 200 with the build's state, 409 when it does not
  /// apply, 404 for an unknown build.
  void command(model::envelope e, reply_fn reply, store::commit& c);

  /// One build as JSON (404 when unknown).
  void get_build(const model::build_key& key, reply_fn reply);
  /// Builds matching `q`, most recently updated first.
  void list_builds(const model::build_query& q, reply_fn reply);
  /// Every streak.
  void streaks(reply_fn reply);
  /// The status page's overview: every branch matching `q` (source, pipeline, branch)
  /// with its newest `per_branch` builds, and the builds not finished or whose notices
  /// wait for statistics.
  void overview(const model::build_query& q, std::size_t per_branch, reply_fn reply);
  /// What became of a build's notices, per sink, since the process started.
  void notifications(const model::build_key& key, reply_fn reply);

  /// Publishes on topic exchange `exchange` (SPEC §8); `done` gets each message's
  /// fate, or nothing when the store refused them, on an actor thread.
  using publish_fn = std::function<void(std::optional<std::vector<store::published>>)>;
  void publish(std::string exchange, std::vector<store::exchange_publication> messages,
               publish_fn done);
  /// Subscribes `channel` to what `exchange` publishes with a routing key matching one
  /// of `bindings` (checked already), the backlog after `since` first (empty: none).
  /// Returns the subscription's id, for unsubscribe().
  std::uint64_t subscribe(std::string exchange, std::vector<std::string> bindings, std::string since,
                          std::shared_ptr<support::push_channel> channel);
  void unsubscribe(std::uint64_t id);

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace bt::actors
