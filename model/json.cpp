#include "model/json.hpp"

#include <utility>

#include <nlohmann/json.hpp>

#include "model/json_text.hpp"

namespace bt::model {
namespace {

/// Appends JSON text for the documents written directly, without a DOM. Each object's
/// names are written in the order nlohmann's objects keep them (byte order), so a
/// document reads as it did when it was built as a tree, and `to_json` can parse it.
class text_writer {
public:
  explicit text_writer(std::string& out) : out_{out} {}

  text_writer& raw(std::string_view s) {
    out_ += s;
    return *this;
  }
  text_writer& text(std::string_view s) {
    append_json_string(out_, s);
    return *this;
  }
  template <class Int>
  text_writer& number(Int v) {
    append_json_integer(out_, v);
    return *this;
  }
  /// As nlohmann writes a double (shortest text that reads back the same; null for
  /// NaN and infinities): statistics and durations are rare, not worth a second
  /// formatter to keep in step with it.
  text_writer& real(double v) { return raw(nlohmann::json(v).dump()); }
  text_writer& boolean(bool v) { return raw(v ? "true" : "false"); }
  text_writer& time(timestamp t) { return text(format_time(t)); }
  text_writer& time(const std::optional<timestamp>& t) { return t ? time(*t) : raw("null"); }
  template <class T, class Write>
  text_writer& list(const T& items, Write write) {
    raw("[");
    bool first = true;
    for (auto& x : items) {
      if (!std::exchange(first, false))
        raw(",");
      write(x);
    }
    return raw("]");
  }
  text_writer& statistics(const std::map<std::string, double>& values) {
    raw("{");
    bool first = true;
    for (auto& [name, v] : values) {
      raw(std::exchange(first, false) ? "" : ",").text(name).raw(":").real(v);
    }
    return raw("}");
  }

  void summary(const build_summary& s) {
    raw("{\"branch\":").text(s.branch);
    raw(",\"failed_job_count\":").number(s.failed_jobs);
    raw(",\"id\":").text(s.key.id);
    raw(",\"key\":").text(s.key.str());
    raw(",\"number\":");
    s.number ? number(*s.number) : raw("null");
    raw(",\"pipeline\":").text(s.key.pipeline);
    raw(",\"source\":").text(s.key.source);
    raw(",\"state\":").text(to_string(s.state));
    raw(",\"streak\":");
    streak(s.streak);
    raw(",\"updated_at\":").time(s.updated);
    raw(",\"waiting_statistics\":").list(s.statistics, [&](const waiting_statistics& w) {
      raw("{\"missing\":").list(w.missing, [&](const std::string& m) { text(m); });
      raw(",\"sink\":").text(w.sink).raw(",\"until\":").time(w.until).raw("}");
    });
    raw(",\"waiting_targets\":").list(s.targets, [&](const waiting_target& t) {
      raw("{\"deadline\":").time(t.deadline);
      raw(",\"job\":").text(t.job).raw(",\"since\":").time(t.since).raw("}");
    });
    raw("}");
  }

  void attempt(const model::attempt& a) {
    raw("{\"attempt\":").number(a.number);
    raw(",\"exit_status\":");
    a.exit_status ? number(*a.exit_status) : raw("null");
    raw(",\"failed\":").boolean(a.fails);
    raw(",\"finished_at\":").time(a.finished);
    raw(",\"id\":").text(a.id);
    raw(",\"soft_failed\":").boolean(a.soft_failed);
    raw(",\"source_state\":").text(a.source_state);
    raw(",\"started_at\":").time(a.started);
    raw(",\"state\":").text(to_string(a.state));
    if (!a.url.empty())
      raw(",\"url\":").text(a.url);
    if (a.waits)
      raw(",\"waits_for_message\":true");
    raw("}");
  }

  void build(const model::build& b) {
    out_.reserve(out_.size() + 1024);
    auto& info = b.info;
    raw("{\"author\":{\"email\":").text(info.author.email);
    raw(",\"login\":").text(info.author.login).raw(",\"name\":").text(info.author.name).raw("}");
    raw(",\"branch\":").text(info.branch);
    raw(",\"commit\":").text(info.commit);
    raw(",\"created_at\":").time(b.created);
    raw(",\"failed_jobs\":");
    names(b.failed_jobs());
    raw(",\"finished_at\":").time(b.finished);
    raw(",\"fixed_jobs\":");
    names(b.fixed_jobs());
    raw(",\"generation\":").number(b.generation);
    raw(",\"id\":").text(b.key.id);
    raw(",\"jobs\":").list(b.jobs, [&](const auto& entry) { job(b, entry.first, entry.second); });
    raw(",\"key\":").text(b.key.str());
    raw(",\"message\":").text(info.message);
    raw(",\"messages\":").list(b.messages, [&](const message_record& r) { message(r); });
    raw(",\"number\":");
    info.number ? number(*info.number) : raw("null");
    raw(",\"omitted\":{\"jobs\":").number(b.omitted_jobs);
    raw(",\"messages\":").number(b.omitted_messages);
    raw(",\"statistics\":").number(b.omitted_statistics).raw("}");
    raw(",\"parent\":");
    info.parent ? text(info.parent->str()) : raw("null");
    raw(",\"personal\":").boolean(info.personal);
    raw(",\"pipeline\":").text(b.key.pipeline);
    raw(",\"pipeline_name\":").text(info.pipeline_name);
    raw(",\"repository\":").text(info.repository);
    raw(",\"revision\":").number(b.revision);
    raw(",\"source\":").text(b.key.source);
    raw(",\"source_state\":").text(b.source_state);
    raw(",\"started_at\":").time(b.started);
    raw(",\"state\":").text(to_string(b.state));
    raw(",\"statistics\":").statistics(b.statistics);
    raw(",\"streak\":");
    streak(b.streak);
    raw(",\"updated_at\":").time(b.updated);
    raw(",\"url\":").text(info.url);
    raw("}");
  }

private:
  void streak(const std::optional<streak_result>& r) {
    if (!r) {
      raw("null");
      return;
    }
    raw("{\"failures\":").number(r->failures).raw(",\"verdict\":").text(to_string(r->kind)).raw("}");
  }

  void names(const std::vector<const model::job*>& jobs) {
    list(jobs, [&](const model::job* j) { text(j->name.empty() ? j->group : j->name); });
  }

  void unit(const unit_result& u) {
    raw("{\"details\":").text(u.details);
    raw(",\"duration\":");
    u.duration ? real(*u.duration) : raw("null");
    raw(",\"name\":").text(u.name).raw(",\"namespace\":").text(u.ns);
    raw(",\"path\":").text(u.path).raw(",\"result\":").text(u.result).raw("}");
  }

  void lint(const lint_result& l) {
    raw("{\"code\":").text(l.code).raw(",\"description\":").text(l.description);
    raw(",\"line\":");
    l.line ? number(*l.line) : raw("null");
    raw(",\"name\":").text(l.name).raw(",\"path\":").text(l.path);
    raw(",\"severity\":").text(l.severity).raw("}");
  }

  void message(const message_record& r) {
    auto& m = r.message;
    raw("{\"generation\":").number(m.generation.value_or(0));
    raw(",\"lint\":").list(m.lint, [&](const lint_result& l) { lint(l); });
    if (!r.note.empty())
      raw(",\"note\":").text(r.note);
    raw(",\"number\":").number(r.number);
    raw(",\"received_at\":").time(r.received);
    raw(",\"status\":").text(to_string(r.status));
    raw(",\"target\":").text(m.target);
    raw(",\"type\":").text(to_string(m.kind));
    raw(",\"unit\":").list(m.unit, [&](const unit_result& u) { unit(u); });
    raw("}");
  }

  /// One list of the results (`&target_message::unit` or `lint`) that the messages
  /// `group` consumed in the build's current generation carried.
  template <class Result, class Write>
  text_writer& consumed(const model::build& b, const std::string& group,
                        std::vector<Result> target_message::*results, Write write) {
    raw("[");
    bool first = true;
    for (auto& r : b.messages)
      if (r.status == message_status::consumed && r.message.target == group
          && r.message.generation == b.generation)
        for (auto& x : r.message.*results) {
          raw(std::exchange(first, false) ? "" : ",");
          write(x);
        }
    return raw("]");
  }

  /// A target's wait, and the unit and lint results its consumed messages of the
  /// current generation carried.
  void target(const model::build& b, const std::string& group, const target_wait& w) {
    raw("{\"deadline\":").time(w.deadline);
    raw(",\"lint\":").consumed(b, group, &target_message::lint, [&](const lint_result& l) { lint(l); });
    raw(",\"message\":");
    w.message ? number(w.message) : raw("null");
    raw(",\"state\":").text(w.end ? to_string(*w.end) : "waiting");
    raw(",\"unit\":").consumed(b, group, &target_message::unit, [&](const unit_result& u) { unit(u); });
    raw(",\"waiting_since\":").time(w.since).raw("}");
  }

  void job(const model::build& b, const std::string& group, const model::job& j) {
    raw("{\"attempts\":").list(j.attempts, [&](const model::attempt& a) { attempt(a); });
    raw(",\"failed\":").boolean(j.failed());
    raw(",\"fixed\":").boolean(j.fixed());
    raw(",\"generation\":").number(b.generation);
    raw(",\"group\":").text(group);
    raw(",\"name\":").text(j.name);
    raw(",\"omitted_attempts\":").number(j.omitted_attempts);
    raw(",\"state\":").text(j.waiting() ? "waiting" : to_string(j.latest().state));
    if (auto* w = j.current_wait()) {
      raw(",\"target\":");
      target(b, group, *w);
    }
    raw("}");
  }

  std::string& out_;
};

} // namespace

void append_summary(std::string& out, const build_summary& s) {
  text_writer{out}.summary(s);
}

std::string summary_text(const build_summary& s) {
  std::string out;
  out.reserve(320);
  append_summary(out, s);
  return out;
}

void append_build(std::string& out, const build& b) {
  text_writer{out}.build(b);
}

std::string build_text(const build& b) {
  std::string out;
  append_build(out, b);
  return out;
}

nlohmann::json to_json(const build& b) {
  return nlohmann::json::parse(build_text(b));
}

nlohmann::json to_json(const streak_book& book) {
  auto out = nlohmann::json::array();
  for (auto& [key, history] : book.streaks()) {
    if (history.empty())
      continue;
    auto& [number, last] = *history.rbegin();
    out.push_back({{"source", key.source},
                   {"pipeline", key.pipeline},
                   {"branch", key.branch},
                   {"last_build", number},
                   {"state", last.failed ? "failing" : "passing"},
                   {"verdict", to_string(last.result.kind)},
                   {"failures", last.result.failures},
                   {"builds", history.size()}});
  }
  return out;
}

namespace {

/// The criterion that released `sink`'s wait for this outcome, if it waited.
std::optional<release_reason> released_by(const notice& n, const std::string& sink) {
  auto& b = n.subject;
  auto c = b.collations.find(sink);
  if (n.job || c == b.collations.end() || !c->second.released
      || c->second.released_revision != b.revision)
    return std::nullopt;
  return c->second.released;
}

/// A job notice's attempt and the job it belongs to.
struct noticed_attempt {
  const std::string* group = nullptr;
  const job* of = nullptr;
  const attempt* it = nullptr;
};

std::optional<noticed_attempt> noticed_job(const notice& n) {
  if (!n.job)
    return std::nullopt;
  std::optional<noticed_attempt> found;
  for (auto& [group, j] : n.subject.jobs)
    for (auto& a : j.attempts)
      if (a.id == *n.job)
        found = noticed_attempt{&group, &j, &a};
  return found;
}

} // namespace

nlohmann::json notice_variables(const notice& n, const std::string& sink,
                                const std::string& delivery) {
  auto& b = n.subject;
  nlohmann::json vars = {{"build", to_json(b)},
                         {"kind", to_string(n.kind)},
                         {"revision", b.revision},
                         {"sink", sink},
                         {"delivery", delivery},
                         {"statistics", b.statistics}};
  if (auto reason = released_by(n, sink))
    vars["released_by"] = to_string(*reason);
  if (auto job = noticed_job(n)) {
    std::string attempt;
    text_writer{attempt}.attempt(*job->it);
    vars["job"] = {{"group", *job->group},
                   {"name", job->of->name},
                   {"attempt", nlohmann::json::parse(attempt)}};
  }
  return vars;
}

std::string notice_text(const notice& n, const std::string& sink, const std::string& delivery) {
  auto& b = n.subject;
  std::string out;
  out.reserve(2048);
  text_writer w{out};
  w.raw("{\"build\":").build(b);
  w.raw(",\"delivery\":").text(delivery);
  if (auto job = noticed_job(n)) {
    w.raw(",\"job\":{\"attempt\":").attempt(*job->it);
    w.raw(",\"group\":").text(*job->group).raw(",\"name\":").text(job->of->name).raw("}");
  }
  w.raw(",\"kind\":").text(to_string(n.kind));
  auto reason = released_by(n, sink);
  if (reason)
    w.raw(",\"released_by\":").text(to_string(*reason));
  w.raw(",\"revision\":").number(b.revision);
  w.raw(",\"sink\":").text(sink);
  // A notice that waited for statistics says which criterion released it, with the
  // statistics received.
  if (reason)
    w.raw(",\"statistics\":").statistics(b.statistics);
  w.raw("}");
  return out;
}

std::string to_text(const nlohmann::json& doc) {
  return doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

} // namespace bt::model
