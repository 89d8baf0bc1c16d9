#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "model/notice.hpp"
#include "net/client.hpp"

namespace bt::notify {

/// A notice on its way to one sink: one outbox entry. Its id is `sink|build key`:
/// a newer revision of the same build replaces an older one not yet delivered.
struct outbox_entry {
  std::string sink;
  model::notice notice;
  std::uint32_t attempts = 0; ///< attempts that failed so far

  /// `sink|build`, and `|job:<attempt>` for a job notice.
  std::string id() const {
    auto id = id_of(sink, notice.subject.key);
    return notice.job ? id + "|job:" + *notice.job : id;
  }
  static std::string id_of(const std::string& sink, const model::build_key& build) {
    return sink + "|" + build.str();
  }
  std::uint64_t revision() const { return notice.subject.revision; }
};

/// JSON text for the store; decode(encode(e)) == e.
std::string encode(const outbox_entry& e);
std::optional<outbox_entry> decode_outbox_entry(std::string_view text);

/// How one delivery attempt ended.
struct outcome {
  enum kind_t { delivered, retry, give_up } kind = retry;
  std::string detail; ///< why, for logs and dead letters
  std::optional<std::chrono::milliseconds> retry_after; ///< the receiver asked us to wait
  std::optional<std::string> message_ref; ///< delivered: where the message now is
  bool forget_message = false;            ///< the earlier message is gone: post anew
};

/// A configured destination: decides what it wants, builds the request, judges
/// the answer. Pure: the dispatcher does the I/O.
class sink {
public:
  explicit sink(config::sink_config cfg);
  virtual ~sink() = default;

  const config::sink_config& config() const { return cfg_; }

  /// Whether the build passes this sink's branch and pipeline filters.
  bool follows(const model::build& b) const;
  /// Whether this sink wants `n`: it follows the build and listens for its kind.
  bool wants(const model::notice& n) const;
  /// Whether the sink keeps one message per build that later notices edit (Slack).
  /// Such a message is edited whatever the new kind, so that it never goes stale.
  virtual bool edits_in_place() const { return false; }

  /// The request that delivers `e`; `message_ref` is this sink's earlier message
  /// for the build, when there is one.
  virtual net::outbound_request request(const outbox_entry& e,
                                        const std::optional<std::string>& message_ref) const = 0;
  /// Judges the answer to `request(e, message_ref)`.
  virtual outcome judge(const net::inbound_response& r,
                        const std::optional<std::string>& message_ref) const = 0;

protected:
  /// Retry on no answer, 408, 425, 429 and 5xx (with Retry-After when given); give up on
  /// other 4xx; delivered on 2xx.
  static outcome judge_status(const net::inbound_response& r);

private:
  config::sink_config cfg_;
  std::vector<model::notice_kind> on_;
};

/// Builds the sink `cfg` describes.
std::unique_ptr<sink> make_sink(const config::sink_config& cfg,
                                const std::vector<config::person_config>& people);

/// Delay before attempt `failed + 1`, with full jitter: uniform in
/// [base/2, base] where base = initial * 2^(failed-1), capped at max. `unit` in [0, 1).
std::chrono::milliseconds backoff(const config::retry_config& policy, std::uint32_t failed,
                                  double unit);

/// A Retry-After value: delta seconds or an HTTP date, relative to `now`. Nothing
/// when unparsable. Capped at one hour.
std::optional<std::chrono::milliseconds>
parse_retry_after(std::string_view value, std::chrono::system_clock::time_point now);

} // namespace bt::notify
