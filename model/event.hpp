#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "model/boxed.hpp"
#include "model/time.hpp"

namespace bt::model {

/// The value of an enumeration (values 0 to `last`, each named by its `to_string`)
/// that `name` names; none for a name it does not have.
template <class Enum>
std::optional<Enum> parse_enum(std::string_view name, Enum last) {
  for (int v = 0; v <= static_cast<int>(last); ++v)
    if (to_string(static_cast<Enum>(v)) == name)
      return static_cast<Enum>(v);
  return std::nullopt;
}

/// Identifies a build across CI systems: `source/pipeline/id`. Never the number
/// alone: builds of different pipelines share numbers.
struct build_key {
  std::string source;
  std::string pipeline;
  std::string id;

  /// `source/pipeline/id`.
  std::string str() const;
  auto operator<=>(const build_key&) const = default;
};

/// Parses `source/pipeline/id`; none of the three parts may be empty or hold '/'.
std::optional<build_key> parse_build_key(std::string_view text);

/// Someone a build is attributed to.
struct person {
  std::string name;
  std::string email;
  std::string login;
  bool operator==(const person&) const = default;
};

/// What a CI system says about a build itself; merged into the build on every event.
struct build_info {
  std::optional<std::int64_t> number;
  std::string branch;
  std::string commit;
  std::string message;
  std::string url;
  std::string pipeline_name;
  std::string repository; ///< where the commit lives, as the CI system names it
  person author; ///< commit author, or the creator for release builds
  bool personal = false;
  std::optional<build_key> parent; ///< the build that triggered this one
  bool operator==(const build_info&) const = default;
};

/// How a finished build ended, before its jobs are looked at: `completed` leaves the
/// outcome to the jobs; `failed` is the CI system's own word that the build failed
/// (a native sender that reports no jobs). New values go last: older documents
/// stored them by number.
enum class build_end { completed, canceled, interrupted, failed };

/// The build itself was scheduled, started or finished.
struct build_event {
  enum phase_t { scheduled, started, finished } phase = scheduled;
  build_end end = build_end::completed; ///< meaningful when phase == finished
  std::string source_state;             ///< the CI system's own word, e.g. "failing"
  bool operator==(const build_event&) const = default;
};

/// Normalised state of one job attempt.
enum class job_state {
  scheduled,
  running,
  passed,
  failed,
  timed_out,
  canceled,
  expired,
  broken,
  skipped,
  blocked,
};

/// True for states that no further event of the same attempt may leave.
bool is_terminal(job_state s);
std::string_view to_string(job_state s);

/// One attempt of a job (a Buildkite job id; a retry is a new attempt).
struct attempt {
  std::string id;          ///< this attempt's id (a Buildkite job id, a child build key)
  std::int64_t number = 0; ///< retry number: later attempts have larger numbers
  job_state state = job_state::scheduled;
  std::string source_state;
  std::optional<std::int64_t> exit_status;
  bool soft_failed = false;
  /// Whether this attempt fails its job. The source decides, by its CI system's
  /// rules (Buildkite's exit status, a native sender's word); the model never
  /// second-guesses it.
  bool fails = false;
  std::string url;
  std::optional<timestamp> started;
  std::optional<timestamp> finished;
  /// A target that waits (SPEC §1): once this attempt has passed, its job waits for a
  /// `pass` or `fail` message before it is done.
  bool waits = false;
  /// Set by the model (never by a source) once a `job_finished` notice was announced
  /// for this attempt: recovery re-sends only those whose outbox record is missing.
  bool announced = false;

  bool operator==(const attempt&) const = default;
};

/// One attempt of a job changed state.
struct job_event {
  std::string group; ///< attempts of one job share it (step key, else name)
  std::string name;
  attempt report;
  /// Whether `report.number` orders the attempt. When false, a new attempt comes
  /// after every attempt already known (arrival order).
  bool numbered = true;
  /// For an attempt that waits: how long its job waits for its message before it
  /// fails as timed out; zero waits for ever (Harbormaster's behaviour).
  std::int64_t wait_timeout_ms = 0;
  bool operator==(const job_event&) const = default;
};

/// A `key → number` statistic published for the build (also after it finished).
struct statistic_event {
  std::string key;
  double value = 0;
  bool operator==(const statistic_event&) const = default;
};

/// One unit test result carried by a target message (Harbormaster's unit entry).
struct unit_result {
  std::string name;
  std::string result; ///< pass, fail, skip, broken or unsound
  std::optional<double> duration; ///< seconds
  std::string ns;     ///< the test's namespace, e.g. its class
  std::string path;
  std::string details;
  bool operator==(const unit_result&) const = default;
};

/// One lint result carried by a target message (Harbormaster's lint entry).
struct lint_result {
  std::string name;
  std::string code;
  std::string severity; ///< advice, autofix, warning, error or disabled
  std::string path;
  std::optional<std::int64_t> line;
  std::string description;
  bool operator==(const lint_result&) const = default;
};

/// What a message tells a target: it passed, it failed, or work goes on (partial
/// results; the target keeps waiting). New values go last.
enum class message_kind { pass, fail, work };
std::string_view to_string(message_kind k);
std::optional<message_kind> parse_message_kind(std::string_view s);

/// A message for one target (job group) of a build, accepted whatever the target's
/// state, also before the target or the build is known.
struct target_message {
  std::string target;
  message_kind kind = message_kind::work;
  /// The build generation the message is for; none: the generation current when it
  /// arrives.
  std::optional<std::uint64_t> generation;
  std::vector<unit_result> unit;
  std::vector<lint_result> lint;
  bool operator==(const target_message&) const = default;
};

/// A build command (Harbormaster's pause, resume, abort and restart). New values go last.
enum class command_kind { pause, resume, abort, restart };
std::string_view to_string(command_kind k);
std::optional<command_kind> parse_command_kind(std::string_view s);

struct build_command {
  command_kind kind = command_kind::pause;
  bool operator==(const build_command&) const = default;
};

/// A deadline the build registered has passed (from the timeout supervisor): the
/// model looks at what is due at the event's time.
struct deadline_passed {
  std::string name; ///< which deadline, as the build registered it
  bool operator==(const deadline_passed&) const = default;
};

/// Result of a build's place in its streak, computed by the streak tracker.
enum class verdict { passed, broken, still_failing, fixed };
std::string_view to_string(verdict v);

/// The streak tracker's verdict on this build.
struct streak_result {
  verdict kind = verdict::passed;
  std::int64_t failures = 0; ///< consecutive failures ending at this build
  std::uint64_t revision = 0; ///< the build revision (outcome) this verdict judges
  bool operator==(const streak_result&) const = default;
};

/// An input kept in the journal for a relay beside the build model: a Taskcluster
/// queue message that the Treeherder publisher turns into job messages. It travels in
/// the journal so that an acknowledged message survives a crash until it is
/// published; builds never see it (the model ignores it).
struct relayed {
  std::string relay;   ///< who takes it: "treeherder"
  std::string message; ///< the input as received (JSON text)
  bool operator==(const relayed&) const = default;
};

/// Everything that can happen to a build, and what the journal carries for a relay.
using event_body = std::variant<build_event, job_event, statistic_event, streak_result,
                                target_message, build_command, deadline_passed, relayed>;

/// One accepted event, addressed to one build.
struct envelope {
  build_key key;
  std::string delivery;             ///< delivery id from the sender, if any
  timestamp received{};             ///< when buildtrack accepted it
  /// Build facts carried by the event, on the heap: an envelope is moved several times
  /// on its way to its build (parse, journal, registry, mailbox), and these are most
  /// of its size.
  boxed<build_info> info;
  event_body body;
  bool operator==(const envelope&) const = default;
};

} // namespace bt::model
