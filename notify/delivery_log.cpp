#include "notify/delivery_log.hpp"

#include <nlohmann/json.hpp>

namespace bt::notify {

std::string_view to_string(delivery_state s) {
  switch (s) {
    case delivery_state::queued: return "queued";
    case delivery_state::sending: return "sending";
    case delivery_state::retrying: return "retrying";
    case delivery_state::delivered: return "delivered";
    case delivery_state::dead_lettered: return "dead_lettered";
  }
  return "queued";
}

void delivery_log::note(const outbox_entry& e, delivery_state s, model::timestamp at, std::string detail,
                        std::optional<model::timestamp> next_attempt) {
  auto build = e.notice.subject.key.str();
  auto it = by_build_.find(build);
  if (it == by_build_.end()) {
    if (order_.size() >= max_builds_ && !order_.empty()) {
      by_build_.erase(order_.front());
      order_.pop_front();
    }
    order_.push_back(build);
    it = by_build_.emplace(std::move(build), decltype(by_build_)::mapped_type{}).first;
  }
  auto& r = it->second[e.id()];
  r.sink = e.sink;
  r.job = e.notice.job;
  r.kind = e.notice.job ? "job_finished" : std::string{model::to_string(e.notice.kind)};
  r.revision = e.revision();
  r.state = s;
  r.attempts = e.attempts;
  r.detail = std::move(detail);
  r.at = at;
  r.next_attempt = next_attempt;
}

nlohmann::json delivery_log::of(const model::build_key& key) const {
  auto out = nlohmann::json::array();
  auto it = by_build_.find(key.str());
  if (it == by_build_.end())
    return out;
  for (auto& [_, r] : it->second) {
    nlohmann::json j = {{"sink", r.sink},
                        {"kind", r.kind},
                        {"revision", r.revision},
                        {"state", to_string(r.state)},
                        {"attempts", r.attempts},
                        {"at", model::format_time(r.at)}};
    j["job"] = r.job ? nlohmann::json(*r.job) : nlohmann::json(nullptr);
    if (!r.detail.empty())
      j["detail"] = r.detail;
    if (r.next_attempt)
      j["next_attempt"] = model::format_time(*r.next_attempt);
    out.push_back(std::move(j));
  }
  return out;
}

} // namespace bt::notify
