#include "model/build.hpp"

#include <algorithm>
#include <tuple>

namespace bt::model {

const attempt* job::decisive() const {
  for (auto it = attempts.rbegin(); it != attempts.rend(); ++it)
    if (is_terminal(it->state))
      return &*it;
  return nullptr;
}

const target_wait* job::current_wait() const {
  auto* d = decisive();
  return d && wait && wait->attempt == d->id ? &*wait : nullptr;
}

bool job::failed() const {
  auto* d = decisive();
  if (!d)
    return false;
  if (wait && wait->end && wait->attempt == d->id)
    return *wait->end != wait_end::pass;
  return d->fails;
}

bool job::waiting() const {
  auto* w = current_wait();
  return w && !w->end;
}

bool job::fixed() const {
  auto* d = decisive();
  if (!d || d->state != job_state::passed)
    return false;
  if (wait && wait->end && wait->attempt == d->id && *wait->end != wait_end::pass)
    return false;
  return omitted_failure
         || std::any_of(attempts.data(), d, [](const attempt& a) { return a.fails; });
}

std::string_view to_string(build_state s) {
  switch (s) {
    case build_state::pending: return "pending";
    case build_state::running: return "running";
    case build_state::waiting: return "waiting";
    case build_state::passed: return "passed";
    case build_state::failed: return "failed";
    case build_state::canceled: return "canceled";
    case build_state::interrupted: return "interrupted";
    case build_state::paused: return "paused";
    case build_state::aborted: return "aborted";
  }
  return "unknown";
}

std::optional<build_state> parse_build_state(std::string_view s) {
  return parse_enum(s, build_state::aborted);
}

std::string_view to_string(wait_end e) {
  switch (e) {
    case wait_end::pass: return "pass";
    case wait_end::fail: return "fail";
    case wait_end::timed_out: return "timed_out";
  }
  return "unknown";
}

std::string_view to_string(message_status s) {
  switch (s) {
    case message_status::pending: return "pending";
    case message_status::consumed: return "consumed";
    case message_status::ignored: return "ignored";
  }
  return "unknown";
}

bool is_final(build_state s) {
  switch (s) {
    case build_state::pending:
    case build_state::running:
    case build_state::waiting:
    case build_state::paused: return false;
    default: return true;
  }
}

std::vector<const job*> build::jobs_where(bool (job::*test)() const) const {
  std::vector<const job*> out;
  for (auto& [_, j] : jobs)
    if ((j.*test)())
      out.push_back(&j);
  return out;
}

bool build::any_job(bool (job::*test)() const) const {
  return std::any_of(jobs.begin(), jobs.end(), [&](auto& j) { return (j.second.*test)(); });
}

void count_jobs(build& b) {
  b.targets = b.failing = 0;
  for (auto& [_, j] : b.jobs) {
    b.targets += j.wait ? 1 : 0;
    b.failing += j.failed() ? 1 : 0;
  }
}

namespace {

/// Keeps `b.failing` true after a job changed from failing `before` to failing `now`.
void count_failure(build& b, bool before, bool now) {
  if (now != before)
    now ? ++b.failing : --b.failing;
}

/// What notifications and streaks see of a finished build: when it changes, the
/// revision bumps and the outcome is announced again. Jobs by group: a job let go at
/// the limit may be followed by another at the same address.
struct outcome_view {
  build_state state;
  std::vector<std::string> failed;
  std::vector<std::string> fixed;
  bool operator==(const outcome_view&) const = default;
};

std::vector<std::string> groups(const std::vector<const job*>& jobs) {
  std::vector<std::string> out;
  out.reserve(jobs.size());
  for (auto* j : jobs)
    out.push_back(j->group);
  return out;
}

std::optional<outcome_view> view(const build& b) {
  if (!b.is_finished())
    return std::nullopt;
  return outcome_view{b.state, groups(b.failed_jobs()), groups(b.fixed_jobs())};
}

/// Past `max_jobs`: lets go of the job that matters least to the outcome, never one
/// that fails while another does not. When every other job fails, the build has
/// failed whatever `newcomer` does, so the newcomer goes.
void trim_jobs(build& b, const std::string& newcomer, size_t max_jobs, applied& out) {
  if (b.jobs.size() <= max_jobs)
    return;
  // Lower goes first: a job that neither fails nor was fixed takes nothing of the
  // outcome with it; a fixed one only its place in the fixed list. A failing job
  // other than the newcomer never goes.
  auto rank = [&](const std::string& group, const job& j) -> std::optional<int> {
    bool is_new = group == newcomer;
    if (j.failed())
      return is_new ? std::optional{4} : std::nullopt;
    return (j.fixed() ? 2 : 0) + (is_new ? 1 : 0);
  };
  auto victim = b.jobs.end();
  int best = 5;
  for (auto it = b.jobs.begin(); it != b.jobs.end() && best > 0; ++it)
    if (auto r = rank(it->first, it->second); r && *r < best) {
      best = *r;
      victim = it;
    }
  if (victim->second.wait)
    --b.targets;
  if (victim->second.failed())
    --b.failing;
  b.jobs.erase(victim); // found: the newcomer always ranks
  ++b.omitted_jobs;
  out.trimmed = "jobs";
}

/// Past `max_attempts`: lets go of the oldest attempt that does not decide the job,
/// remembering whether it failed.
void trim_attempts(job& j, size_t max_attempts, applied& out) {
  while (j.attempts.size() > max_attempts) {
    auto* deciding = j.decisive();
    auto victim = j.attempts.begin();
    if (&*victim == deciding)
      ++victim;
    j.omitted_failure = j.omitted_failure || victim->fails;
    ++j.omitted_attempts;
    j.attempts.erase(victim);
    out.trimmed = "attempts";
  }
}

/// The build's state from its jobs, targets and end, whatever order they came in. A
/// command's hold (paused, aborted) stays until another command lifts it. A build
/// with targets that wait for messages fails as soon as one of its jobs fails (fail
/// fast, as Harbormaster); other builds are decided when they end, so that a retry
/// can still pass them. A target that starts waiting after the build's end takes it
/// back to waiting, as a late job changes a finished build's outcome.
build_state decide(const build& b) {
  if (b.state == build_state::aborted || b.state == build_state::paused)
    return b.state;
  if (!b.end && b.targets == 0) // nothing fails fast, nothing waits
    return b.state == build_state::pending ? build_state::pending : build_state::running;
  bool fails = b.failing != 0, targets = false, waiting = false;
  if (b.targets != 0) // only a job that ever waited can wait now
    for (auto& [_, j] : b.jobs) {
      targets = targets || j.current_wait();
      waiting = waiting || j.waiting();
    }
  if (!b.end) {
    if (fails && targets)
      return build_state::failed;
    return b.state == build_state::pending ? build_state::pending : build_state::running;
  }
  if (fails)
    return build_state::failed;
  switch (*b.end) {
    case build_end::canceled: return build_state::canceled;
    case build_end::interrupted: return build_state::interrupted;
    case build_end::failed: return build_state::failed;
    case build_end::completed: break;
  }
  return waiting ? build_state::waiting : build_state::passed;
}

void merge(build_info& into, const build_info& from) {
  auto take = [](std::string& dst, const std::string& src) {
    if (!src.empty())
      dst = src;
  };
  if (from.number)
    into.number = from.number;
  take(into.branch, from.branch);
  take(into.commit, from.commit);
  take(into.message, from.message);
  take(into.url, from.url);
  take(into.pipeline_name, from.pipeline_name);
  take(into.repository, from.repository);
  if (!from.author.name.empty() || !from.author.email.empty() || !from.author.login.empty())
    into.author = from.author;
  into.personal = into.personal || from.personal;
  if (from.parent)
    into.parent = from.parent;
}

struct event_applier {
  build& b;
  timestamp now;
  const build_limits& limits;
  const collation_rules& waits;
  bool announce_jobs; ///< job attempts that finish are effects (job_finished notices)
  applied& out;
  /// Set when a job event changed whether its job fails or was fixed: the only way
  /// an event other than the build's own changes the outcome view's job lists.
  bool job_outcome_changed = false;

  void operator()(const build_event& e) {
    switch (e.phase) {
      case build_event::scheduled:
        if (!b.end && !b.is_finished() && b.state == build_state::pending && b.source_state != e.source_state) {
          b.source_state = e.source_state;
          out.changed = true;
        }
        break;
      case build_event::started:
        if (b.end || b.is_finished()) {
          out.ignored = "build already finished";
          return;
        }
        if (b.state == build_state::pending || b.source_state != e.source_state) {
          b.state = build_state::running;
          b.source_state = e.source_state;
          if (!b.started)
            b.started = now;
          out.changed = true;
        }
        break;
      case build_event::finished:
        if (b.end && *b.end == e.end && b.source_state == e.source_state) {
          out.duplicate = true;
          return;
        }
        b.end = e.end;
        b.source_state = e.source_state;
        b.finished = now;
        out.changed = true;
        break;
    }
  }

  void operator()(job_event& e) {
    auto it = b.jobs.find(e.group);
    bool new_job = it == b.jobs.end();
    if (new_job)
      it = b.jobs.emplace(e.group, job{e.group, e.name, {}}).first;
    auto& j = it->second;
    if (!e.name.empty())
      j.name = e.name;
    bool failed_before = j.failed(), fixed_before = j.fixed(); // false for a new job
    const auto& in = e.report;
    auto state = in.state;
    auto at = std::find_if(j.attempts.begin(), j.attempts.end(),
                           [&](const attempt& a) { return a.id == in.id; });
    if (at != j.attempts.end()) {
      if (at->state == in.state && at->exit_status == in.exit_status
          && at->soft_failed == in.soft_failed && at->fails == in.fails) {
        out.duplicate = true;
        return;
      }
      if (is_terminal(at->state) && !is_terminal(in.state)) {
        out.ignored = "job attempt already finished";
        return;
      }
    }
    bool waits = in.waits;
    // The build keeps the report: an unnumbered attempt gets its number here.
    auto r = std::move(e.report);
    r.announced = at != j.attempts.end() && at->announced;
    // A terminal report for an attempt not finished before: a job_finished notice.
    if (announce_jobs && is_terminal(state)
        && (at == j.attempts.end() || !is_terminal(at->state))) {
      out.effects.emplace_back(job_finished_effect{b.key, r.id});
      r.announced = true;
      ++b.announced_jobs;
    }
    if (at != j.attempts.end()) {
      // A later report may leave out what an earlier one said.
      if (r.url.empty())
        r.url = std::move(at->url);
      if (!r.started)
        r.started = at->started;
      if (!r.finished)
        r.finished = at->finished;
      r.number = at->number;
      *at = std::move(r);
    } else {
      // Attempts stay ordered by retry number whatever order their events arrive in;
      // an unnumbered one comes after every attempt known.
      if (!e.numbered && !j.attempts.empty())
        r.number = std::max(r.number, j.attempts.back().number + 1);
      auto pos = std::upper_bound(j.attempts.begin(), j.attempts.end(), r.number,
                                  [](std::int64_t n, const attempt& a) { return n < a.number; });
      j.attempts.insert(pos, std::move(r));
      trim_attempts(j, limits.max_attempts, out);
    }
    // A passed attempt that waits makes the job a target waiting for its message.
    if (auto* d = waits || j.wait ? j.decisive() : nullptr;
        d && d->waits && d->state == job_state::passed && (!j.wait || j.wait->attempt != d->id)) {
      if (!j.wait)
        ++b.targets;
      j.wait = target_wait{d->id, now, std::nullopt, std::nullopt, 0};
      if (e.wait_timeout_ms > 0)
        j.wait->deadline = now + std::chrono::milliseconds{e.wait_timeout_ms};
    }
    bool failed_now = j.failed();
    job_outcome_changed = failed_now != failed_before || j.fixed() != fixed_before;
    count_failure(b, failed_before, failed_now);
    if (new_job)
      trim_jobs(b, e.group, limits.max_jobs, out); // `j` may be gone after this
    if (!b.is_finished() && b.state == build_state::pending && state != job_state::scheduled) {
      b.state = build_state::running;
      if (!b.started)
        b.started = now;
    }
    out.changed = true;
  }

  void operator()(const statistic_event& e) {
    auto it = b.statistics.find(e.key);
    if (it != b.statistics.end() && it->second == e.value) {
      out.duplicate = true;
      return;
    }
    if (it == b.statistics.end() && b.statistics.size() >= limits.max_statistics) {
      ++b.omitted_statistics;
      out.trimmed = "statistics";
      out.changed = true;
      return;
    }
    b.statistics[e.key] = e.value;
    out.changed = true;
    for (auto& [sink, c] : b.collations)
      if (auto rule = waits.find(sink); rule != waits.end())
        collate_statistic(c, rule->second, e.key, now);
  }

  void operator()(const target_message& m) {
    message_record r;
    r.number = b.messages.empty() ? 1 : b.messages.back().number + 1;
    r.received = now;
    r.message = m;
    if (!r.message.generation)
      r.message.generation = b.generation;
    // Work carries partial results: kept with the message, nothing to consume.
    if (m.kind == message_kind::work && *r.message.generation == b.generation)
      r.status = message_status::consumed;
    out.changed = true;
    if (b.messages.size() >= limits.max_messages) {
      out.trimmed = "messages";
      ++b.omitted_messages;
      auto settled = std::find_if(b.messages.begin(), b.messages.end(), [](auto& kept) {
        return kept.status != message_status::pending;
      });
      if (settled == b.messages.end())
        return; // every kept one may still decide a target: the newcomer goes
      b.messages.erase(settled);
    }
    b.messages.push_back(std::move(r));
  }

  void operator()(const build_command& c) {
    auto refuse = [&](std::string why) {
      out.ignored = std::move(why) + " (the build is " + std::string{to_string(b.state)} + ")";
    };
    switch (c.kind) {
      case command_kind::pause:
        if (b.is_finished())
          return refuse("a settled build cannot be paused");
        if (b.state == build_state::paused)
          return refuse("already paused");
        b.state = build_state::paused;
        break;
      case command_kind::resume:
        if (b.state != build_state::paused)
          return refuse("only a paused build can be resumed");
        b.state = build_state::running; // decided again below
        break;
      case command_kind::abort:
        if (b.is_finished())
          return refuse("a settled build cannot be aborted");
        b.state = build_state::aborted;
        b.finished = now;
        break;
      case command_kind::restart:
        if (b.is_finished())
          return refuse("a settled build cannot be restarted");
        ++b.generation;
        b.jobs.clear();
        b.targets = b.failing = 0;
        b.end.reset();
        b.finished.reset();
        b.state = build_state::running;
        break;
    }
    out.changed = true;
  }

  /// Not the build's: the journal carries it for a relay, which takes it instead.
  void operator()(const relayed&) {
    out.ignored = "relayed input";
  }

  void operator()(const deadline_passed&) {
    // What is due is looked at after every event; this one only brings the time.
    // Waits settle here only when no target timed out: then this event changes no
    // outcome, so a release sends the revision the build has. Otherwise they settle
    // once the new outcome is decided, as after any event.
    out.changed = due_deadlines() || settle_waits();
    if (!out.changed)
      out.ignored = "nothing was due";
  }

  /// Lets each waiting sink's wait see the build as it is at `now`: the finish, an
  /// interruption, the time. Returns whether one ended (with its effect).
  bool settle_waits() {
    bool ended = false;
    for (auto& [sink, c] : b.collations) {
      auto rule = waits.find(sink);
      if (c.ended() || rule == waits.end())
        continue;
      if (b.state == build_state::interrupted) {
        c.dropped = true;
        out.effects.emplace_back(wait_dropped_effect{b.key, sink, "the build was interrupted"});
        ended = true;
        continue;
      }
      if (!c.finished && b.is_finished())
        c.finished = now;
      auto step = settle(c, rule->second, now);
      if (step.release) {
        c.released_revision = b.revision;
        out.effects.emplace_back(release_effect{b.key, sink, *step.release});
      }
      if (step.drop)
        out.effects.emplace_back(wait_dropped_effect{
          b.key, sink, "the build ran past the failure timeout without finishing"});
      ended = ended || step.release || step.drop;
    }
    return ended;
  }

  /// Ends the waits whose deadline has passed at `now`. Returns whether one ended.
  bool due_deadlines() {
    if (b.targets == 0 || !targets_move())
      return false;
    bool any = false;
    for (auto& [_, j] : b.jobs)
      if (j.waiting() && j.wait->deadline && *j.wait->deadline <= now) {
        end_wait(j, wait_end::timed_out);
        any = true;
      }
    return any;
  }

  /// Ends job `j`'s wait for a message with `end`.
  void end_wait(job& j, wait_end end) {
    bool failed_before = j.failed();
    j.wait->end = end;
    count_failure(b, failed_before, j.failed());
    job_outcome_changed = true;
  }

  /// Whether targets may consume messages and time out: not while the build is
  /// paused (it consumes on resume), never once aborted.
  bool targets_move() const {
    return b.state != build_state::paused && b.state != build_state::aborted;
  }

  /// Lets waiting targets consume their messages, oldest first (the first pass or
  /// fail wins), then ends the waits that are due. Returns whether a wait ended.
  bool consume_messages() {
    if (b.targets == 0 || !targets_move())
      return false;
    bool changed = false;
    for (auto& [group, j] : b.jobs) {
      if (!j.waiting())
        continue;
      // A message that came after the wait's deadline finds it timed out, whenever
      // the timer's own event arrives.
      auto& deadline = j.wait->deadline;
      for (auto& m : b.messages)
        if (m.status == message_status::pending && m.message.target == group
            && *m.message.generation == b.generation && m.message.kind != message_kind::work
            && (!deadline || m.received <= *deadline)) {
          m.status = message_status::consumed;
          j.wait->message = m.number;
          end_wait(j, m.message.kind == message_kind::pass ? wait_end::pass : wait_end::fail);
          changed = true;
          break;
        }
    }
    return due_deadlines() || changed;
  }

  const target_wait* wait_of(const std::string& target) const {
    auto it = b.jobs.find(target);
    return it == b.jobs.end() ? nullptr : it->second.current_wait();
  }

  /// Says why each message that can no longer be consumed will not be.
  void mark_unconsumable() {
    for (auto& m : b.messages) {
      if (m.status != message_status::pending)
        continue;
      auto ignore = [&](std::string why) {
        m.status = message_status::ignored;
        m.note = std::move(why);
      };
      auto gen = *m.message.generation;
      if (gen < b.generation) {
        ignore("for generation " + std::to_string(gen) + "; the build restarted since");
      } else if (gen > b.generation) {
        ignore("for generation " + std::to_string(gen) + ", which the build never started");
      } else if (auto* w = wait_of(m.message.target); w && w->end) {
        ignore("the target's wait already ended (" + std::string{to_string(*w->end)} + ")");
      } else if (b.state == build_state::aborted) {
        ignore("the build was aborted");
      }
    }
  }

  void operator()(const streak_result& r) {
    if (b.streak == r) {
      out.duplicate = true;
      return;
    }
    if (b.streak && b.streak->revision > r.revision) {
      out.ignored = "verdict for an older outcome";
      return;
    }
    // Asked for when the build had passed or failed; it has since been aborted, or
    // reopened by a late job: a new outcome asks anew.
    if (b.state != build_state::passed && b.state != build_state::failed) {
      out.ignored = "verdict for an outcome the build no longer has";
      return;
    }
    b.streak = r;
    out.changed = true;
  }
};

job_event rollup_job(const build& child) {
  job_event j;
  j.group = "trigger:" + child.key.source + "/" + child.key.pipeline;
  auto label = child.info.pipeline_name.empty() ? child.key.pipeline : child.info.pipeline_name;
  j.name = label + " #" + child.key.id;
  auto& r = j.report;
  r.id = child.key.str();
  r.number = child.info.number.value_or(0);
  r.source_state = std::string{to_string(child.state)};
  r.url = child.info.url;
  r.started = child.started;
  r.finished = child.finished;
  switch (child.state) {
    case build_state::passed: r.state = job_state::passed; break;
    case build_state::failed:
      r.state = job_state::failed;
      r.fails = true;
      break;
    default: r.state = job_state::canceled; break;
  }
  return j;
}

} // namespace

applied apply(build& b, envelope&& e, timestamp now, const build_limits& limits,
              const announce_rules& rules) {
  auto& waits = rules.waits;
  applied out;
  if (!e.delivery.empty()) {
    auto& seen = b.recent_deliveries;
    if (std::find(seen.begin(), seen.end(), e.delivery) != seen.end()) {
      out.duplicate = true;
      return out;
    }
  }
  // Whether the outcome changed: computed in full only when an event may let a job
  // go (a new job at the limit); otherwise only the build's state and the one job
  // an event touches can change it, which is much cheaper to see.
  auto* job_ev = std::get_if<job_event>(&e.body);
  bool may_trim = job_ev && b.jobs.size() >= limits.max_jobs && !b.jobs.contains(job_ev->group);
  auto before = may_trim ? view(b) : std::nullopt;
  bool finished_before = b.is_finished();
  auto state_before = b.state;
  if (b.key.id.empty())
    b.key = e.key;
  if (e.info)
    merge(b.info, *e.info);
  auto deadlines_before = deadlines(b, waits, now);
  if (!b.created) {
    b.created = now;
    // The sinks that wait for statistics wait on this build from its first event.
    for (auto& [sink, rule] : waits)
      b.collations.emplace(sink, collation{now});
  }
  event_applier applier{b, now, limits, waits, rules.job_finished, out};
  std::visit(applier, e.body);
  // Messages and deadlines may settle targets after any event: a target that starts
  // waiting finds the message that came first; a resumed build consumes what came
  // while it was paused; an event after a deadline finds it passed.
  if (out.changed)
    applier.consume_messages();
  if (!out.changed)
    return out;
  if (!e.delivery.empty()) {
    auto& seen = b.recent_deliveries;
    if (seen.size() >= build_limits::recent_deliveries)
      seen.erase(seen.begin());
    seen.push_back(e.delivery);
  }
  b.updated = now;
  b.state = decide(b);
  applier.mark_unconsumable();
  bool outcome_changed = false;
  if (b.is_finished())
    outcome_changed = may_trim ? view(b) != before
                               : !finished_before || b.state != state_before
                                   || applier.job_outcome_changed;
  if (outcome_changed) {
    ++b.revision;
    // A verdict judged an outcome streaks judge; this one they do not.
    if (b.state != build_state::passed && b.state != build_state::failed)
      b.streak.reset();
    auto announced = announcements(b);
    out.effects.insert(out.effects.begin(), announced.begin(), announced.end());
  }
  // After the announcement: a wait released now sends the outcome just decided.
  applier.settle_waits();
  auto deadlines_after = deadlines(b, waits, now);
  for (auto& [name, due] : deadlines_after)
    if (auto before = deadlines_before.find(name);
        before == deadlines_before.end() || before->second != due)
      out.effects.emplace_back(deadline_effect{b.key, name, due});
  for (auto& [name, _] : deadlines_before)
    if (!deadlines_after.contains(name))
      out.effects.emplace_back(deadline_effect{b.key, name, std::nullopt});
  return out;
}

std::map<std::string, timestamp> deadlines(const build& b, const collation_rules& waits,
                                          timestamp now) {
  std::map<std::string, timestamp> out;
  if (auto due = next_deadline(b))
    out.emplace(target_deadline, *due);
  for (auto& [sink, c] : b.collations)
    if (auto rule = waits.find(sink); rule != waits.end())
      if (auto next = evaluate(c, rule->second, now).next)
        out.emplace(std::string{collation_deadline} + sink, *next);
  return out;
}

std::optional<timestamp> next_deadline(const build& b) {
  if (b.targets == 0 || b.is_finished() || b.state == build_state::paused)
    return std::nullopt;
  std::optional<timestamp> first;
  for (auto& [_, j] : b.jobs)
    if (j.waiting() && j.wait->deadline && (!first || *j.wait->deadline < *first))
      first = j.wait->deadline;
  return first;
}

std::vector<effect> announcements(const build& b) {
  std::vector<effect> out;
  if (!b.is_finished())
    return out;
  out.emplace_back(finished_effect{b.key, b.info.branch, b.info.number.value_or(0), b.state,
                                   b.info.personal, b.revision});
  if (b.info.parent)
    out.emplace_back(rollup_effect{*b.info.parent, rollup_job(b)});
  return out;
}

} // namespace bt::model
