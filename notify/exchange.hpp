#pragma once

#include <string>
#include <string_view>

#include "notify/sink.hpp"

namespace bt::notify {

/// The method of a request that is published on a topic exchange (its url is the
/// exchange's name) rather than sent over HTTP.
inline constexpr std::string_view publish_method = "PUBLISH";
/// The headers of such a request that carry the routing key and the dedup id.
inline constexpr std::string_view routing_key_header = "X-Routing-Key";
inline constexpr std::string_view dedup_header = "X-Buildtrack-Delivery";

/// `<source>.<pipeline>.<kind>`: a dot inside a part becomes `_`, so that the key
/// always has three words.
std::string exchange_routing_key(const outbox_entry& e);

/// Publishes each notice on one of buildtrack's topic exchanges (SPEC §6, §8): the
/// webhook document, routed by `<source>.<pipeline>.<kind>`. Its dedup id is the
/// delivery id, so a retried or resent delivery is in the exchange once.
class exchange_sink : public sink {
public:
  using sink::sink;
  net::outbound_request request(const outbox_entry& e,
                                const std::optional<std::string>& message_ref) const override;
  outcome judge(const net::inbound_response& r,
                const std::optional<std::string>& message_ref) const override {
    return judge_status(r);
  }
};

} // namespace bt::notify
