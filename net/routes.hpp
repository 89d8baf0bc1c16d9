#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <optional>
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
  /// `GET /api/v1/exchanges/{exchange}/subscribe?bind=<pattern>&…[&since=<id>]`
  /// (SPEC §8): checks the admin token, the exchange and every binding before the
  /// upgrade; then the subscriber gets the backlog after `since` and what follows.
  upgrade_plan upgrade(const request& req) override;
  /// Until the service has recovered what the store holds, inputs and reads answer
  /// 503 with Retry-After and /readyz says why; /healthz and /metrics answer. Starts
  /// serving when constructed with `serving` true (the default).
  void set_serving(bool serving) { serving_.store(serving, std::memory_order_release); }

private:
  /// The ingest pipeline, the same for every source: authenticate, parse, journal,
  /// route, answer.
  struct input;
  /// The native input and the event parsed for it, or nothing when refused.
  struct checked_native {
    const input* native = nullptr;
    std::optional<model::envelope> event;
  };
  void ingest(const input& in, request& req, responder& respond);
  /// Journals a request's accepted events (one write), routes them in order, and
  /// answers 202 once applied with how many were duplicates (or at once, for a
  /// source that does not report them); 503 when the journal refuses them.
  void accept(const input& in, std::string label, std::vector<model::envelope> events,
              responder& respond, std::chrono::steady_clock::time_point started);
  /// `/api/v1/builds/{source}/{pipeline}/{id}[/commands | /targets/{job}/messages]`.
  void builds_path(std::string_view rest, request& req, responder& respond);
  using parse_fn = std::function<sources::checked<model::envelope>(
    std::string_view content_type, std::string_view body, model::timestamp now)>;
  /// Authenticates a message or command with the native token, then parses it; on
  /// failure answers and returns no input.
  checked_native parse_native(request& req, responder& respond, const char* label,
                              const parse_fn& parse);
  void post_message(model::build_key key, std::string target, request& req, responder& respond);
  void post_command(model::build_key key, request& req, responder& respond);
  void read_build(const model::build_key& key, responder& respond);
  void list_builds(std::string_view query, responder& respond);
  /// `GET /api/v1/overview?source=&pipeline=&branch=&builds=`: the status page's view.
  void overview(std::string_view query, responder& respond);
  /// The filters a listing takes (`source`, `pipeline`, `branch`, and `state` when
  /// `with_state`) and its count parameter `count_name` (1 to `max_count`, into
  /// `count`); answers 400 naming the parameter and returns none when one is wrong.
  std::optional<model::build_query> build_filters(std::string_view query, bool with_state,
                                                  const char* count_name, long max_count,
                                                  std::size_t& count, responder& respond) const;
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
