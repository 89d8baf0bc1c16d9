#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "actors/service.hpp"
#include "config/config.hpp"
#include "net/server.hpp"
#include "sources/source.hpp"
#include "store/store.hpp"
#include "support/metrics.hpp"

namespace bt::net {

/// buildtrack's HTTP API (SPEC §3, §9): runs every source's requests through one
/// ingest pipeline (credentials first, then parse, journal, route, answer), and
/// answers reads through the service.
class api final : public handler {
public:
  api(const config::config& cfg, actors::service& svc, store::store& st);
  void handle(request&& req, responder respond) override;
  /// Until the service has recovered what the store holds, inputs and reads answer
  /// 503 with Retry-After and /readyz says why; /healthz and /metrics answer. Starts
  /// serving when constructed with `serving` true (the default).
  void set_serving(bool serving) { serving_.store(serving, std::memory_order_release); }

private:
  /// The ingest pipeline, the same for every source: authenticate, parse, journal,
  /// route, answer.
  struct input;
  void ingest(const input& in, request& req, responder& respond);
  void read_build(std::string_view path, responder& respond);
  void list_builds(std::string_view query, responder& respond);
  bool admin_allowed(const request& req) const;

  const config::config& cfg_;
  actors::service& service_;
  store::store& store_;
  /// A source and its ack latency histogram.
  struct input {
    std::unique_ptr<sources::source> source;
    support::histogram* latency;
  };
  std::vector<input> inputs_;
  std::atomic<bool> serving_{true};
};

} // namespace bt::net
