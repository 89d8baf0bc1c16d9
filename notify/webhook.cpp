#include "notify/webhook.hpp"

#include <nlohmann/json.hpp>

#include "model/json.hpp"
#include "support/crypto.hpp"

namespace bt::notify {

std::string delivery_id(const outbox_entry& e) {
  auto base = e.sink + ":" + e.notice.subject.key.str() + ":";
  return e.notice.job ? base + "job:" + *e.notice.job : base + std::to_string(e.revision());
}

std::string webhook_body(const outbox_entry& e) {
  return model::notice_text(e.notice, e.sink, delivery_id(e));
}

webhook_sink::webhook_sink(const config::sink_config& cfg) : sink{cfg} {
  if (cfg.body_template.empty())
    return;
  std::string error;
  template_ = support::json_template::compile(cfg.body_template, error);
  if (!template_)
    throw std::invalid_argument{"notifications " + cfg.name + ": " + error};
}

net::outbound_request webhook_sink::request(const outbox_entry& e,
                                            const std::optional<std::string>&) const {
  auto& cfg = config();
  auto body = template_
                ? template_->render(model::notice_variables(e.notice, e.sink, delivery_id(e)))
                : webhook_body(e);
  net::outbound_request req{"POST", cfg.url, {}, std::move(body)};
  req.headers.emplace_back("Content-Type", cfg.content_type);
  add_delivery_headers(req, e, cfg);
  return req;
}

void add_delivery_headers(net::outbound_request& req, const outbox_entry& e,
                          const config::sink_config& cfg) {
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
}

} // namespace bt::notify
