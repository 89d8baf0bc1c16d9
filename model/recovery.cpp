#include "model/recovery.hpp"

#include "model/notice.hpp"

namespace bt::model {

recovery_record record_of(const build& b) {
  recovery_record r{summarize(b), b.revision, b.info.personal, b.announced_jobs};
  // What only the build itself can say: its deadlines (targets, sinks' waits), the
  // sinks' releases, its roll-up into a parent; and a summary that depends on the
  // sinks' configured waits.
  r.read = !b.is_finished() || !b.collations.empty() || b.info.parent.has_value()
           || !r.summary.targets.empty();
  r.summary.targets.clear();
  r.summary.statistics.clear();
  return r;
}

bool settled(const recovery_record& r, const std::vector<std::string>& tracked_branches) {
  auto& s = r.summary;
  if (!is_final(s.state))
    return false;
  if (s.streak && s.streak->revision == r.revision)
    return true;
  return !streak_judges(s.state, r.personal, s.branch, tracked_branches);
}

recovery_need need_of(const recovery_record& r, std::uint64_t noticed, std::uint64_t jobs_noticed,
                      bool notifying, const std::vector<std::string>& tracked_branches) {
  if (r.read)
    return recovery_need::read;
  bool is_settled = settled(r, tracked_branches);
  if (notifying) {
    // due_notice: a settled outcome of a kind sinks hear about, newer than the last
    // notice recorded. The notice carries the build: read it.
    if (is_settled && is_decisive(r.summary.state) && r.revision > noticed)
      return recovery_need::read;
    // unrecorded_job_notices: announced, never recorded.
    if (r.announced_jobs > jobs_noticed)
      return recovery_need::read;
  }
  return is_settled ? recovery_need::index : recovery_need::judge;
}

finished_effect finished_of(const recovery_record& r) {
  auto& s = r.summary;
  return {s.key, s.branch, s.number.value_or(0), s.state, r.personal, r.revision};
}

} // namespace bt::model
