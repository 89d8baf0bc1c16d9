#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/build.hpp"

namespace bt::model {

/// What a finished build's notification says (SPEC §6 `on:`). `failed` and `passed`
/// are the plain outcomes; the others are what the streak or the retries add.
/// New values go last (outbox entries store them by name).
enum class notice_kind { failed, broken, still_failing, fixed, passed, recovered, job_finished };
std::string_view to_string(notice_kind k);
std::optional<notice_kind> parse_notice_kind(std::string_view s);

/// A finished build at one revision, settled enough to tell people about: its
/// verdict is in when its streak judges it.
struct notice {
  build subject;
  notice_kind kind = notice_kind::failed;
  /// A release (SPEC §5): for this one sink only, whose wait for statistics ended.
  std::optional<std::string> sink;
  std::optional<release_reason> released_by;
  /// A `job_finished` notice: the attempt that finished (its id).
  std::optional<std::string> job;
};

/// Whether a sink with these pipeline and branch globs hears of build `b`.
bool sink_follows(const std::vector<std::string>& pipelines, const std::vector<std::string>& branches,
                  const build& b);

/// Whether a notice for `subject` goes to `sink` on the common path: not while the
/// sink's wait for statistics on the build goes on (its release sends it), nor when it
/// released the build's current revision already.
bool waits_for_release(const build& subject, const std::string& sink);

/// The release notices `b` owes: one per sink whose wait released, once the outcome is
/// settled, for sinks not yet told at the current revision (`released` holds the
/// revision each was last told).
std::vector<notice> due_releases(const build& b, const std::map<std::string, std::uint64_t>& released,
                                 const std::vector<std::string>& tracked_branches);

/// The job_finished notice of attempt `attempt` of `b`.
notice job_notice(const build& b, std::string attempt);

/// The job_finished notices a crash may have lost: when `b` announced more of them
/// than the outbox recorded (`recorded`), one per attempt it still keeps that it
/// announced (the outbox takes those it recorded before only once). Empty otherwise.
std::vector<notice> unrecorded_job_notices(const build& b, std::uint64_t recorded);

/// Whether the streak tracker judges a finished build: passed or failed, not
/// personal, on a tracked branch.
bool streak_judges(const finished_effect& f, const std::vector<std::string>& tracked_branches);
/// The same for a build that finished in `state`, without making its finished_effect.
bool streak_judges(build_state state, bool personal, const std::string& branch,
                   const std::vector<std::string>& tracked_branches);

/// Whether a finished build leaves its streak: it ended in a way streaks do not
/// judge (canceled, interrupted, aborted), not personal, on a tracked branch. It may
/// have been judged before, when an earlier outcome was passed or failed.
bool streak_forgets(const finished_effect& f, const std::vector<std::string>& tracked_branches);

/// Whether a finished build's outcome at its current revision is settled enough to
/// tell people about: the streak tracker's verdict for that revision is in, or no
/// streak judges the build.
bool settled(const build& b, const std::vector<std::string>& tracked_branches);

/// The notice `b` owes, if any: its outcome is settled at a revision after
/// `noticed` (the last revision a notice went out for) and is of a kind sinks hear
/// about. This is the one rule for when a notice goes out, live and in recovery.
std::optional<notice> due_notice(const build& b, std::uint64_t noticed,
                                 const std::vector<std::string>& tracked_branches);

/// The most specific kind a finished build is at its current revision: broken or
/// still_failing when its verdict for this revision says so, else failed; fixed,
/// else recovered (a job failed, then passed on retry), else passed. None for
/// builds that are not finished, or were canceled or interrupted.
std::optional<notice_kind> notice_kind_of(const build& b);

/// Whether a sink listening for `on` wants a notice of kind `k`. `failed` covers
/// every failing kind and `passed` every passing one; the others only themselves.
bool wanted(const std::vector<notice_kind>& on, notice_kind k);

} // namespace bt::model
