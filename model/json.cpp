#include "model/json.hpp"

#include <nlohmann/json.hpp>

#include "model/json_text.hpp"

namespace bt::model {
namespace {

nlohmann::json opt_time(const std::optional<timestamp>& t) {
  return t ? nlohmann::json(format_time(*t)) : nlohmann::json(nullptr);
}

nlohmann::json to_json(const attempt& a) {
  nlohmann::json j = {{"id", a.id},
                      {"attempt", a.number},
                      {"state", to_string(a.state)},
                      {"source_state", a.source_state},
                      {"soft_failed", a.soft_failed},
                      {"failed", a.fails},
                      {"started_at", opt_time(a.started)},
                      {"finished_at", opt_time(a.finished)}};
  j["exit_status"] = a.exit_status ? nlohmann::json(*a.exit_status) : nlohmann::json(nullptr);
  if (!a.url.empty())
    j["url"] = a.url;
  if (a.waits)
    j["waits_for_message"] = true;
  return j;
}

nlohmann::json to_json(const unit_result& u) {
  nlohmann::json j = {{"name", u.name}, {"result", u.result}, {"namespace", u.ns},
                      {"path", u.path}, {"details", u.details}};
  j["duration"] = u.duration ? nlohmann::json(*u.duration) : nlohmann::json(nullptr);
  return j;
}

nlohmann::json to_json(const lint_result& l) {
  nlohmann::json j = {{"name", l.name}, {"code", l.code}, {"severity", l.severity},
                      {"path", l.path}, {"description", l.description}};
  j["line"] = l.line ? nlohmann::json(*l.line) : nlohmann::json(nullptr);
  return j;
}

nlohmann::json to_json(const message_record& r);

template <class T>
nlohmann::json list(const std::vector<T>& items) {
  auto out = nlohmann::json::array();
  for (auto& x : items)
    out.push_back(to_json(x));
  return out;
}

nlohmann::json to_json(const message_record& r) {
  auto& m = r.message;
  nlohmann::json j = {{"number", r.number},
                      {"target", m.target},
                      {"type", to_string(m.kind)},
                      {"generation", m.generation.value_or(0)},
                      {"status", to_string(r.status)},
                      {"received_at", format_time(r.received)},
                      {"unit", list(m.unit)},
                      {"lint", list(m.lint)}};
  if (!r.note.empty())
    j["note"] = r.note;
  return j;
}

/// A target's wait, and the unit and lint results its consumed messages of the
/// current generation carried.
nlohmann::json target_json(const build& b, const std::string& group, const target_wait& w) {
  auto unit = nlohmann::json::array(), lint = nlohmann::json::array();
  for (auto& r : b.messages)
    if (r.status == message_status::consumed && r.message.target == group
        && r.message.generation == b.generation) {
      for (auto& u : r.message.unit)
        unit.push_back(to_json(u));
      for (auto& l : r.message.lint)
        lint.push_back(to_json(l));
    }
  nlohmann::json j = {{"state", w.end ? std::string{to_string(*w.end)} : "waiting"},
                      {"waiting_since", format_time(w.since)},
                      {"deadline", opt_time(w.deadline)},
                      {"unit", std::move(unit)},
                      {"lint", std::move(lint)}};
  j["message"] = w.message ? nlohmann::json(w.message) : nlohmann::json(nullptr);
  return j;
}

nlohmann::json names(const std::vector<const job*>& jobs) {
  auto out = nlohmann::json::array();
  for (auto* j : jobs)
    out.push_back(j->name.empty() ? j->group : j->name);
  return out;
}

nlohmann::json streak_json(const std::optional<streak_result>& r) {
  if (!r)
    return nullptr;
  return {{"verdict", to_string(r->kind)}, {"failures", r->failures}};
}

/// What a build document says first: the fields it shares with the build list's
/// summaries, which `summary_writer` writes as text.
nlohmann::json listing_json(const build_key& key, const std::string& branch,
                            const std::optional<std::int64_t>& number, build_state state,
                            const std::optional<timestamp>& updated) {
  nlohmann::json j = {{"key", key.str()},
                      {"source", key.source},
                      {"pipeline", key.pipeline},
                      {"id", key.id},
                      {"branch", branch},
                      {"state", to_string(state)},
                      {"updated_at", opt_time(updated)}};
  j["number"] = number ? nlohmann::json(*number) : nlohmann::json(nullptr);
  return j;
}

/// Writes a summary's JSON text in the order nlohmann's objects keep (by name), so
/// that it reads as the build document's fields do.
class summary_writer {
public:
  explicit summary_writer(std::string& out) : out_{out} {}

  void write(const build_summary& s) {
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
    if (s.streak)
      raw("{\"failures\":").number(s.streak->failures).raw(",\"verdict\":").text(to_string(s.streak->kind)).raw("}");
    else
      raw("null");
    raw(",\"updated_at\":").time(s.updated);
    raw(",\"waiting_statistics\":[");
    for (size_t i = 0; i < s.statistics.size(); ++i) {
      auto& w = s.statistics[i];
      raw(i ? ",{\"missing\":[" : "{\"missing\":[");
      for (size_t k = 0; k < w.missing.size(); ++k)
        raw(k ? "," : "").text(w.missing[k]);
      raw("],\"sink\":").text(w.sink).raw(",\"until\":").time(w.until).raw("}");
    }
    raw("],\"waiting_targets\":[");
    for (size_t i = 0; i < s.targets.size(); ++i) {
      auto& t = s.targets[i];
      raw(i ? ",{\"deadline\":" : "{\"deadline\":").time(t.deadline);
      raw(",\"job\":").text(t.job).raw(",\"since\":").time(t.since).raw("}");
    }
    raw("]}");
  }

private:
  summary_writer& raw(std::string_view s) {
    out_ += s;
    return *this;
  }
  summary_writer& text(std::string_view s) {
    append_json_string(out_, s);
    return *this;
  }
  template <class Int>
  summary_writer& number(Int v) {
    append_json_integer(out_, v);
    return *this;
  }
  summary_writer& time(timestamp t) { return text(format_time(t)); }
  summary_writer& time(const std::optional<timestamp>& t) { return t ? time(*t) : raw("null"); }

  std::string& out_;
};

} // namespace

void append_summary(std::string& out, const build_summary& s) {
  summary_writer{out}.write(s);
}

std::string summary_text(const build_summary& s) {
  std::string out;
  out.reserve(320);
  append_summary(out, s);
  return out;
}

nlohmann::json to_json(const build& b) {
  auto j = listing_json(b.key, b.info.branch, b.info.number, b.state, b.updated);
  j["source_state"] = b.source_state;
  j["commit"] = b.info.commit;
  j["message"] = b.info.message;
  j["url"] = b.info.url;
  j["pipeline_name"] = b.info.pipeline_name;
  j["repository"] = b.info.repository;
  j["personal"] = b.info.personal;
  j["author"] = {{"name", b.info.author.name},
                 {"email", b.info.author.email},
                 {"login", b.info.author.login}};
  j["parent"] = b.info.parent ? nlohmann::json(b.info.parent->str()) : nlohmann::json(nullptr);
  j["created_at"] = opt_time(b.created);
  j["started_at"] = opt_time(b.started);
  j["finished_at"] = opt_time(b.finished);
  j["revision"] = b.revision;
  j["generation"] = b.generation;
  j["messages"] = list(b.messages);
  auto jobs = nlohmann::json::array();
  for (auto& [group, jb] : b.jobs) {
    auto attempts = nlohmann::json::array();
    for (auto& at : jb.attempts)
      attempts.push_back(to_json(at));
    nlohmann::json job_doc = {{"group", group},
                              {"name", jb.name},
                              {"state", jb.waiting() ? "waiting" : to_string(jb.latest().state)},
                              {"generation", b.generation},
                              {"failed", jb.failed()},
                              {"fixed", jb.fixed()},
                              {"omitted_attempts", jb.omitted_attempts},
                              {"attempts", std::move(attempts)}};
    if (auto* w = jb.current_wait())
      job_doc["target"] = target_json(b, group, *w);
    jobs.push_back(std::move(job_doc));
  }
  j["jobs"] = std::move(jobs);
  j["failed_jobs"] = names(b.failed_jobs());
  j["fixed_jobs"] = names(b.fixed_jobs());
  j["statistics"] = b.statistics;
  j["omitted"] = {{"jobs", b.omitted_jobs},
                  {"statistics", b.omitted_statistics},
                  {"messages", b.omitted_messages}};
  j["streak"] = streak_json(b.streak);
  return j;
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

nlohmann::json notice_variables(const notice& n, const std::string& sink,
                                const std::string& delivery) {
  auto& b = n.subject;
  nlohmann::json vars = {{"build", to_json(b)},
                         {"kind", to_string(n.kind)},
                         {"revision", b.revision},
                         {"sink", sink},
                         {"delivery", delivery},
                         {"statistics", b.statistics}};
  if (auto c = b.collations.find(sink);
      !n.job && c != b.collations.end() && c->second.released
      && c->second.released_revision == b.revision)
    vars["released_by"] = to_string(*c->second.released);
  if (n.job)
    for (auto& [group, j] : b.jobs)
      for (auto& a : j.attempts)
        if (a.id == *n.job)
          vars["job"] = {{"group", group}, {"name", j.name}, {"attempt", to_json(a)}};
  return vars;
}

std::string to_text(const nlohmann::json& doc) {
  return doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

} // namespace bt::model
