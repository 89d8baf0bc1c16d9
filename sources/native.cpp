#include "sources/native.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <map>

#include <simdjson.h>

#include "model/collation.hpp"
#include "sources/payload.hpp"
#include "support/crypto.hpp"

namespace bt::sources {
namespace {

using model::job_state;

/// The event types this API takes, and what each needs.
enum class event_type { build_started, build_finished, build_interrupted, job_started,
                        job_finished, statistic, message };

const std::map<std::string, event_type, std::less<>> event_types{
  {"build.started", event_type::build_started},
  {"build.finished", event_type::build_finished},
  {"build.interrupted", event_type::build_interrupted},
  {"job.started", event_type::job_started},
  {"job.finished", event_type::job_finished},
  {"statistic", event_type::statistic},
  {"message", event_type::message}};

/// Source names that belong to buildtrack's own inputs: a native event may not pose
/// as a build of theirs (their builds would mix).
constexpr std::array<std::string_view, 4> reserved_sources{"buildkite", "taskcluster",
                                                           "cdevents", "harbormaster"};

/// How a finished attempt ended, and whether that fails its job (a soft fail passes).
const std::map<std::string, job_state, std::less<>> finished_states{
  {"passed", job_state::passed},     {"failed", job_state::failed},
  {"timed_out", job_state::timed_out}, {"canceled", job_state::canceled},
  {"skipped", job_state::skipped},   {"broken", job_state::broken}};

/// A key part in a payload: 422 naming the field.
std::optional<rejection> check_key_part(const fields& f, std::string_view name,
                                        const std::string& value) {
  if (auto problem = key_part_problem(value))
    return invalid(f.at(name), *problem);
  return std::nullopt;
}

/// A string, or an integer written as its decimal digits (build and job ids are
/// often numbers).
checked<std::string> id_of(const fields& f, std::string_view name) {
  auto v = f.get(name);
  if (v && v->is_int64())
    return std::to_string(v->get_int64().value_unsafe());
  if (v && v->is_uint64())
    return std::to_string(v->get_uint64().value_unsafe());
  if (v && !v->is_string())
    return invalid(f.at(name), "expected a string or an integer");
  return f.string(name);
}

struct build_part {
  model::build_key key;
  model::build_info info;
  std::string status;
};

checked<build_part> build_of(const fields& top) {
  BT_TRY(obj, top.child("build", true));
  fields b{*obj, "build"};
  if (auto r = b.only({"source", "pipeline", "id", "number", "branch", "commit", "message",
                       "url", "status", "personal", "author"}))
    return *r;
  build_part out;
  BT_TRY(source, b.string("source"));
  if (source.empty())
    source = native_default_source;
  if (auto r = check_key_part(b, "source", source))
    return *r;
  if (std::find(reserved_sources.begin(), reserved_sources.end(), source) != reserved_sources.end())
    return invalid("build.source", "'" + source + "' is the name of buildtrack's own "
                                   + source + " input; name your CI another way");
  BT_TRY(pipeline, b.string("pipeline"));
  if (auto r = check_key_part(b, "pipeline", pipeline))
    return *r;
  BT_TRY(id, id_of(b, "id"));
  if (auto r = check_key_part(b, "id", id))
    return *r;
  out.key = {source, pipeline, id};
  BT_TRY(number, b.integer("number"));
  out.info.number = number;
  BT_TRY(branch, b.string("branch"));
  BT_TRY(commit, b.string("commit"));
  BT_TRY(message, b.string("message"));
  BT_TRY(url, b.string("url"));
  BT_TRY(personal, b.boolean("personal"));
  BT_TRY(status, b.string("status"));
  out.info.branch = std::move(branch);
  out.info.commit = std::move(commit);
  out.info.message = std::move(message);
  out.info.url = std::move(url);
  out.info.personal = personal;
  out.status = std::move(status);
  BT_TRY(author, b.child("author", false));
  if (author) {
    fields a{*author, "build.author"};
    if (auto r = a.only({"name", "email", "login"}))
      return *r;
    BT_TRY(name, a.string("name"));
    BT_TRY(email, a.string("email"));
    BT_TRY(login, a.string("login"));
    out.info.author = {std::move(name), std::move(email), std::move(login)};
  }
  return out;
}

checked<model::job_event> job_of(const fields& top, event_type type,
                                 std::optional<model::timestamp> time) {
  BT_TRY(obj, top.child("job", true));
  fields j{*obj, "job"};
  if (auto r = j.only({"id", "name", "step", "attempt", "state", "exit_status", "soft_failed",
                       "waits_for_message", "wait_timeout", "url"}))
    return *r;
  model::job_event e;
  auto& a = e.report;
  BT_TRY(id, id_of(j, "id"));
  if (id.empty())
    return invalid("job.id", "required: each attempt has its own id");
  a.id = std::move(id);
  BT_TRY(name, j.string("name"));
  BT_TRY(step, j.string("step"));
  if (name.empty() && step.empty())
    return invalid("job.name", "required unless job.step is given: the attempts of a job share it");
  // An event that names only the step leaves the name an earlier one gave.
  e.name = name;
  e.group = step.empty() ? name : step;
  BT_TRY(attempt, j.integer("attempt"));
  if (attempt && *attempt < 0)
    return invalid("job.attempt", "a non-negative integer");
  e.numbered = attempt.has_value();
  a.number = attempt.value_or(0);
  BT_TRY(waits, j.boolean("waits_for_message"));
  BT_TRY(timeout, j.number("wait_timeout"));
  if (timeout && !waits)
    return invalid("job.wait_timeout", "only a job that waits for a message has a wait timeout");
  if (timeout && (*timeout <= 0 || *timeout > max_wait_timeout_s))
    return invalid("job.wait_timeout", "seconds, more than 0 and at most 30 days");
  if (waits && type != event_type::job_finished)
    return invalid("job.waits_for_message", "only job.finished says that a target waits");
  a.waits = waits;
  e.wait_timeout_ms = timeout ? std::max<std::int64_t>(1, std::llround(*timeout * 1000)) : 0;
  BT_TRY(state, j.string("state"));
  a.source_state = state;
  if (type == event_type::job_started) {
    if (!state.empty() && state != "running" && state != "scheduled")
      return invalid("job.state", "job.started takes 'scheduled' or 'running'");
    a.state = state == "scheduled" ? job_state::scheduled : job_state::running;
    if (state.empty())
      a.source_state = "running";
    a.started = time;
  } else {
    auto it = finished_states.find(state);
    if (it == finished_states.end())
      return invalid("job.state", "job.finished takes passed, failed, timed_out, canceled, "
                                  "skipped or broken");
    a.state = it->second;
    a.finished = time;
  }
  BT_TRY(exit_status, j.integer("exit_status"));
  BT_TRY(soft, j.boolean("soft_failed"));
  BT_TRY(url, j.string("url"));
  a.exit_status = exit_status;
  a.soft_failed = soft;
  a.url = std::move(url);
  // This API's rule: the sender's word decides. Failed or timed out fails the job
  // whatever the exit status, unless it was a soft fail.
  a.fails = (a.state == job_state::failed || a.state == job_state::timed_out) && !soft;
  return e;
}

checked<model::statistic_event> statistic_of(const fields& top) {
  BT_TRY(obj, top.child("statistic", true));
  fields s{*obj, "statistic"};
  if (auto r = s.only({"key", "value"}))
    return *r;
  BT_TRY(key, s.string("key"));
  // Names are trimmed (SPEC §5): "BuildDuration " and "BuildDuration" are one statistic.
  key = model::trim_statistic(key);
  if (key.empty())
    return invalid("statistic.key", "required, a non-empty name");
  if (key.size() > 256)
    return invalid("statistic.key", "at most 256 bytes");
  BT_TRY(value, s.number("value"));
  if (!value)
    return invalid("statistic.value", "required, a number");
  return model::statistic_event{std::move(key), *value};
}

/// A unit result entry of a message; `at` is its path (`unit[2]`).
checked<model::unit_result> unit_of(simdjson::dom::element e, const std::string& at) {
  simdjson::dom::object obj;
  if (e.get(obj) != simdjson::SUCCESS)
    return invalid(at, "expected an object");
  fields u{obj, at};
  if (auto r = u.only({"name", "result", "duration", "namespace", "path", "details"}))
    return *r;
  model::unit_result out;
  BT_TRY(name, u.string("name"));
  if (name.empty())
    return invalid(u.at("name"), "required, a non-empty string");
  BT_TRY(result, u.string("result"));
  static constexpr std::array<std::string_view, 5> results{"pass", "fail", "skip", "broken",
                                                           "unsound"};
  if (std::find(results.begin(), results.end(), result) == results.end())
    return invalid(u.at("result"), "required: pass, fail, skip, broken or unsound");
  BT_TRY(duration, u.number("duration"));
  if (duration && *duration < 0)
    return invalid(u.at("duration"), "seconds, not negative");
  BT_TRY(ns, u.string("namespace"));
  BT_TRY(path, u.string("path"));
  BT_TRY(details, u.string("details"));
  return model::unit_result{std::move(name), std::move(result), duration, std::move(ns),
                            std::move(path), std::move(details)};
}

/// A lint result entry of a message; `at` is its path (`lint[0]`).
checked<model::lint_result> lint_of(simdjson::dom::element e, const std::string& at) {
  simdjson::dom::object obj;
  if (e.get(obj) != simdjson::SUCCESS)
    return invalid(at, "expected an object");
  fields l{obj, at};
  if (auto r = l.only({"name", "code", "severity", "path", "line", "description"}))
    return *r;
  BT_TRY(name, l.string("name"));
  BT_TRY(code, l.string("code"));
  BT_TRY(severity, l.string("severity"));
  BT_TRY(path, l.string("path"));
  BT_TRY(line, l.integer("line"));
  BT_TRY(description, l.string("description"));
  for (auto [field, value] : {std::pair{"name", &name}, {"code", &code}, {"path", &path}})
    if (value->empty())
      return invalid(l.at(field), "required, a non-empty string");
  static constexpr std::array<std::string_view, 5> severities{"advice", "autofix", "warning",
                                                              "error", "disabled"};
  if (std::find(severities.begin(), severities.end(), severity) == severities.end())
    return invalid(l.at("severity"), "required: advice, autofix, warning, error or disabled");
  if (line && *line < 1)
    return invalid(l.at("line"), "a line number, from 1");
  return model::lint_result{std::move(name), std::move(code), std::move(severity),
                            std::move(path), line, std::move(description)};
}

/// The results of one list (`unit` or `lint`): all valid, or the first invalid entry.
template <class Result, class Parse>
std::optional<rejection> results_of(const fields& m, std::string_view name,
                                    std::vector<Result>& out, Parse parse) {
  auto v = m.get(name);
  if (!v)
    return std::nullopt;
  simdjson::dom::array list;
  if (v->get(list) != simdjson::SUCCESS)
    return invalid(m.at(name), "expected a list");
  std::size_t i = 0;
  for (auto e : list) {
    auto r = parse(e, m.at(name) + "[" + std::to_string(i++) + "]");
    if (auto* bad = std::get_if<rejection>(&r))
      return *bad;
    out.push_back(std::move(std::get<0>(r)));
  }
  return std::nullopt;
}

/// The message fields (`type`, `unit`, `lint`, `generation`) of `m`, for `target`.
checked<model::target_message> message_fields(const fields& m, std::string target) {
  model::target_message out;
  out.target = std::move(target);
  BT_TRY(type, m.string("type"));
  auto kind = model::parse_message_kind(type);
  if (!kind)
    return invalid(m.at("type"), "required: pass, fail or work");
  out.kind = *kind;
  BT_TRY(generation, m.integer("generation"));
  if (generation && *generation < 1)
    return invalid(m.at("generation"), "a build generation, from 1");
  if (generation)
    out.generation = static_cast<std::uint64_t>(*generation);
  if (auto r = results_of(m, "unit", out.unit, unit_of))
    return *r;
  if (auto r = results_of(m, "lint", out.lint, lint_of))
    return *r;
  return out;
}

checked<model::target_message> message_of(const fields& top) {
  BT_TRY(obj, top.child("message", true));
  fields m{*obj, "message"};
  if (auto r = m.only({"target", "type", "unit", "lint", "generation"}))
    return *r;
  BT_TRY(target, m.string("target"));
  if (auto r = check_key_part(m, "target", target))
    return *r;
  return message_fields(m, std::move(target));
}

/// A request body that must be one JSON object (the messages and commands endpoints).
checked<fields> json_body(std::string_view content_type, std::string_view body,
                          std::string_view what) {
  if (!content_type.empty() && !is_media_type(content_type, "application/json"))
    return rejection{415, "unsupported_media_type", "send application/json", "Content-Type"};
  return parse_object(body, what);
}

/// Key parts in a URL: a path that names no build (or target) is 404.
std::optional<rejection> check_url_parts(std::initializer_list<const std::string*> parts) {
  for (auto* part : parts)
    if (auto problem = key_part_problem(*part))
      return rejection{404, "not_found",
                       "not a build key or target name: each part " + *problem, ""};
  return std::nullopt;
}

/// One event from one JSON text.
checked<model::envelope> event_of(std::string_view text, model::timestamp now) {
  BT_TRY(top, parse_object(text, "an event"));
  if (auto r = top.only({"type", "delivery", "time", "build", "job", "statistic", "message"}))
    return *r;
  BT_TRY(type_name, top.string("type"));
  auto type = event_types.find(type_name);
  if (type == event_types.end())
    return invalid("type", "expected build.started, build.finished, build.interrupted, "
                           "job.started, job.finished, statistic or message");
  BT_TRY(delivery, top.string("delivery"));
  if (delivery.size() > 256)
    return invalid("delivery", "at most 256 bytes");
  BT_TRY(time, top.time("time"));
  BT_TRY(build, build_of(top));
  bool job_event = type->second == event_type::job_started || type->second == event_type::job_finished;
  bool stat_event = type->second == event_type::statistic;
  if (!job_event && top.get("job"))
    return invalid("job", "only job.started and job.finished carry a job");
  if (!stat_event && top.get("statistic"))
    return invalid("statistic", "only statistic events carry a statistic");
  if (type->second != event_type::message && top.get("message"))
    return invalid("message", "only message events carry a message");
  if (type->second != event_type::build_finished && !build.status.empty())
    return invalid("build.status", "only build.finished carries a status");
  model::envelope env{std::move(build.key), std::move(delivery), now, std::move(build.info),
                      model::statistic_event{}};
  switch (type->second) {
    case event_type::build_started:
      env.body = model::build_event{model::build_event::started, model::build_end::completed,
                                    "running"};
      break;
    case event_type::build_finished: {
      model::build_end end;
      if (build.status.empty() || build.status == "passed")
        end = model::build_end::completed;
      else if (build.status == "failed")
        end = model::build_end::failed;
      else if (build.status == "canceled")
        end = model::build_end::canceled;
      else
        return invalid("build.status", "build.finished takes passed, failed or canceled "
                                       "(or none: the jobs decide)");
      env.body = model::build_event{model::build_event::finished, end,
                                    build.status.empty() ? "finished" : build.status};
      break;
    }
    case event_type::build_interrupted:
      env.body = model::build_event{model::build_event::finished, model::build_end::interrupted,
                                    "interrupted"};
      break;
    case event_type::job_started:
    case event_type::job_finished: {
      BT_TRY(job, job_of(top, type->second, time));
      env.body = std::move(job);
      break;
    }
    case event_type::statistic: {
      BT_TRY(stat, statistic_of(top));
      env.body = std::move(stat);
      break;
    }
    case event_type::message: {
      BT_TRY(message, message_of(top));
      env.body = std::move(message);
      break;
    }
  }
  return env;
}

class native_source final : public source {
public:
  explicit native_source(const config::native_config& cfg) : cfg_{cfg} {}
  std::string_view name() const override { return "native"; }
  std::string_view path() const override { return "/api/v1/events"; }
  bool reports_duplicates() const override { return true; }

  std::optional<rejection> authenticate(const inbound& in) const override {
    return check_bearer(in.header("Authorization"), cfg_.token);
  }

  std::string label(const inbound& in) const override {
    return is_media_type(in.header("Content-Type"), "application/x-ndjson") ? "batch" : "event";
  }

  checked<delivery> parse(const inbound& in) const override {
    auto events = native_parse(in.header("Content-Type"), in.body, in.now);
    if (auto* r = std::get_if<rejection>(&events))
      return *r;
    return delivery{delivery::events, label(in), std::move(std::get<0>(events))};
  }

private:
  const config::native_config& cfg_;
};

} // namespace

std::unique_ptr<source> make_native_source(const config::native_config& cfg) {
  return std::make_unique<native_source>(cfg);
}

checked<model::envelope> native_message(const model::build_key& key, std::string target,
                                        std::string_view content_type, std::string_view body,
                                        model::timestamp now) {
  if (auto r = check_url_parts({&key.source, &key.pipeline, &key.id, &target}))
    return *r;
  BT_TRY(m, json_body(content_type, body, "a message"));
  if (auto r = m.only({"type", "unit", "lint", "generation", "delivery"}))
    return *r;
  BT_TRY(delivery, m.string("delivery"));
  if (delivery.size() > 256)
    return invalid("delivery", "at most 256 bytes");
  BT_TRY(message, message_fields(m, std::move(target)));
  return model::envelope{key, std::move(delivery), now, std::nullopt, std::move(message)};
}

checked<model::envelope> native_command(const model::build_key& key,
                                        std::string_view content_type, std::string_view body,
                                        model::timestamp now) {
  if (auto r = check_url_parts({&key.source, &key.pipeline, &key.id}))
    return *r;
  BT_TRY(c, json_body(content_type, body, "a command"));
  if (auto r = c.only({"type"}))
    return *r;
  BT_TRY(type, c.string("type"));
  auto kind = model::parse_command_kind(type);
  if (!kind)
    return invalid("type", "required: pause, resume, abort or restart");
  return model::envelope{key, "", now, std::nullopt, model::build_command{*kind}};
}

checked<std::vector<model::envelope>> native_parse(std::string_view content_type,
                                                   std::string_view body, model::timestamp now) {
  std::vector<model::envelope> out;
  if (content_type.empty() || is_media_type(content_type, "application/json")) {
    BT_TRY(e, event_of(body, now));
    out.push_back(std::move(e));
    return out;
  }
  if (!is_media_type(content_type, "application/x-ndjson"))
    return rejection{415, "unsupported_media_type",
                     "send application/json (one event) or application/x-ndjson (a batch)",
                     "Content-Type"};
  // One envelope per line, reserved at once: growing the vector would move each
  // envelope (most of a kilobyte) several times over. At most `reserved_events`, so that
  // a body of blank or short lines does not reserve a kilobyte for each.
  constexpr std::size_t reserved_events = 1024;
  auto lines = static_cast<std::size_t>(std::count(body.begin(), body.end(), '\n')) + 1;
  out.reserve(std::min(lines, reserved_events));
  std::size_t line = 0;
  while (!body.empty()) {
    ++line;
    auto end = body.find('\n');
    auto text = body.substr(0, end);
    body = end == std::string_view::npos ? std::string_view{} : body.substr(end + 1);
    if (!text.empty() && text.back() == '\r')
      text.remove_suffix(1);
    if (text.find_first_not_of(" \t") == std::string_view::npos)
      continue; // blank lines separate nothing
    auto e = event_of(text, now);
    if (auto* r = std::get_if<rejection>(&e)) {
      auto at_line = *r;
      at_line.line = line;
      at_line.message = "line " + std::to_string(line) + ": " + at_line.message;
      return at_line;
    }
    out.push_back(std::move(std::get<0>(e)));
  }
  if (out.empty())
    return rejection{400, "empty_batch", "the batch holds no event", ""};
  return out;
}

} // namespace bt::sources
