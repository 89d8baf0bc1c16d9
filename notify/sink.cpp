#include "notify/sink.hpp"

#include <algorithm>
#include <cmath>
#include <ctime>

#include <nlohmann/json.hpp>

#include "model/codec.hpp"
#include "model/streak.hpp"
#include "notify/cdevents.hpp"
#include "notify/exchange.hpp"
#include "notify/slack.hpp"
#include "notify/webhook.hpp"

namespace bt::notify {

std::string encode(const outbox_entry& e) {
  // The build is written by the lossless model codec, embedded as is (with its own
  // format version). Version 1 entries had no "v".
  std::string out = R"({"v":2,"sink":)";
  out += nlohmann::json(e.sink).dump();
  out += R"(,"kind":")";
  out += model::to_string(e.notice.kind);
  out += R"(","attempts":)";
  out += std::to_string(e.attempts);
  if (e.notice.job)
    out += R"(,"job":)" + nlohmann::json(*e.notice.job).dump();
  out += R"(,"build":)";
  out += model::codec::encode(e.notice.subject);
  out += "}";
  return out;
}

std::optional<outbox_entry> decode_outbox_entry(std::string_view text) {
  auto doc = nlohmann::json::parse(text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object())
    return std::nullopt;
  try {
    if (doc.value("v", 1) > 2)
      return std::nullopt; // written by a newer buildtrack
    outbox_entry e;
    e.sink = doc.at("sink").get<std::string>();
    auto kind = model::parse_notice_kind(doc.at("kind").get<std::string>());
    auto build = model::codec::decode_build(doc.at("build").dump());
    if (!kind || !build)
      return std::nullopt;
    e.notice = {std::move(*build), *kind};
    if (auto job = doc.find("job"); job != doc.end())
      e.notice.job = job->get<std::string>();
    e.attempts = doc.at("attempts").get<std::uint32_t>();
    return e;
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

sink::sink(config::sink_config cfg) : cfg_{std::move(cfg)} {
  for (auto& k : cfg_.on)
    if (auto kind = model::parse_notice_kind(k))
      on_.push_back(*kind);
}

bool sink::follows(const model::build& b) const {
  return model::sink_follows(cfg_.pipelines, cfg_.branches, b);
}

bool sink::wants(const model::notice& n) const {
  return follows(n.subject) && model::wanted(on_, n.kind);
}

outcome sink::judge_status(const net::inbound_response& r) {
  outcome out;
  if (r.status == 0) {
    out.detail = r.error;
    return out;
  }
  out.detail = "HTTP " + std::to_string(r.status);
  if (r.status >= 200 && r.status < 300) {
    out.kind = outcome::delivered;
    return out;
  }
  if (r.retry_after)
    out.retry_after = parse_retry_after(*r.retry_after, std::chrono::system_clock::now());
  bool transient = r.status == 408 || r.status == 425 || r.status == 429 || r.status >= 500;
  out.kind = transient ? outcome::retry : outcome::give_up;
  return out;
}

std::unique_ptr<sink> make_sink(const config::sink_config& cfg,
                                const std::vector<config::person_config>& people) {
  if (cfg.kind == "slack")
    return std::make_unique<slack_sink>(cfg, people);
  if (cfg.kind == "exchange")
    return std::make_unique<exchange_sink>(cfg);
  if (cfg.kind == "cdevents")
    return std::make_unique<cdevents_sink>(cfg);
  return std::make_unique<webhook_sink>(cfg);
}

std::chrono::milliseconds backoff(const config::retry_config& policy, std::uint32_t failed,
                                  double unit) {
  double base = static_cast<double>(policy.initial_backoff.count());
  double cap = static_cast<double>(policy.max_backoff.count());
  double grown = std::min(cap, base * std::pow(2.0, std::max<int>(0, static_cast<int>(failed) - 1)));
  return std::chrono::milliseconds{static_cast<long long>(grown / 2 + grown / 2 * unit)};
}

std::optional<std::chrono::milliseconds>
parse_retry_after(std::string_view value, std::chrono::system_clock::time_point now) {
  constexpr auto cap = std::chrono::hours{1};
  while (!value.empty() && value.front() == ' ')
    value.remove_prefix(1);
  while (!value.empty() && value.back() == ' ')
    value.remove_suffix(1);
  if (value.empty())
    return std::nullopt;
  if (value.find_first_not_of("0123456789") == std::string_view::npos) {
    if (value.size() > 6)
      return cap;
    return std::min<std::chrono::milliseconds>(cap, std::chrono::seconds{std::stol(std::string{value})});
  }
  // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT".
  std::tm tm{};
  std::string text{value};
  if (!strptime(text.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm))
    return std::nullopt;
  auto at = std::chrono::system_clock::from_time_t(timegm(&tm));
  auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(at - now);
  return std::clamp<std::chrono::milliseconds>(wait, std::chrono::milliseconds{0}, cap);
}

} // namespace bt::notify
