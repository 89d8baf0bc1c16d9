#include "model/collation.hpp"

#include <algorithm>

namespace bt::model {

std::string_view to_string(release_reason r) {
  switch (r) {
    case release_reason::all_statistics: return "all_statistics";
    case release_reason::build_completed_timeout: return "build_completed_timeout";
    case release_reason::failure_timeout: return "failure_timeout";
  }
  return "unknown";
}

std::string trim_statistic(std::string_view name) {
  auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  auto first = std::find_if_not(name.begin(), name.end(), blank);
  auto last = std::find_if_not(name.rbegin(), name.rend(), blank).base();
  return first < last ? std::string{first, last} : std::string{};
}

void collate_statistic(collation& c, const collation_rule& rule, std::string_view name,
                       timestamp now) {
  if (c.ended())
    return;
  auto key = trim_statistic(name);
  c.last_statistic = now;
  if (std::find(rule.required.begin(), rule.required.end(), key) != rule.required.end())
    c.received.insert(std::move(key));
}

collation_step evaluate(const collation& c, const collation_rule& rule, timestamp now) {
  collation_step step;
  if (c.ended())
    return step;
  auto give_up = c.started + rule.failure_timeout;
  if (!c.finished) {
    // Criterion 5 needs a finished build: one still running is not announced, its
    // wait is dropped (and its finish, later, sends at once).
    if (now >= give_up)
      step.drop = true;
    else
      step.next = give_up;
    return step;
  }
  bool all = !rule.required.empty()
             && std::all_of(rule.required.begin(), rule.required.end(),
                            [&](const std::string& name) { return c.received.contains(name); });
  auto quiet_since = std::max(*c.finished, c.last_statistic.value_or(*c.finished));
  auto quiet_end = quiet_since + rule.build_completed_timeout;
  if (all)
    step.release = release_reason::all_statistics;
  else if (now >= quiet_end)
    step.release = release_reason::build_completed_timeout;
  else if (now >= give_up)
    step.release = release_reason::failure_timeout;
  else
    step.next = std::min(quiet_end, give_up);
  return step;
}

collation_step settle(collation& c, const collation_rule& rule, timestamp now) {
  auto step = evaluate(c, rule, now);
  if (step.release)
    c.released = step.release;
  if (step.drop)
    c.dropped = true;
  return step;
}

} // namespace bt::model
