#pragma once

// Every typed actor interface of buildtrack, one comment line per handler.
// Included only by actor implementation files: keep CAF out of widely used headers.

#include <cstdint>
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

namespace bt::actors {

/// Completes an HTTP request from an actor: status and JSON body. Runs on a CAF
/// thread; the HTTP layer posts the result back to its connection's strand.
using http_reply = std::function<void(int status, std::string body)>;

using streaks_atom = caf::atom_constant<caf::atom("streaks")>;
using stop_atom = caf::atom_constant<caf::atom("stop")>;

/// Errors actors answer with.
enum class errc : std::uint8_t {
  /// No such build.
  not_found = 1,
};

/// One build: applies every event of that build in arrival order to the pure model.
using build_actor = caf::typed_actor<
  // Apply one event.
  caf::reacts_to<model::envelope>,
  // The build as a JSON document.
  caf::replies_to<caf::get_atom>::with<std::string>,
  // Idle check armed after `n` events; asks the registry to stop if none came since.
  caf::reacts_to<caf::idle_atom, std::uint64_t>,
  // The registry agreed: save and stop.
  caf::reacts_to<stop_atom>>;

/// Computes streak verdicts per (source, pipeline, branch).
using streak_tracker_actor = caf::typed_actor<
  // A finished build's outcome; its verdict, or none when the build is not tracked.
  caf::replies_to<model::finished_effect>::with<std::optional<model::streak_result>>,
  // Every streak as a JSON array.
  caf::replies_to<caf::get_atom>::with<std::string>>;

/// Maps build keys to build actors, spawning and stopping them.
using registry_actor = caf::typed_actor<
  // Route one event to its build's actor, spawning or waking it.
  caf::reacts_to<model::envelope>,
  // One build as JSON, from its actor or the store; errc::not_found otherwise.
  caf::replies_to<caf::get_atom, model::build_key>::with<std::string>,
  // Builds matching a query, as a JSON array of summaries.
  caf::replies_to<caf::get_atom, model::build_query>::with<std::string>,
  // A build actor's new summary, for listings.
  caf::reacts_to<caf::put_atom, model::build_summary>,
  // A finished build's outcome changed: ask the streak tracker, route the verdict back.
  caf::reacts_to<model::finished_effect>,
  // A build actor has been idle after `n` routed events and would like to stop.
  caf::reacts_to<caf::idle_atom, model::build_key, std::uint64_t>>;

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
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(bt::model::build_key)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(bt::model::build_query)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(bt::model::build_summary)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(bt::model::finished_effect)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::optional<bt::model::streak_result>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(bt::actors::http_reply)
