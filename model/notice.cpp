#include "model/notice.hpp"

#include <algorithm>
#include <array>

#include "model/streak.hpp"

namespace bt::model {
namespace {

constexpr std::array<std::string_view, 7> kind_names{"failed", "broken",    "still_failing",
                                                     "fixed",  "passed",    "recovered",
                                                     "job_finished"};

bool failing(notice_kind k) {
  return k == notice_kind::failed || k == notice_kind::broken || k == notice_kind::still_failing;
}

} // namespace

std::string_view to_string(notice_kind k) {
  return kind_names[static_cast<size_t>(k)];
}

std::optional<notice_kind> parse_notice_kind(std::string_view s) {
  for (size_t i = 0; i < kind_names.size(); ++i)
    if (kind_names[i] == s)
      return static_cast<notice_kind>(i);
  return std::nullopt;
}

bool streak_judges(build_state state, bool personal, const std::string& branch,
                   const std::vector<std::string>& tracked_branches) {
  return is_decisive(state) && !personal && glob_any(tracked_branches, branch);
}

bool streak_judges(const finished_effect& f, const std::vector<std::string>& tracked_branches) {
  return streak_judges(f.state, f.personal, f.branch, tracked_branches);
}

bool streak_forgets(const finished_effect& f, const std::vector<std::string>& tracked_branches) {
  return !is_decisive(f.state) && is_final(f.state) && !f.personal && glob_any(tracked_branches, f.branch);
}

bool settled(const build& b, const std::vector<std::string>& tracked_branches) {
  if (!b.is_finished())
    return false;
  if (b.streak && b.streak->revision == b.revision)
    return true;
  return !streak_judges(b.state, b.info.personal, b.info.branch, tracked_branches);
}

std::optional<notice> due_notice(const build& b, std::uint64_t noticed,
                                 const std::vector<std::string>& tracked_branches) {
  if (b.revision <= noticed || !settled(b, tracked_branches))
    return std::nullopt;
  auto kind = notice_kind_of(b);
  if (!kind)
    return std::nullopt;
  return notice{b, *kind};
}

std::optional<notice_kind> notice_kind_of(const build& b) {
  if (!b.is_finished())
    return std::nullopt;
  // A verdict for an older outcome says nothing about this one.
  const streak_result* verdict = b.streak && b.streak->revision == b.revision ? &*b.streak : nullptr;
  if (b.state == build_state::failed) {
    if (verdict && verdict->kind == verdict::broken)
      return notice_kind::broken;
    if (verdict && verdict->kind == verdict::still_failing)
      return notice_kind::still_failing;
    return notice_kind::failed;
  }
  if (b.state != build_state::passed)
    return std::nullopt;
  if (verdict && verdict->kind == verdict::fixed)
    return notice_kind::fixed;
  if (b.any_job(&job::fixed))
    return notice_kind::recovered;
  return notice_kind::passed;
}

bool wanted(const std::vector<notice_kind>& on, notice_kind k) {
  // job_finished is about a job, not the build's outcome: only asked for by name.
  if (k == notice_kind::job_finished)
    return std::find(on.begin(), on.end(), k) != on.end();
  return std::any_of(on.begin(), on.end(), [k](notice_kind o) {
    return o == k || (o == notice_kind::failed && failing(k))
           || (o == notice_kind::passed && !failing(k));
  });
}

bool waits_for_release(const build& subject, const std::string& sink) {
  auto c = subject.collations.find(sink);
  return c != subject.collations.end() && !c->second.dropped
         && (!c->second.released || c->second.released_revision == subject.revision);
}

std::vector<notice> due_releases(const build& b, const std::map<std::string, std::uint64_t>& released,
                                 const std::vector<std::string>& tracked_branches) {
  std::vector<notice> out;
  if (b.collations.empty() || !settled(b, tracked_branches))
    return out;
  auto kind = notice_kind_of(b);
  if (!kind)
    return out;
  for (auto& [sink, c] : b.collations) {
    if (!c.released || c.released_revision != b.revision)
      continue;
    if (auto told = released.find(sink); told != released.end() && told->second >= b.revision)
      continue;
    out.push_back(notice{b, *kind, sink, c.released});
  }
  return out;
}

notice job_notice(const build& b, std::string attempt) {
  return notice{b, notice_kind::job_finished, std::nullopt, std::nullopt, std::move(attempt)};
}

std::vector<notice> unrecorded_job_notices(const build& b, std::uint64_t recorded) {
  std::vector<notice> out;
  if (b.announced_jobs <= recorded)
    return out;
  for (auto& [group, j] : b.jobs)
    for (auto& a : j.attempts)
      if (a.announced)
        out.push_back(job_notice(b, a.id));
  return out;
}

bool sink_follows(const std::vector<std::string>& pipelines, const std::vector<std::string>& branches,
                  const build& b) {
  return glob_any(branches, b.info.branch) && glob_any(pipelines, b.key.pipeline);
}

} // namespace bt::model
