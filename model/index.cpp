#include "model/index.hpp"

#include <algorithm>
#include <map>
#include <tuple>

#include "model/notice.hpp"

namespace bt::model {

namespace {

bool matches(const build_query& q, const build_summary& s) {
  return (q.source.empty() || s.key.source == q.source)
         && (q.pipeline.empty() || s.key.pipeline == q.pipeline)
         && (q.branch.empty() || s.branch == q.branch);
}

bool updated_later(const build_summary& a, const build_summary& b) {
  if (a.updated != b.updated)
    return a.updated > b.updated;
  return a.key < b.key;
}

/// Newer in a branch's row: by number when both have one, else by update time.
bool newer_in_branch(const build_summary& a, const build_summary& b) {
  if (a.number && b.number && *a.number != *b.number)
    return *a.number > *b.number;
  return updated_later(a, b);
}

} // namespace

build_summary summarize(const build& b, const collation_rules* waits) {
  build_summary s{b.key, b.info.branch, b.info.number, b.state, b.updated, b.streak};
  s.failed_jobs = b.failing;
  if (b.targets != 0) // only a job that ever waited can wait now
    for (auto& [group, j] : b.jobs)
      if (j.waiting())
        s.targets.push_back({group, j.wait->since, j.wait->deadline});
  for (auto& [sink, c] : b.collations) {
    if (c.ended())
      continue;
    waiting_statistics w{sink, {}, std::nullopt};
    auto rule = waits ? waits->find(sink) : collation_rules::const_iterator{};
    if (waits && rule != waits->end()) {
      if (!sink_follows(rule->second.pipelines, rule->second.branches, b))
        continue; // the sink never hears of this build: nothing waits for it
      for (auto& name : rule->second.required)
        if (!c.received.contains(name))
          w.missing.push_back(name);
      if (b.updated)
        w.until = evaluate(c, rule->second, *b.updated).next;
    }
    s.statistics.push_back(std::move(w));
  }
  return s;
}

bool same_listing(const build_summary& a, const build_summary& b) {
  return std::tie(a.key, a.branch, a.number, a.state, a.streak, a.failed_jobs, a.targets, a.statistics)
         == std::tie(b.key, b.branch, b.number, b.state, b.streak, b.failed_jobs, b.targets, b.statistics);
}

std::vector<build_summary> build_index::list(const build_query& q) const {
  std::vector<build_summary> out;
  for (auto& [_, s] : by_key_)
    if (matches(q, s) && (!q.state || s.state == *q.state))
      out.push_back(s);
  auto n = std::min(q.limit, out.size());
  std::partial_sort(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(n), out.end(), updated_later);
  out.resize(n);
  return out;
}

build_index::overview build_index::overview_of(const build_query& q, std::size_t per_branch) const {
  using group_key = std::tuple<const std::string&, const std::string&, const std::string&>;
  std::map<group_key, std::vector<const build_summary*>> groups;
  overview out;
  for (auto& [_, s] : by_key_) {
    if (!matches(q, s))
      continue;
    groups[group_key{s.key.source, s.key.pipeline, s.branch}].push_back(&s);
    if (!is_final(s.state) || !s.statistics.empty())
      out.active.push_back(&s);
  }
  auto deref = [](auto order) {
    return [order](const build_summary* a, const build_summary* b) { return order(*a, *b); };
  };
  for (auto& [key, builds] : groups) {
    auto n = std::min(per_branch, builds.size());
    std::partial_sort(builds.begin(), builds.begin() + static_cast<std::ptrdiff_t>(n), builds.end(),
                      deref(newer_in_branch));
    builds.resize(n);
    out.branches.push_back({std::get<0>(key), std::get<1>(key), std::get<2>(key), std::move(builds)});
  }
  std::sort(out.active.begin(), out.active.end(), deref(updated_later));
  return out;
}

} // namespace bt::model
