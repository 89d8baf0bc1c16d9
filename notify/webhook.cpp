#include "notify/webhook.hpp"

#include <nlohmann/json.hpp>

#include "model/json.hpp"
#include "support/crypto.hpp"

namespace bt::notify {

std::string delivery_id(const outbox_entry& e) {
  return e.sink + ":" + e.notice.subject.key.str() + ":" + std::to_string(e.revision());
}

std::string webhook_body(const outbox_entry& e) {
  nlohmann::json doc{{"delivery", delivery_id(e)},
                     {"sink", e.sink},
                     {"kind", model::to_string(e.notice.kind)},
                     {"revision", e.revision()},
                     {"build", model::to_json(e.notice.subject)}};
  // A notice that waited for statistics says which criterion released it; the
  // statistics received are the build's.
  auto& b = e.notice.subject;
  if (auto c = b.collations.find(e.sink);
      c != b.collations.end() && c->second.released && c->second.released_revision == b.revision) {
    doc["released_by"] = model::to_string(*c->second.released);
    doc["statistics"] = b.statistics;
  }
  return model::to_text(doc);
}

net::outbound_request webhook_sink::request(const outbox_entry& e,
                                            const std::optional<std::string>&) const {
  auto& cfg = config();
  net::outbound_request req{"POST", cfg.url, {}, webhook_body(e)};
  req.headers.emplace_back("Content-Type", "application/json");
  req.headers.emplace_back("X-Buildtrack-Delivery", delivery_id(e));
  req.headers.emplace_back("X-Buildtrack-Event", std::string{model::to_string(e.notice.kind)});
  if (!cfg.secret.empty())
    req.headers.emplace_back("X-Buildtrack-Signature",
                             "sha256=" + support::hmac_sha256_hex(cfg.secret, req.body));
  if (!cfg.bearer_token.empty())
    req.headers.emplace_back("Authorization", "Bearer " + cfg.bearer_token);
  else if (!cfg.basic_user.empty())
    req.headers.emplace_back("Authorization",
                             "Basic " + support::base64(cfg.basic_user + ":" + cfg.basic_password));
  for (auto& h : cfg.headers)
    req.headers.push_back(h);
  return req;
}

} // namespace bt::notify
