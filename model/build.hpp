#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "model/boxed.hpp"
#include "model/collation.hpp"
#include "model/event.hpp"

namespace bt::model {

/// How a target's wait for a message ended. New values go last.
enum class wait_end { pass, fail, timed_out };
std::string_view to_string(wait_end e);

/// A target's wait for a message: it began when the attempt `attempt` passed with
/// `waits`, and holds the job open until a pass or fail message ends it (or its
/// deadline passes).
struct target_wait {
  std::string attempt; ///< id of the attempt that waits; a later attempt starts over
  timestamp since{};
  std::optional<timestamp> deadline; ///< none: waits for ever
  std::optional<wait_end> end;       ///< none while it waits
  std::uint64_t message = 0;         ///< the consumed message's number, when one ended it
  bool operator==(const target_wait&) const = default;
};

/// A unit of work inside a build with its attempts, oldest first.
struct job {
  std::string group;
  std::string name;
  std::vector<attempt> attempts;
  /// Older attempts let go at build_limits::max_attempts, and whether one of them
  /// failed (so that a job whose latest attempt passed still reads as fixed).
  std::int64_t omitted_attempts = 0;
  bool omitted_failure = false;
  boxed<target_wait> wait; ///< set once the job waited for a message

  const attempt& latest() const { return attempts.back(); }
  /// The latest attempt that finished: it decides the job. A retry that is only
  /// scheduled or running decides nothing yet. Null when no attempt finished.
  const attempt* decisive() const;
  /// The decisive attempt failed, or the message it waited for (or its deadline) failed it.
  bool failed() const;
  /// The decisive attempt passed and waits for a message that has not come yet.
  bool waiting() const;
  /// The wait of the decisive attempt, if it waits (ended or not).
  const target_wait* current_wait() const;
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
/// Passed or failed: an outcome streaks judge and sinks hear about.
inline bool is_decisive(build_state s) {
  return s == build_state::passed || s == build_state::failed;
}
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

/// Effect: one of the build's deadlines moved (none: it is gone). The build actor
/// registers it with the timeout supervisor under `name`.
struct deadline_effect {
  build_key key;
  std::string name;
  std::optional<timestamp> due;
};

/// The name a build's target deadlines are registered under.
inline constexpr std::string_view target_deadline = "targets";
/// The prefix of a sink's collation deadline names (`collate:<sink>`).
inline constexpr std::string_view collation_deadline = "collate:";

/// Effect: a sink's wait for statistics ended with a send (SPEC §5).
struct release_effect {
  build_key key;
  std::string sink;
  release_reason reason = release_reason::all_statistics;
};

/// Effect: a sink's wait ended without a send: the build ran past the failure timeout
/// unfinished, or was interrupted. Its finish, if it comes, is sent at once.
struct wait_dropped_effect {
  build_key key;
  std::string sink;
  std::string why;
};

/// Effect: a job attempt finished (reached a terminal state) for the first time.
struct job_finished_effect {
  build_key key;
  std::string attempt; ///< its id
};

/// The waits of every sink with `wait_for`, by sink name.
using collation_rules = std::map<std::string, collation_rule>;

/// What the sinks ask of a build beyond its outcome: waits for statistics, and
/// whether finished job attempts are announced (`job_finished`).
struct announce_rules {
  announce_rules() = default;
  announce_rules(collation_rules w, bool jobs = false) : waits{std::move(w)}, job_finished{jobs} {}
  collation_rules waits;
  bool job_finished = false;
};

/// Effect: a triggered child build's outcome rolls up into its parent as a job.
struct rollup_effect {
  build_key parent;
  job_event job;
};

using effect = std::variant<finished_effect, rollup_effect, deadline_effect, release_effect,
                            wait_dropped_effect, job_finished_effect>;

/// Bounds that keep one build's memory finite whatever a sender does. At a bound the
/// model lets go of what does not decide the outcome and counts it, so an accepted
/// event never goes missing from the outcome:
/// - past `max_attempts`, a job's oldest attempt (never the deciding one);
/// - past `max_jobs`, a job that neither fails nor was fixed, else a fixed one; when
///   every job fails, the build has failed anyway and the newcomer is only counted;
/// - past `max_statistics`, a new statistic is only counted (no outcome depends on it);
/// - past `max_messages`, the oldest target message already consumed or ignored (a
///   pending one may still decide a target); when every one is pending, the newcomer
///   is only counted.
struct build_limits {
  size_t max_jobs = 4096;
  size_t max_attempts = 64;
  size_t max_statistics = 1024;
  size_t max_messages = 1024;
  static constexpr size_t recent_deliveries = 32;
};

/// Where a target message stands. New values go last.
enum class message_status { pending, consumed, ignored };
std::string_view to_string(message_status s);

/// A target message as the build keeps it, in arrival order.
struct message_record {
  std::uint64_t number = 0; ///< arrival order within the build, from 1
  timestamp received{};
  target_message message; ///< its generation always set
  message_status status = message_status::pending;
  std::string note; ///< why it was ignored
  bool operator==(const message_record&) const = default;
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
  /// Starts at 1; a restart starts the next, and the targets start over.
  std::uint64_t generation = 1;
  std::vector<message_record> messages; ///< target messages, in arrival order
  std::int64_t omitted_messages = 0;    ///< let go at build_limits::max_messages
  /// Each waiting sink's wait for statistics on this build, by sink name; made when
  /// the build is first seen, for the sinks with `wait_for` then.
  std::map<std::string, collation> collations;
  /// How many jobs ever waited for a message (have a `wait`): derived from `jobs`, not
  /// stored; spares builds without targets every look at them.
  std::size_t targets = 0;
  /// How many jobs fail now (`job::failed`): derived from `jobs` like `targets`, not
  /// stored; spares listing and deciding the build a look at every job per event.
  std::size_t failing = 0;
  /// How many `job_finished` notices the build announced (attempts with `announced`,
  /// those let go at max_attempts included): recovery compares it with the outbox's
  /// count to find notices a crash lost.
  std::uint64_t announced_jobs = 0;

  /// The outcome is settled (passed, failed, canceled, interrupted, aborted). A
  /// build whose own work ended may still wait for messages.
  bool is_finished() const { return is_final(state); }
  std::vector<const job*> failed_jobs() const { return jobs_where(&job::failed); }
  std::vector<const job*> fixed_jobs() const { return jobs_where(&job::fixed); }
  std::vector<const job*> jobs_where(bool (job::*test)() const) const;
  /// Whether a job passes `test`: stops at the first, lists nothing.
  bool any_job(bool (job::*test)() const) const;
  bool operator==(const build&) const = default;
};

/// Derives the counts kept beside a build's jobs (`targets`, `failing`) from the
/// jobs: for jobs read back from storage or set by hand.
void count_jobs(build& b);

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
/// deterministic. The build may take a job event's report out of `e` (its key, time,
/// delivery and kind of event stay).
applied apply(build& b, envelope&& e, timestamp now, const build_limits& limits = {},
              const announce_rules& rules = {});
/// The same for an event the caller keeps: applies a copy.
inline applied apply(build& b, const envelope& e, timestamp now, const build_limits& limits = {},
                     const announce_rules& rules = {}) {
  return apply(b, envelope{e}, now, limits, rules);
}

/// The effects a finished build announces at its current revision (none while it
/// runs). apply() emits them when the outcome changes; recovery emits them again for
/// builds whose announcements may not have been acted on, since each is idempotent.
std::vector<effect> announcements(const build& b);

/// The earliest deadline among the build's waiting targets; none while it is paused
/// or settled.
std::optional<timestamp> next_deadline(const build& b);

/// Every deadline of the build by name: its targets' (`targets`) and each waiting
/// sink's (`collate:<sink>`), as they stand at `now`.
std::map<std::string, timestamp> deadlines(const build& b, const collation_rules& waits,
                                          timestamp now);

} // namespace bt::model
