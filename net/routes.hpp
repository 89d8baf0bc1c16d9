#pragma once

#include <atomic>

#include "actors/service.hpp"
#include "config/config.hpp"
#include "net/server.hpp"
#include "store/store.hpp"

namespace bt::net {

/// buildtrack's HTTP API (SPEC §3, §9): decodes requests, checks credentials,
/// journals accepted events, routes them, and answers reads through the service.
class api final : public handler {
public:
  api(const config::config& cfg, actors::service& svc, store::store& st);
  void handle(request&& req, responder respond) override;
  /// Until the service has recovered what the store holds, inputs and reads answer
  /// 503 with Retry-After and /readyz says why; /healthz and /metrics answer. Starts
  /// serving when constructed with `serving` true (the default).
  void set_serving(bool serving) { serving_.store(serving, std::memory_order_release); }

private:
  void buildkite(request& req, responder& respond);
  void read_build(std::string_view path, responder& respond);
  void list_builds(std::string_view query, responder& respond);
  bool admin_allowed(const request& req) const;

  const config::config& cfg_;
  actors::service& service_;
  store::store& store_;
  std::atomic<bool> serving_{true};
};

} // namespace bt::net
