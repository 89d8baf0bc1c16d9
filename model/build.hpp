#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "model/event.hpp"

namespace bt::model {

/// A unit of work inside a build with its attempts, oldest first.
struct job {
  std::string group;
  std::string name;
  std::vector<attempt> attempts;
  /// Older attempts let go at build_limits::max_attempts, and whether one of them
  /// failed (so that a job whose latest attempt passed still reads as fixed).
  std::int64_t omitted_attempts = 0;
  bool omitted_failure = false;

  const attempt& latest() const { return attempts.back(); }
  /// The latest attempt that finished: it decides the job. A retry that is only
  /// scheduled or running decides nothing yet. Null when no attempt finished.
  const attempt* decisive() const;
  /// The decisive attempt failed.
  bool failed() const;
  /// The decisive attempt passed after an earlier one failed.
  bool fixed() const;
  bool operator==(const job&) const = default;
};

/// A build's state as SPEC §4 names it. `paused` and `aborted` come from build
/// commands. New values go last: older documents stored them by number.
enum class build_state {
  pending,
  running,
  waiting,
  passed,
  failed,
  canceled,
  interrupted,
  paused,
  aborted,
};
/// Whether a build in state `s` has ended (passed, failed, canceled, interrupted, aborted).
bool is_final(build_state s);
std::string_view to_string(build_state s);
std::optional<build_state> parse_build_state(std::string_view s);

/// Effect: a finished build's outcome is new or changed (streaks, notifications).
struct finished_effect {
  build_key key;
  std::string branch;
  std::int64_t number = 0;
  build_state state = build_state::passed;
  bool personal = false;
  std::uint64_t revision = 0;
};

/// Effect: a triggered child build's outcome rolls up into its parent as a job.
struct rollup_effect {
  build_key parent;
  job_event job;
};

using effect = std::variant<finished_effect, rollup_effect>;

/// Bounds that keep one build's memory finite whatever a sender does. At a bound the
/// model lets go of what does not decide the outcome and counts it, so an accepted
/// event never goes missing from the outcome:
/// - past `max_attempts`, a job's oldest attempt (never the deciding one);
/// - past `max_jobs`, a job that neither fails nor was fixed, else a fixed one; when
///   every job fails, the build has failed anyway and the newcomer is only counted;
/// - past `max_statistics`, a new statistic is only counted (no outcome depends on it).
struct build_limits {
  size_t max_jobs = 4096;
  size_t max_attempts = 64;
  size_t max_statistics = 1024;
  static constexpr size_t recent_deliveries = 32;
};

/// Everything known about one build.
struct build {
  build_key key;
  build_info info;
  std::string source_state; ///< the CI system's own state word
  build_state state = build_state::pending;
  std::optional<build_end> end; ///< set once the build itself reported finishing
  std::map<std::string, job> jobs; ///< by group
  std::map<std::string, double> statistics;
  std::vector<std::string> recent_deliveries; ///< bounded, for duplicate detection
  std::optional<timestamp> created;
  std::optional<timestamp> started;
  std::optional<timestamp> finished;
  std::optional<timestamp> updated;
  std::uint64_t revision = 0; ///< bumps each time a finished build's outcome changes
  std::optional<streak_result> streak;
  std::int64_t omitted_jobs = 0;       ///< jobs let go at build_limits::max_jobs
  std::int64_t omitted_statistics = 0; ///< statistics not kept at build_limits::max_statistics

  bool is_finished() const { return end.has_value(); }
  std::vector<const job*> failed_jobs() const { return jobs_where(&job::failed); }
  std::vector<const job*> fixed_jobs() const { return jobs_where(&job::fixed); }
  std::vector<const job*> jobs_where(bool (job::*test)() const) const;
  bool operator==(const build&) const = default;
};

/// What applying one event did.
struct applied {
  bool changed = false;
  bool duplicate = false;
  std::string ignored; ///< why the event changed nothing, when it was not a duplicate
  /// Which bound made the model let something go ("jobs", "attempts",
  /// "statistics"), empty when none did.
  std::string_view trimmed;
  std::vector<effect> effects;
};

/// The build state machine: applies one event at `now` within `limits`. Pure and
/// deterministic.
applied apply(build& b, const envelope& e, timestamp now, const build_limits& limits = {});

/// The effects a finished build announces at its current revision (none while it
/// runs). apply() emits them when the outcome changes; recovery emits them again for
/// builds whose announcements may not have been acted on, since each is idempotent.
std::vector<effect> announcements(const build& b);

} // namespace bt::model
