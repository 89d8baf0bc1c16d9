#pragma once

// Every typed actor interface of buildtrack, one comment line per handler.
// Included only by actor implementation files: keep CAF out of widely used headers.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>
#include <functional>
#include <optional>
#include <string>

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>
#include <caf/typed_response_promise.hpp>
#include <nlohmann/json_fwd.hpp>

#include "model/build.hpp"
#include "model/index.hpp"
#include "model/notice.hpp"
#include "net/client.hpp"
#include "model/streak.hpp"
#include "store/store.hpp"
#include "support/push_channel.hpp"

namespace bt::actors {

/// Completes an HTTP request from an actor: status and JSON body. Runs on a CAF
/// thread; the HTTP layer posts the result back to its connection's strand.
using http_reply = std::function<void(int status, std::string body)>;
/// Completes a publication from outside the actors: each message's fate, or nothing
/// when the store refused them. Runs on a CAF thread.
using publish_reply = std::function<void(std::optional<std::vector<store::published>>)>;

using streaks_atom = caf::atom_constant<caf::atom("streaks")>;
using stop_atom = caf::atom_constant<caf::atom("stop")>;
using snapshot_atom = caf::atom_constant<caf::atom("snapshot")>;
using expire_atom = caf::atom_constant<caf::atom("expire")>;
using retry_atom = caf::atom_constant<caf::atom("retry")>;
using tick_atom = caf::atom_constant<caf::atom("tick")>;
using replay_atom = caf::atom_constant<caf::atom("replay")>;
using rewrite_atom = caf::atom_constant<caf::atom("rewrite")>;
using load_atom = caf::atom_constant<caf::atom("load")>;
using forget_atom = caf::atom_constant<caf::atom("forget")>;
using deadline_atom = caf::atom_constant<caf::atom("deadline")>;
using start_atom = caf::atom_constant<caf::atom("start")>;
using publish_atom = caf::atom_constant<caf::atom("publish")>;
using subscribe_atom = caf::atom_constant<caf::atom("subscribe")>;
using notify_atom = caf::atom_constant<caf::atom("notify")>;

/// What became of a build command (SPEC §3.4).
struct command_outcome {
  bool known = false;   ///< the build exists (else 404)
  bool applied = false; ///< the command applied (else 409, with `reason`)
  std::string reason;
  model::build_state state = model::build_state::pending; ///< the build's state after it
  std::uint64_t generation = 0;
};

/// What the events of one request did once their builds applied them. Every event
/// of the request carries a copy; the last copy dropped (its event applied, or dropped
/// with its actor) calls `done`, so a request is answered exactly once and never hangs.
struct ingest_tally {
  std::atomic<std::size_t> duplicates{0}; ///< events that changed nothing: seen before
  std::function<void(std::size_t duplicates)> done;
  /// A build command's fate, for its answer: set by the build's actor once applied,
  /// or by the registry when the build is unknown. Read by `done` (after the last
  /// copy is dropped, so the write is visible).
  std::optional<command_outcome> command;
  ~ingest_tally() {
    if (done)
      done(duplicates.load());
  }
};
using tally_ptr = std::shared_ptr<ingest_tally>;

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

/// Builds the registry held nothing of but their stored state, when the store lost it.
struct lost_builds {
  std::vector<model::build_key> keys;
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
  // Apply one event and count it in its request's tally.
  caf::reacts_to<model::envelope, tally_ptr>,
  // Apply one replayed event; answers once its effects are on their way.
  caf::replies_to<replay_atom, model::envelope>::with<bool>,
  // The build as a JSON document.
  caf::replies_to<caf::get_atom>::with<std::string>,
  // The build's state, for a snapshot.
  caf::replies_to<snapshot_atom>::with<model::build>,
  // INTERNAL. Idle check armed after `n` events; offers the registry its state and
  // asks to stop.
  caf::reacts_to<caf::idle_atom, std::uint64_t>,
  // The registry agreed: stop.
  caf::reacts_to<stop_atom>>;

/// Computes streak verdicts per (source, pipeline, branch).
using streak_tracker_actor = caf::typed_actor<
  // A finished build's outcome; its verdict, or none when the build is not tracked.
  caf::replies_to<model::finished_effect>::with<std::optional<model::streak_result>>,
  // A finished build that streaks do not judge (canceled, interrupted, aborted):
  // dropped from its streak, should an earlier outcome have been judged.
  caf::reacts_to<forget_atom, model::finished_effect>,
  // Every streak as a JSON array.
  caf::replies_to<caf::get_atom>::with<std::string>,
  // Every streak, for a snapshot, when a verdict changed them since they were last
  // taken; none otherwise.
  caf::replies_to<snapshot_atom>::with<std::optional<model::streak_book>>,
  // The streaks last taken were written (true) or must be taken again (false).
  caf::reacts_to<snapshot_atom, bool>,
  // The store lost what was written: the next snapshot takes the streaks again.
  caf::reacts_to<rewrite_atom>,
  // Recovery: the streaks as last written.
  caf::reacts_to<caf::put_atom, model::streak_book>>;

/// Reads builds from the store. Its calls block, so it runs on a thread of its own:
/// the registry never waits for the store.
using build_loader_actor = caf::typed_actor<
  // A build's stored state, none when never written; errc::store_unavailable when the
  // store could not be read.
  caf::replies_to<load_atom, model::build_key>::with<std::optional<model::build>>,
  // A stored build as JSON; errc::not_found or errc::store_unavailable otherwise.
  caf::replies_to<caf::get_atom, model::build_key>::with<std::string>>;

/// Keeps every tracked build's summary: listings, the choice of what expires, and the
/// `builds` exchange's feed of changes.
using catalog_actor = caf::typed_actor<
  // A build's new summary; the `builds` exchange hears of it.
  caf::reacts_to<caf::put_atom, model::build_summary>,
  // Recovery: the summaries of every stored build.
  caf::reacts_to<caf::put_atom, std::vector<model::build_summary>>,
  // Builds matching a query, as a JSON array of summaries.
  caf::replies_to<caf::get_atom, model::build_query>::with<std::string>,
  // The status page's overview: every branch matching a query with its newest `n`
  // builds, and the builds still active, as JSON.
  caf::replies_to<caf::get_atom, model::build_query, std::size_t>::with<std::string>,
  // INTERNAL. Publish the changes queued since the last time on the `builds` exchange.
  caf::reacts_to<tick_atom>,
  // Picks the builds past their age limit; they stay listed until forgotten.
  caf::replies_to<expire_atom, expiry_rule>::with<expired_builds>,
  // Forgets expired builds (those the registry let go).
  caf::reacts_to<forget_atom, expired_builds>,
  // Forgets builds the store lost.
  caf::reacts_to<forget_atom, lost_builds>>;

/// Routes events to build actors: spawns them (from their parked or stored state),
/// stops them when idle, and knows which builds changed since they were written.
using registry_actor = caf::typed_actor<
  // Route one event to its build's actor, spawning or waking it.
  caf::reacts_to<model::envelope>,
  // Route the events of one request, in order; its answer counts what they did.
  caf::reacts_to<std::vector<model::envelope>, tally_ptr>,
  // Recovery: route one journaled event; answers once applied, so that effects reach
  // the streak tracker in journal order however fast the journal is replayed.
  caf::replies_to<replay_atom, model::envelope>::with<bool>,
  // One build as JSON: from its actor, its parked state or (through the loader) the
  // store; errc::not_found otherwise.
  caf::replies_to<caf::get_atom, model::build_key>::with<std::string>,
  // A build actor has been idle after `n` routed events and would like to stop.
  caf::reacts_to<caf::idle_atom, model::build, std::uint64_t>,
  // Recovery: the keys of every stored build (their next event loads them).
  caf::reacts_to<caf::put_atom, std::vector<model::build_key>>,
  // At most `n` builds changed since they were last written (longest waiting first),
  // each waiting since `m` snapshots ago at least.
  caf::replies_to<snapshot_atom, std::size_t, std::uint64_t>::with<snapshot_batch>,
  // The last snapshot was written (true) or must be taken again (false).
  caf::reacts_to<snapshot_atom, bool>,
  // Expired builds: forgets them, stopping their actors, and answers which it forgot.
  // A build with an event in flight or a read in progress is kept: it was active after
  // the catalog picked it.
  caf::replies_to<forget_atom, expired_builds>::with<expired_builds>,
  // The store lost what was written to it: mark every build held in memory to be
  // written again; answers the builds whose only state was in the store (gone now).
  caf::replies_to<rewrite_atom>::with<lost_builds>,
  // INTERNAL. A build's stored state arrived (or could not be read: retry later).
  caf::reacts_to<load_atom, model::build_key, std::optional<model::build>>,
  // INTERNAL. Time to read a build's stored state again after a failure.
  caf::reacts_to<retry_atom, model::build_key>>;

/// Delivers notices to the sinks through the store's outbox, exactly once each.
using notify_dispatcher_actor = caf::typed_actor<
  // A settled outcome: record it for every sink that wants it, then deliver.
  caf::reacts_to<model::notice>,
  // A delivery attempt ended.
  caf::reacts_to<delivery_report>,
  // What became of a build's notices since the process started, per sink, as JSON.
  caf::replies_to<caf::get_atom, model::build_key>::with<std::string>,
  // INTERNAL. The wait before outbox entry `id`'s next attempt is over (`n` names the wait).
  caf::reacts_to<retry_atom, std::string, std::uint64_t>,
  // INTERNAL. Time to write again what the store refused.
  caf::reacts_to<tick_atom>>;

/// Writes snapshots and sweeps expired builds on a timer.
using snapshotter_actor = caf::typed_actor<
  // INTERNAL. Time for the next snapshot (and expiry sweep when one is due).
  caf::reacts_to<tick_atom>>;

/// Holds every deadline in time order and says when one passes (SPEC §2, the design
/// card's timeout supervisor). One CAF timer at a time, for the earliest deadline:
/// no request timeout per item. A deadline is named by its owner's build key and a
/// name of the owner's choosing (`targets`, later one per waiting sink).
using timeout_supervisor_actor = caf::typed_actor<
  // Sets (or moves) deadline `name` of `key` to `due`; none cancels it.
  caf::reacts_to<deadline_atom, model::build_key, std::string, std::optional<model::timestamp>>,
  // How many deadlines are held.
  caf::replies_to<caf::get_atom>::with<std::size_t>,
  // Deadlines go off from now on. A supervisor started held waits for it: during
  // recovery a deadline must not overtake the journal's replay.
  caf::reacts_to<start_atom>,
  // INTERNAL. The timer armed for the earliest deadline went off (`n` names the timer).
  caf::reacts_to<tick_atom, std::uint64_t>>;

/// A subscriber of a topic exchange: the bindings it asked for and where it is
/// written to.
struct subscription {
  std::uint64_t id = 0; ///< unique in the process, to unsubscribe
  std::string exchange;
  std::vector<std::string> bindings; ///< AMQP topic patterns, checked already
  std::string since;                 ///< replay the backlog after this position first
  std::shared_ptr<support::push_channel> channel;
};

/// The topic exchanges (SPEC §8): each publication goes into its exchange's backlog
/// in the store, then to every subscriber with a matching binding, in publish order.
/// Its store calls block, so it runs on a thread of its own; subscribers' queues
/// never make it wait.
using exchange_actor = caf::typed_actor<
  // Publishes messages on an exchange; answers each one's position and whether it is
  // new (a message published before is not sent again); errc::store_unavailable when
  // the store refused them.
  caf::replies_to<publish_atom, std::string, std::vector<store::exchange_publication>>::with<
    std::vector<store::published>>,
  // The same for a caller outside the actors: the reply gets the fates (none when the
  // store refused them), on the exchange's thread.
  caf::reacts_to<publish_atom, std::string, std::vector<store::exchange_publication>, publish_reply>,
  // A new subscriber: the backlog after its `since` first, then what is published.
  caf::reacts_to<subscribe_atom, subscription>,
  // A subscriber went away.
  caf::reacts_to<forget_atom, std::uint64_t>>;

using store::relay_inputs;

/// A task definition as the Taskcluster queue answered it.
struct task_read {
  std::string task_id;
  std::shared_ptr<const nlohmann::json> task; ///< none when the read failed
  std::string error;
  bool retry = true; ///< the failure may pass (no answer, 5xx)
};

/// A run's artifact names as the Taskcluster queue listed them.
struct artifacts_read {
  std::string task_id;
  std::int64_t run = 0;
  std::optional<std::vector<std::string>> names; ///< none when the listing failed
};

/// Turns journaled Taskcluster queue messages into Treeherder job messages on the
/// topic exchange, each task's in the order they came.
using treeherder_publisher_actor = caf::typed_actor<
  // A journaled queue message (its body a model::relayed): publish its job messages.
  caf::reacts_to<model::envelope>,
  // Recovery: the inputs pending when last written, by id.
  caf::reacts_to<caf::put_atom, relay_inputs>,
  // For a snapshot: the pending inputs changed since they were last taken.
  caf::replies_to<snapshot_atom>::with<std::vector<store::relay_change>>,
  // Those were written (true) or must be taken again (false).
  caf::reacts_to<snapshot_atom, bool>,
  // The store lost what was written: every pending input is taken again.
  caf::reacts_to<rewrite_atom>,
  // INTERNAL. A task definition was read (or not).
  caf::reacts_to<task_read>,
  // INTERNAL. A run's artifacts were listed (or not).
  caf::reacts_to<artifacts_read>,
  // INTERNAL. The wait before a task's first input is tried again is over (`n` names
  // the wait).
  caf::reacts_to<retry_atom, std::string, std::uint64_t>>;

/// Bridges HTTP threads to actors: asks, then completes the HTTP reply.
using gateway_actor = caf::typed_actor<
  // One build.
  caf::reacts_to<caf::get_atom, model::build_key, http_reply>,
  // A build list.
  caf::reacts_to<caf::get_atom, model::build_query, http_reply>,
  // Every streak.
  caf::reacts_to<caf::get_atom, streaks_atom, http_reply>,
  // The status page's overview: branches with their newest `n` builds, active builds.
  caf::reacts_to<caf::get_atom, model::build_query, std::size_t, http_reply>,
  // A build's notifications per sink.
  caf::reacts_to<caf::get_atom, notify_atom, model::build_key, http_reply>>;

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
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(bt::actors::publish_reply)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(bt::model::notice)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(bt::actors::delivery_report)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(bt::actors::tally_ptr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<bt::model::envelope>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(bt::actors::lost_builds)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::optional<bt::model::build>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::optional<bt::model::streak_book>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<bt::model::build_key>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::optional<bt::model::timestamp>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(bt::actors::subscription)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<bt::store::exchange_publication>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<bt::store::published>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<bt::store::relay_change>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(bt::actors::relay_inputs)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(bt::actors::task_read)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(bt::actors::artifacts_read)
