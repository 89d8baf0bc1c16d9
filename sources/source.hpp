#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "model/event.hpp"
#include "sources/rejection.hpp"

namespace bt::sources {

/// What a source sees of one HTTP request: no Beast, no sockets.
struct inbound {
  /// A request header's value, empty when absent.
  std::function<std::string_view(std::string_view name)> header;
  std::string_view body;
  model::timestamp now; ///< when the request was read
};

/// What one delivery means once parsed.
struct delivery {
  enum kind_t { events, ping, ignored } kind = events;
  std::string label; ///< a bounded metric label for its event type
  std::vector<model::envelope> envelopes;
};

/// One CI system's input: where it is posted, how its credentials are checked, and
/// how its payloads become model events. Everything else (order of checks, journal,
/// routing, answers, metrics, logs) is the ingest pipeline's, the same for every
/// source. A new source is a file in sources/ and a line in make_sources().
class source {
public:
  virtual ~source() = default;
  /// Its name in metrics and logs, e.g. "buildkite".
  virtual std::string_view name() const = 0;
  /// The path it is posted to, e.g. "/webhooks/buildkite".
  virtual std::string_view path() const = 0;
  /// Whether its answer says how many events were duplicates. Such a request is
  /// answered once its events were applied, not only journaled.
  virtual bool reports_duplicates() const { return false; }
  /// Checks the request's credentials, before anything else about it is looked at:
  /// a 401 rejection, or nothing when it is authentic.
  virtual std::optional<rejection> authenticate(const inbound& in) const = 0;
  /// A bounded metric label for the event type of a request that may not parse.
  virtual std::string label(const inbound& in) const = 0;
  /// Turns an authenticated request into model events, all or none.
  virtual checked<delivery> parse(const inbound& in) const = 0;
};

/// Every source buildtrack ingests, configured from `cfg.sources`. `cfg` must outlive
/// them. Throws std::runtime_error when a source's schemas cannot be read.
std::vector<std::unique_ptr<source>> make_sources(const config::config& cfg);

/// Whether a Content-Type value names `type` (lower case): RFC 9110 §8.3.1, the type
/// and subtype are case-insensitive, parameters follow a ';', white space may
/// surround them.
bool is_media_type(std::string_view value, std::string_view type);

/// Checks `Authorization: Bearer <token>` in constant time: a 401 rejection naming
/// the header, or nothing. An empty `token` (not configured) refuses every request.
std::optional<rejection> check_bearer(std::string_view authorization, std::string_view token);

} // namespace bt::sources
