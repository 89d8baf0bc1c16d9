#include "model/streak.hpp"

namespace bt::model {

bool glob_match(std::string_view p, std::string_view t) {
  // Iterative matcher with one backtrack point for the last '*'.
  size_t pi = 0, ti = 0, star = std::string_view::npos, mark = 0;
  while (ti < t.size()) {
    if (pi < p.size() && (p[pi] == '?' || p[pi] == t[ti])) {
      ++pi;
      ++ti;
    } else if (pi < p.size() && p[pi] == '*') {
      star = pi++;
      mark = ti;
    } else if (star != std::string_view::npos) {
      pi = star + 1;
      ti = ++mark;
    } else {
      return false;
    }
  }
  while (pi < p.size() && p[pi] == '*')
    ++pi;
  return pi == p.size();
}

bool glob_any(const std::vector<std::string>& patterns, std::string_view text) {
  for (auto& p : patterns)
    if (glob_match(p, text))
      return true;
  return false;
}

bool streak_book::forget(const streak_key& key, std::int64_t number) {
  auto it = streaks_.find(key);
  if (it == streaks_.end() || it->second.erase(number) == 0)
    return false;
  if (it->second.empty())
    streaks_.erase(it);
  return true;
}

streak_result streak_book::record(const streak_key& key, std::int64_t number, bool failed) {
  auto& h = streaks_[key];
  // Recording the same outcome again (a replay after recovery) keeps the verdict.
  if (auto same = h.find(number); same != h.end() && same->second.failed == failed)
    return same->second.result;
  const entry* previous = nullptr;
  if (auto it = h.lower_bound(number); it != h.begin())
    previous = &std::prev(it)->second;
  bool previous_failed = previous && previous->failed;
  streak_result r;
  if (failed) {
    r.kind = previous_failed ? verdict::still_failing : verdict::broken;
    r.failures = previous_failed ? previous->result.failures + 1 : 1;
  } else {
    r.kind = previous_failed ? verdict::fixed : verdict::passed;
    r.failures = 0;
  }
  h[number] = entry{failed, r};
  while (h.size() > history_limit_)
    h.erase(h.begin());
  return r;
}

} // namespace bt::model
