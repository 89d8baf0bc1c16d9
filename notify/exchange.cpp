#include "notify/exchange.hpp"

#include "model/topic.hpp"
#include "notify/webhook.hpp"

namespace bt::notify {

std::string exchange_routing_key(const outbox_entry& e) {
  return model::build_routing_key(e.notice.subject.key, model::to_string(e.notice.kind));
}

net::outbound_request exchange_sink::request(const outbox_entry& e,
                                             const std::optional<std::string>&) const {
  net::outbound_request req{std::string{publish_method}, config().exchange, {}, webhook_body(e)};
  req.headers.emplace_back(routing_key_header, exchange_routing_key(e));
  req.headers.emplace_back(dedup_header, delivery_id(e));
  return req;
}

} // namespace bt::notify
