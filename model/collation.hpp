#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "model/time.hpp"

namespace bt::model {

/// What a sink waits for before its finished-notice goes (SPEC §5, tcWebHooks'
/// statistics collator): required statistics, and the two timeouts that end the wait
/// without them.
struct collation_rule {
  std::vector<std::string> required; ///< statistic names, trimmed
  std::chrono::milliseconds build_completed_timeout{5 * 60 * 1000};
  std::chrono::milliseconds failure_timeout{60 * 60 * 1000};
  /// The builds the sink hears of (globs): every build keeps a wait for every such
  /// sink, and only these waits hold anything back.
  std::vector<std::string> pipelines{"*"};
  std::vector<std::string> branches{"*"};
};

/// Why a wait ended with a send. New values go last.
enum class release_reason { all_statistics, build_completed_timeout, failure_timeout };
std::string_view to_string(release_reason r);

/// One sink's wait on one build. It begins when the build starts (or is first seen)
/// and ends once: released with a reason, or dropped.
struct collation {
  timestamp started{};
  std::optional<timestamp> finished;       ///< when the build finished
  std::optional<timestamp> last_statistic; ///< when the last statistic arrived, any name
  std::set<std::string> received;          ///< required statistics published so far
  std::optional<release_reason> released;
  std::uint64_t released_revision = 0; ///< the build revision the release sends
  bool dropped = false; ///< the build ran past the failure timeout unfinished, or was interrupted
  bool operator==(const collation&) const = default;

  /// Ended: released or dropped. A dropped wait's build sends at once when it finishes.
  bool ended() const { return released || dropped; }
};

/// Trims a statistic name as the collator compares them (`" BuildDuration"` in a config
/// is the statistic `BuildDuration`); case is kept.
std::string trim_statistic(std::string_view name);

/// A statistic `name` arrived at `now`.
void collate_statistic(collation& c, const collation_rule& rule, std::string_view name,
                       timestamp now);

/// What a wait says at `now`: whether it is released (and why) or dropped now, and
/// otherwise the next time it must be looked at again (none: only an event can move
/// it). Each of the five criteria of SPEC §5, in tcWebHooks' precedence:
/// 1–2. every required statistic was published (before or after the finish) → at the
///      finish, or when the last one arrives;
/// 3–4. `build_completed_timeout` after the later of the finish and the last statistic;
/// 5.   `failure_timeout` after the start, only for a finished build; an unfinished
///      build past it drops its wait (tcWebHooks sent a premature "finished").
struct collation_step {
  std::optional<release_reason> release;
  bool drop = false;
  std::optional<timestamp> next;
};
collation_step evaluate(const collation& c, const collation_rule& rule, timestamp now);

/// Applies what `evaluate` says at `now` to `c`; returns the step.
collation_step settle(collation& c, const collation_rule& rule, timestamp now);

} // namespace bt::model
