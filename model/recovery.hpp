#pragma once

#include <cstdint>
#include <vector>

#include "model/build.hpp"
#include "model/index.hpp"

/// What a restart needs to know of a stored build without reading it. Recovery used to
/// decode every stored build in full to learn its summary and whether it owed anything
/// (a verdict, a notice, a deadline): most of a restart with a million builds. A
/// record is kept beside each stored build; recovery reads the records, and the
/// builds only of those that owe something.
namespace bt::model {

/// A stored build as recovery sees it. Independent of the configuration (tracked
/// branches, sinks, their waits): what depends on it is decided at recovery from
/// these facts, or the record says the build must be read.
struct recovery_record {
  /// summarize(b) without waits, and without its targets and statistics that wait
  /// (a build with either is read).
  build_summary summary;
  std::uint64_t revision = 0;       ///< the build's revision
  bool personal = false;            ///< a personal build (streaks leave it out)
  std::uint64_t announced_jobs = 0; ///< job_finished notices the build announced
  /// The build must be read whatever else holds: it has not finished, has targets
  /// or sinks that wait, or rolls up into a parent (deadlines and roll-ups come
  /// from the build itself).
  bool read = false;
  bool operator==(const recovery_record&) const = default;
};

/// `b`'s record.
recovery_record record_of(const build& b);

/// settled(b, tracked_branches) for the build of record `r`.
bool settled(const recovery_record& r, const std::vector<std::string>& tracked_branches);

/// What recovery must do about a stored build. `noticed` and `jobs_noticed` are what
/// the outbox recorded of it (the revision of its last notice, its job_finished
/// notices); `notifying`: notices go out at all.
enum class recovery_need {
  index, ///< only list it: its summary and key are all recovery needs
  judge, ///< list it, and have its streak judge it (finished_of(r)): its verdict is not in
  read,  ///< read the build: it may owe a notice, a deadline or a roll-up
};
recovery_need need_of(const recovery_record& r, std::uint64_t noticed, std::uint64_t jobs_noticed,
                      bool notifying, const std::vector<std::string>& tracked_branches);

/// The finished_effect announcements(b) gives for the build of record `r` (finished).
finished_effect finished_of(const recovery_record& r);

} // namespace bt::model
