#pragma once

// Every typed actor interface of buildtrack, one comment line per handler.
// Included only by actor implementation files: keep CAF out of widely used headers.

#include <chrono>
#include <cstdint>
#include <vector>
#include <functional>
#include <optional>
#include <string>

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "model/build.hpp"
#include "model/index.hpp"
#include "model/notice.hpp"
#include "net/client.hpp"
#include "model/streak.hpp"
#include "store/store.hpp"

namespace bt::actors {

/// Completes an HTTP request from an actor: status and JSON body. Runs on a CAF
/// thread; the HTTP layer posts the result back to its connection's strand.
using http_reply = std::function<void(int status, std::string body)>;

using streaks_atom = caf::atom_constant<caf::atom("streaks")>;
using stop_atom = caf::atom_constant<caf::atom("stop")>;
using snapshot_atom = caf::atom_constant<caf::atom("snapshot")>;
using expire_atom = caf::atom_constant<caf::atom("expire")>;
using retry_atom = caf::atom_constant<caf::atom("retry")>;
using tick_atom = caf::atom_constant<caf::atom("tick")>;
using replay_atom = caf::atom_constant<caf::atom("replay")>;
using rewrite_atom = caf::atom_constant<caf::atom("rewrite")>;

/// Errors actors answer with.
enum class errc : std::uint8_t {
  /// No such build.
  not_found = 1,
  /// The store could not be read; try again.
  store_unavailable,
};

/// What expiry removes: finished builds older than `retention`, unfinished ones
/// older than `abandoned_after`, both by last update.
struct expiry_rule {
  model::timestamp now;
  std::chrono::milliseconds retention;
  std::chrono::milliseconds abandoned_after;
};

/// What the registry hands the snapshot supervisor for one snapshot.
struct snapshot_batch {
  store::snapshot state;  ///< the builds (and streaks) to write; no journal mark yet
  std::uint64_t cycle = 0; ///< this snapshot's number, counted from 1
  /// The cycle in which the longest-waiting build left out of this batch first
  /// changed: the journal must keep what followed the snapshot before it. None
  /// when every changed build is in the batch.
  std::optional<std::uint64_t> oldest_waiting;
};

/// Builds removed by one expiry sweep.
struct expired_builds {
  std::vector<model::build_key> finished;
  std::vector<model::build_key> abandoned;
};

/// How one delivery attempt ended, as the HTTP client saw it.
struct delivery_report {
  std::string id;                         ///< outbox entry
  std::uint64_t revision = 0;             ///< of the notice sent
  std::optional<std::string> message_ref; ///< the message the request edited, if any
  net::inbound_response response;
};

/// One build: applies every event of that build in arrival order to the pure model.
using build_actor = caf::typed_actor<
  // Apply one event.
  caf::reacts_to<model::envelope>,
  // Apply one replayed event; answers once its effects are on their way.
  caf::replies_to<replay_atom, model::envelope>::with<bool>,
  // The build as a JSON document.
  caf::replies_to<caf::get_atom>::with<std::string>,
  // The build's state, for a snapshot.
  caf::replies_to<snapshot_atom>::with<model::build>,
  // Idle check armed after `n` events; offers the registry its state and asks to stop.
  caf::reacts_to<caf::idle_atom, std::uint64_t>,
  // The registry agreed: stop.
  caf::reacts_to<stop_atom>>;

/// Computes streak verdicts per (source, pipeline, branch).
using streak_tracker_actor = caf::typed_actor<
  // A finished build's outcome; its verdict, or none when the build is not tracked.
  caf::replies_to<model::finished_effect>::with<std::optional<model::streak_result>>,
  // Every streak as a JSON array.
  caf::replies_to<caf::get_atom>::with<std::string>,
  // Every streak, for a snapshot.
  caf::replies_to<snapshot_atom>::with<model::streak_book>,
  // Recovery: the streaks as last written.
  caf::reacts_to<caf::put_atom, model::streak_book>>;

/// Maps build keys to build actors, spawning and stopping them.
using registry_actor = caf::typed_actor<
  // Route one event to its build's actor, spawning or waking it.
  caf::reacts_to<model::envelope>,
  // Recovery: route one journaled event; answers once applied, so that effects reach
  // the streak tracker in journal order however fast the journal is replayed.
  caf::replies_to<replay_atom, model::envelope>::with<bool>,
  // One build as JSON, from its actor or the store; errc::not_found otherwise.
  caf::replies_to<caf::get_atom, model::build_key>::with<std::string>,
  // Builds matching a query, as a JSON array of summaries.
  caf::replies_to<caf::get_atom, model::build_query>::with<std::string>,
  // A build actor's new summary, for listings.
  caf::reacts_to<caf::put_atom, model::build_summary>,
  // A finished build's outcome changed: ask the streak tracker, route the verdict back.
  caf::reacts_to<model::finished_effect>,
  // A build's settled outcome: on to the notification dispatcher.
  caf::reacts_to<model::notice>,
  // A build actor has been idle after `n` routed events and would like to stop.
  caf::reacts_to<caf::idle_atom, model::build, std::uint64_t>,
  // Recovery: the summaries of every stored build.
  caf::reacts_to<caf::put_atom, std::vector<model::build_summary>>,
  // At most `n` builds changed since they were last written (longest waiting first),
  // and the streaks if they may have changed.
  caf::replies_to<snapshot_atom, std::size_t>::with<snapshot_batch>,
  // The last snapshot was written (true) or must be taken again (false).
  caf::reacts_to<snapshot_atom, bool>,
  // Drops builds past their age limit from memory; the caller deletes them from the store.
  caf::replies_to<expire_atom, expiry_rule>::with<expired_builds>,
  // Tries a failed store read of a build again.
  caf::reacts_to<retry_atom, model::build_key>,
  // The store lost what was written to it: mark every build held in memory (and the
  // streaks) to be written again; forget builds whose only state was in the store.
  caf::reacts_to<rewrite_atom>>;

/// Delivers notices to the sinks through the store's outbox, exactly once each.
using notify_dispatcher_actor = caf::typed_actor<
  // A settled outcome: record it for every sink that wants it, then deliver.
  caf::reacts_to<model::notice>,
  // A delivery attempt ended.
  caf::reacts_to<delivery_report>,
  // The wait before outbox entry `id`'s next attempt is over (`n` names the wait).
  caf::reacts_to<retry_atom, std::string, std::uint64_t>,
  // Time to write again what the store refused.
  caf::reacts_to<tick_atom>>;

/// Writes snapshots and sweeps expired builds on a timer.
using snapshotter_actor = caf::typed_actor<
  // Time for the next snapshot (and expiry sweep when one is due).
  caf::reacts_to<tick_atom>>;

/// Bridges HTTP threads to actors: asks, then completes the HTTP reply.
using gateway_actor = caf::typed_actor<
  // One build.
  caf::reacts_to<caf::get_atom, model::build_key, http_reply>,
  // A build list.
  caf::reacts_to<caf::get_atom, model::build_query, http_reply>,
  // Every streak.
  caf::reacts_to<caf::get_atom, streaks_atom, http_reply>>;

} // namespace bt::actors

CAF_ERROR_CODE_ENUM(bt::actors::errc, "buildtrack")

// Local-only payloads: buildtrack runs in one process and never serializes them.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(bt::model::envelope)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(bt::model::build)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(bt::model::streak_book)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<bt::model::build_summary>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(bt::actors::snapshot_batch)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(bt::actors::expiry_rule)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(bt::actors::expired_builds)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(bt::model::build_key)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(bt::model::build_query)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(bt::model::build_summary)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(bt::model::finished_effect)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::optional<bt::model::streak_result>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(bt::actors::http_reply)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(bt::model::notice)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(bt::actors::delivery_report)
