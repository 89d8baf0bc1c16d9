#pragma once

#include <optional>

#include "support/json_template.hpp"

#include <string>

#include "notify/sink.hpp"

namespace bt::notify {

/// The delivery id of `e`: the same for every attempt of one (sink, build, revision),
/// so that receivers can drop a delivery they have seen.
std::string delivery_id(const outbox_entry& e);

/// The default webhook document: `delivery`, `sink`, `kind`, `revision` and the
/// build as `GET /api/v1/builds/…` shows it.
std::string webhook_body(const outbox_entry& e);

/// The headers every HTTP sink's delivery carries after its body is made:
/// `X-Buildtrack-Delivery` and `-Event`, the HMAC-SHA256 `X-Buildtrack-Signature` of
/// the body when `cfg.secret` is set, bearer or basic authorization, custom headers.
void add_delivery_headers(net::outbound_request& req, const outbox_entry& e,
                          const config::sink_config& cfg);

/// POSTs a JSON document per notice, signed with HMAC-SHA256 when a secret is set.
class webhook_sink : public sink {
public:
  /// `cfg.body_template` was checked when the configuration was read.
  explicit webhook_sink(const config::sink_config& cfg);
  net::outbound_request request(const outbox_entry& e,
                                const std::optional<std::string>& message_ref) const override;
  outcome judge(const net::inbound_response& r,
                const std::optional<std::string>& message_ref) const override {
    return judge_status(r);
  }

private:
  std::optional<support::json_template> template_; ///< none: the default document
};

} // namespace bt::notify
