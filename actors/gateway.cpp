#include "actors/gateway.hpp"

#include <caf/all.hpp>
#include <nlohmann/json.hpp>

#include "support/log.hpp"

namespace bt::actors {
namespace {

std::string error_body(const char* code, const std::string& message) {
  return nlohmann::json{{"error", {{"code", code}, {"message", message}}}}.dump();
}

/// Completes `reply` with a request's answer, or with the error it ended in.
auto answer(http_reply reply) {
  return [reply](std::string& body) { reply(200, std::move(body)); };
}

auto fail(http_reply reply) {
  return [reply](caf::error& err) {
    if (err == errc::not_found) {
      reply(404, error_body("not_found", "no such build"));
      return;
    }
    if (err == errc::store_unavailable) {
      reply(503, error_body("store_unavailable", "the store cannot be read; retry later"));
      return;
    }
    support::log(support::log_level::error, "read failed", {{"reason", caf::to_string(err)}});
    reply(500, error_body("internal", "the read could not be completed"));
  };
}

} // namespace

gateway_actor::behavior_type gateway(gateway_actor::stateful_pointer<gateway_state> self,
                                     registry_actor registry, catalog_actor catalog,
                                     streak_tracker_actor tracker, notify_dispatcher_actor dispatcher) {
  self->state.registry = std::move(registry);
  self->state.catalog = std::move(catalog);
  self->state.tracker = std::move(tracker);
  self->state.dispatcher = std::move(dispatcher);
  return {
    [=](caf::get_atom, const model::build_key& key, http_reply& reply) {
      self->request(self->state.registry, caf::infinite, caf::get_atom::value, key)
        .then(answer(reply), fail(reply));
    },
    [=](caf::get_atom, const model::build_query& q, http_reply& reply) {
      self->request(self->state.catalog, caf::infinite, caf::get_atom::value, q)
        .then(answer(reply), fail(reply));
    },
    [=](caf::get_atom, streaks_atom, http_reply& reply) {
      self->request(self->state.tracker, caf::infinite, caf::get_atom::value)
        .then(answer(reply), fail(reply));
    },
    [=](caf::get_atom, const model::build_query& q, std::size_t per_branch, http_reply& reply) {
      self->request(self->state.catalog, caf::infinite, caf::get_atom::value, q, per_branch)
        .then(answer(reply), fail(reply));
    },
    [=](caf::get_atom, notify_atom, const model::build_key& key, http_reply& reply) {
      if (!self->state.dispatcher)
        return reply(200, "[]");
      self->request(self->state.dispatcher, caf::infinite, caf::get_atom::value, key)
        .then(answer(reply), fail(reply));
    },
  };
}

} // namespace bt::actors
