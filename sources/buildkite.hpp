#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "model/event.hpp"
#include "sources/rejection.hpp"
#include "sources/source.hpp"

namespace bt::sources {

/// The request headers a Buildkite delivery is judged by (empty when absent).
struct buildkite_headers {
  std::string_view event;     ///< X-Buildkite-Event
  std::string_view token;     ///< X-Buildkite-Token
  std::string_view signature; ///< X-Buildkite-Signature: timestamp=<unix>,signature=<hex>
};

/// Checks a delivery's credentials: the token in constant time, or the HMAC-SHA256
/// signature of `"<timestamp>.<body>"` within the replay window around `now`.
/// Returns a 401 rejection, or nothing when the delivery is authentic.
std::optional<rejection> buildkite_authenticate(const config::buildkite_config& cfg,
                                                const buildkite_headers& headers,
                                                std::string_view body, model::timestamp now);

/// What a Buildkite delivery means.
struct buildkite_delivery {
  enum kind_t { events, ping, ignored } kind = events;
  std::string event; ///< the event name, for metrics
  std::vector<model::envelope> envelopes;
};

/// Turns an authenticated delivery into model events. `event_name` is the
/// X-Buildkite-Event header (the body's `event` is used when it is empty).
checked<buildkite_delivery> buildkite_parse(std::string_view event_name, std::string_view body,
                                            model::timestamp now);

/// A bounded metric label for an event name: the name itself for the events this
/// source handles, "agent" for agent events, "unsupported" for anything else, so
/// that senders cannot grow the metrics without bound.
std::string_view buildkite_event_label(std::string_view event);

/// Buildkite's rule for whether a job attempt fails its build (SPEC §3.1): not soft
/// failed, and either `failed` with an exit status above 0, or `timed_out` whatever
/// the exit status (the seed let a timed-out job without one pass, while Buildkite
/// failed the build).
bool buildkite_fails(model::job_state state, std::optional<std::int64_t> exit_status,
                     bool soft_failed);

/// The Buildkite webhook, `POST /webhooks/buildkite` (SPEC §3.1). `cfg` must outlive it.
std::unique_ptr<source> make_buildkite_source(const config::buildkite_config& cfg);

/// The header value Buildkite would send for `body` signed at `unix_seconds`.
std::string buildkite_signature(std::string_view secret, long long unix_seconds,
                                std::string_view body);

} // namespace bt::sources
