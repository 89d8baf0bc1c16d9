#include "sources/cdevents.hpp"

#include <algorithm>
#include <array>
#include <cstdio>

#include <nlohmann/json.hpp>
#include <simdjson.h>

#include "sources/payload.hpp"
#include "support/json_schema.hpp"

#ifndef BT_SCHEMA_DIR
#error "BT_SCHEMA_DIR names the folder of the schemas that come with buildtrack"
#endif

namespace bt::sources::cdevents {
namespace {

using nlohmann::json;

/// Each tracked type: its name in `context.type` (before the version) and its schema.
struct type_info {
  tracked type;
  std::string_view prefix; ///< `dev.cdevents.pipelinerun.finished.`
  std::string_view schema; ///< `pipelinerunfinished.json`
};

constexpr std::array<type_info, 5> types{{
  {tracked::pipelinerun_queued, "dev.cdevents.pipelinerun.queued.", "pipelinerunqueued.json"},
  {tracked::pipelinerun_started, "dev.cdevents.pipelinerun.started.", "pipelinerunstarted.json"},
  {tracked::pipelinerun_finished, "dev.cdevents.pipelinerun.finished.", "pipelinerunfinished.json"},
  {tracked::taskrun_started, "dev.cdevents.taskrun.started.", "taskrunstarted.json"},
  {tracked::taskrun_finished, "dev.cdevents.taskrun.finished.", "taskrunfinished.json"},
}};

constexpr std::string_view cdevents_prefix = "dev.cdevents.";

bool is_taskrun(tracked t) {
  return t == tracked::taskrun_started || t == tracked::taskrun_finished;
}

/// `/subject/content/0` as a field path under `prefix`: `<prefix>subject.content[0]`.
std::string field_of(std::string_view pointer, const std::string& prefix) {
  std::string out = prefix;
  std::size_t pos = 1;
  while (pos <= pointer.size() && pointer.size() > 1) {
    auto slash = pointer.find('/', pos);
    auto token = pointer.substr(pos, slash == std::string_view::npos ? slash : slash - pos);
    bool index = !token.empty() && token.find_first_not_of("0123456789") == std::string_view::npos;
    if (index)
      out.append("[").append(token).append("]");
    else {
      if (!out.empty() && out.back() != '.')
        out += '.';
      out.append(token);
    }
    if (slash == std::string_view::npos)
      break;
    pos = slash + 1;
  }
  if (!out.empty() && out.back() == '.')
    out.pop_back();
  return out;
}

/// The deepest of a schema's complaints (the outer ones only say that an inner
/// property failed), as a 422 naming its field under `prefix`.
rejection schema_rejection(const std::vector<std::string>& problems, const std::string& prefix) {
  const std::string* deepest = &problems.front();
  auto depth = [](const std::string& p) { return p.find(": "); };
  for (auto& p : problems)
    if (depth(p) > depth(*deepest))
      deepest = &p;
  auto colon = depth(*deepest);
  auto field = field_of(std::string_view{*deepest}.substr(0, colon), prefix);
  if (field.empty())
    field = prefix.empty() ? "body" : prefix.substr(0, prefix.size() - 1);
  return invalid(std::move(field),
                 "does not match its CDEvents 0.4.1 schema: " + deepest->substr(colon + 2));
}

/// A string member of `j`, empty when absent or not a string.
std::string text(const json& j, const char* name) {
  auto it = j.find(name);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string{};
}

/// Checks one CDEvent (its JSON text), `prefix` naming where it sits (`data.`).
checked<cdevent> check_cdevent(std::string_view doc_text, const std::string& prefix,
                               const schemas& s) {
  auto doc = json::parse(doc_text, nullptr, false);
  if (!doc.is_object())
    return invalid(prefix.empty() ? "body" : prefix.substr(0, prefix.size() - 1),
                   "expected a CDEvent, a JSON object");
  auto context = doc.find("context");
  if (context == doc.end() || !context->is_object())
    return invalid(prefix + "context", "required, an object");
  cdevent e;
  e.type_name = text(*context, "type");
  if (!e.type_name.starts_with(cdevents_prefix))
    return invalid(prefix + "context.type", "expected a CDEvents type, dev.cdevents.<subject>.<predicate>.<version>");
  if (auto known = tracked_of(e.type_name)) {
    auto problems = s.by_type[static_cast<std::size_t>(*known)]->problems(doc);
    if (!problems.empty())
      return schema_rejection(problems, prefix);
    e.type = known;
  }
  e.id = text(*context, "id");
  e.source = text(*context, "source");
  if (e.id.empty())
    return invalid(prefix + "context.id", "required, a non-empty string");
  if (e.source.empty())
    return invalid(prefix + "context.source", "required, a non-empty string");
  if (e.id.size() > 256)
    return invalid(prefix + "context.id", "at most 256 bytes");
  if (!e.type)
    return e;
  // The schema checked every type below.
  auto time = model::parse_time(text(*context, "timestamp"));
  if (!time)
    return invalid(prefix + "context.timestamp", "expected an RFC 3339 time");
  e.time = *time;
  auto& subject = doc["subject"];
  auto& content = subject["content"];
  e.subject_id = text(subject, "id");
  e.subject_source = text(subject, "source");
  if (e.subject_source.empty())
    e.subject_source = e.source;
  e.url = text(content, "url");
  e.outcome = text(content, "outcome");
  e.errors = text(content, "errors");
  if (!e.outcome.empty() && e.outcome != "success" && e.outcome != "failure" && e.outcome != "error")
    return invalid(prefix + "subject.content.outcome", "expected success, failure or error");
  if (is_taskrun(*e.type)) {
    e.name = text(content, "taskName");
    auto run = content.find("pipelineRun");
    if (run == content.end())
      return invalid(prefix + "subject.content.pipelineRun",
                     "required: the pipelineRun whose job this taskRun is");
    e.run_id = text(*run, "id");
  } else {
    e.name = text(content, "pipelineName");
  }
  for (auto [field, value] : {std::pair{"subject.id", &e.subject_id},
                              {"subject.content.pipelineRun.id", &e.run_id}})
    if (key_part(*value).size() > 256)
      return invalid(prefix + field, "at most 256 bytes once '/' and '%' are encoded");
  return e;
}

/// A CloudEvent attribute that must agree with the CDEvent's context: 422 naming the
/// attribute (`ce-id` in binary mode, `id` in structured mode) when it does not.
std::optional<rejection> agree(std::string_view attribute, std::string_view value,
                               std::string_view context_value, std::string_view context_field) {
  if (value.empty())
    return invalid(std::string{attribute}, "required, a non-empty string");
  if (value != context_value)
    return invalid(std::string{attribute}, "'" + std::string{value} + "' differs from the CDEvent's "
                                             + std::string{context_field} + " '"
                                             + std::string{context_value} + "'");
  return std::nullopt;
}

/// The checks both modes share: the CloudEvent's attributes against the CDEvent.
/// `attr` names an attribute as the mode spells it (`ce-id`, `[2].id`).
template <class Name>
std::optional<rejection> check_attributes(const cdevent& e, std::string_view specversion,
                                          std::string_view id, std::string_view source,
                                          std::string_view type, std::string_view subject,
                                          Name attr) {
  if (specversion != "1.0")
    return invalid(attr("specversion"), "expected 1.0, the CloudEvents version");
  if (auto r = agree(attr("id"), id, e.id, "context.id"))
    return r;
  if (auto r = agree(attr("source"), source, e.source, "context.source"))
    return r;
  if (auto r = agree(attr("type"), type, e.type_name, "context.type"))
    return r;
  if (!subject.empty() && e.type && subject != e.subject_id)
    return agree(attr("subject"), subject, e.subject_id, "subject.id");
  return std::nullopt;
}

/// Binary mode: the CDEvent is the body, the CloudEvent's attributes are headers.
checked<request> parse_binary(const inbound& in, const schemas& s) {
  BT_TRY(doc, parse_document(in.body, "the CDEvent"));
  BT_TRY(e, check_cdevent(simdjson::minify(doc), "", s));
  auto header = [](std::string_view name) { return std::string{"ce-"} + std::string{name}; };
  if (auto r = check_attributes(e, in.header("ce-specversion"), in.header("ce-id"),
                                in.header("ce-source"), in.header("ce-type"),
                                in.header("ce-subject"), header))
    return *r;
  return request{{std::move(e)}};
}

/// One structured CloudEvent (`at` is its place in a batch, `[2].`, or empty).
checked<cdevent> structured_event(simdjson::dom::element element, const std::string& at,
                                  const schemas& s) {
  simdjson::dom::object obj;
  if (element.get(obj) != simdjson::SUCCESS)
    return invalid(at.empty() ? "body" : at.substr(0, at.size() - 1), "expected a CloudEvent, a JSON object");
  fields f{obj, at.empty() ? "" : at.substr(0, at.size() - 1)};
  auto attr = [&](std::string_view name) { return at + std::string{name}; };
  std::array<std::string, 6> values;
  std::size_t i = 0;
  for (auto name : {"specversion", "id", "source", "type", "subject", "datacontenttype"}) {
    BT_TRY(v, f.string(name));
    values[i++] = std::move(v);
  }
  if (!values[5].empty() && !is_media_type(values[5], "application/json"))
    return invalid(attr("datacontenttype"), "expected application/json: the CDEvent is JSON");
  if (f.get("data_base64"))
    return invalid(attr("data_base64"), "send the CDEvent as JSON under data");
  auto data = f.get("data");
  if (!data || !data->is_object())
    return invalid(attr("data"), "required: the CDEvent, a JSON object");
  BT_TRY(e, check_cdevent(simdjson::minify(*data), at + "data.", s));
  if (auto r = check_attributes(e, values[0], values[1], values[2], values[3], values[4], attr))
    return *r;
  return e;
}

} // namespace

std::optional<tracked> tracked_of(std::string_view type) {
  for (auto& t : types)
    if (type.starts_with(t.prefix))
      return t.type;
  return std::nullopt;
}

std::string_view to_string(tracked t) {
  switch (t) {
    case tracked::pipelinerun_queued: return "pipelinerun.queued";
    case tracked::pipelinerun_started: return "pipelinerun.started";
    case tracked::pipelinerun_finished: return "pipelinerun.finished";
    case tracked::taskrun_started: return "taskrun.started";
    case tracked::taskrun_finished: return "taskrun.finished";
  }
  return "unknown";
}

schemas schemas::load(const std::string& folder) {
  schemas out;
  for (auto& t : types) {
    std::string error;
    auto schema = support::json_schema::load(folder + "/" + std::string{t.schema}, error);
    if (!schema)
      throw std::runtime_error{"sources.cdevents.schemas: " + error};
    out.by_type.push_back(std::make_shared<const support::json_schema>(std::move(*schema)));
  }
  return out;
}

checked<request> parse(const inbound& in, const schemas& s) {
  auto content_type = in.header("Content-Type");
  if (content_type.empty() || is_media_type(content_type, "application/json"))
    return parse_binary(in, s);
  if (is_media_type(content_type, "application/cloudevents+json")) {
    BT_TRY(doc, parse_document(in.body, "the CloudEvent"));
    BT_TRY(e, structured_event(doc, "", s));
    return request{{std::move(e)}};
  }
  if (is_media_type(content_type, "application/cloudevents-batch+json")) {
    BT_TRY(doc, parse_document(in.body, "the batch"));
    simdjson::dom::array list;
    if (doc.get(list) != simdjson::SUCCESS)
      return rejection{400, "malformed_json", "a batch is a JSON array of CloudEvents", ""};
    request out;
    std::size_t i = 0;
    for (auto item : list) {
      BT_TRY(e, structured_event(item, "[" + std::to_string(i++) + "].", s));
      out.events.push_back(std::move(e));
    }
    if (out.events.empty())
      return rejection{400, "empty_batch", "the batch holds no event", ""};
    return out;
  }
  return rejection{415, "unsupported_media_type",
                   "send application/json with ce-* headers (binary mode), "
                   "application/cloudevents+json or application/cloudevents-batch+json",
                   "Content-Type"};
}

std::string key_part(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    if (c == '%' || c == '/' || u < 0x20 || u == 0x7f) {
      char hex[4];
      std::snprintf(hex, sizeof hex, "%%%02X", u);
      out += hex;
    } else {
      out += c;
    }
  }
  return out;
}

model::build_key build_of(const cdevent& e) {
  return {"cdevents", key_part(e.name.empty() ? e.subject_source : e.name), key_part(e.subject_id)};
}

namespace {

/// A pipelineRun event as the build's own event.
model::build_event build_event_of(const cdevent& e) {
  using model::build_event;
  switch (*e.type) {
    case tracked::pipelinerun_queued: return {build_event::scheduled, {}, "queued"};
    case tracked::pipelinerun_started: return {build_event::started, {}, "running"};
    default: break;
  }
  // No outcome: the task runs decide.
  auto end = e.outcome == "failure" ? model::build_end::failed
             : e.outcome == "error" ? model::build_end::interrupted
                                    : model::build_end::completed;
  return {build_event::finished, end, e.outcome.empty() ? "finished" : e.outcome};
}

/// A taskRun event as an attempt of the job its task name names. A retried task is a
/// new taskRun (a new id) of the same task, ordered by the sender's clock: an attempt
/// keeps the place its first event's timestamp (in ms) gave it, so a retry that
/// started after the first run ended comes after it whatever order events arrive in.
model::job_event job_event_of(const cdevent& e) {
  model::job_event j;
  j.name = e.name.empty() ? e.subject_id : e.name;
  j.group = j.name;
  auto& a = j.report;
  a.number = std::chrono::duration_cast<std::chrono::milliseconds>(e.time.time_since_epoch()).count();
  a.id = e.subject_id;
  a.url = e.url;
  if (*e.type == tracked::taskrun_started) {
    a.state = model::job_state::running;
    a.source_state = "started";
    a.started = e.time;
    return j;
  }
  a.finished = e.time;
  a.source_state = e.outcome.empty() ? "success" : e.outcome;
  if (e.outcome == "failure") {
    a.state = model::job_state::failed;
    a.fails = true;
  } else if (e.outcome == "error") {
    a.state = model::job_state::broken;
    a.fails = true;
  } else {
    a.state = model::job_state::passed;
  }
  return j;
}

} // namespace

std::vector<model::envelope> envelopes(const std::vector<cdevent>& events, model::timestamp now) {
  std::vector<model::envelope> out;
  for (auto& e : events) {
    if (!e.type)
      continue;
    if (is_taskrun(*e.type)) {
      out.push_back({{"cdevents", "", key_part(e.run_id)}, e.id, now, std::nullopt, job_event_of(e)});
      continue;
    }
    model::build_info info;
    info.pipeline_name = e.name;
    info.url = e.url;
    out.push_back({build_of(e), e.id, now, std::move(info), build_event_of(e)});
  }
  return out;
}

} // namespace bt::sources::cdevents

namespace bt::sources {
namespace {

class cdevents_source final : public source {
public:
  cdevents_source(const config::cdevents_config& cfg, cdevents::schemas schemas)
    : cfg_{cfg}, schemas_{std::move(schemas)} {}
  std::string_view name() const override { return "cdevents"; }
  std::string_view path() const override { return "/webhooks/cdevents"; }

  std::optional<rejection> authenticate(const inbound& in) const override {
    return check_bearer(in.header("Authorization"), cfg_.token);
  }

  /// The tracked type (`pipelinerun.finished`), `batch`, `other` or `unknown`: a
  /// bounded set, whatever senders put in their types.
  std::string label(const inbound& in) const override {
    if (is_media_type(in.header("Content-Type"), "application/cloudevents-batch+json"))
      return "batch";
    auto type = std::string{in.header("ce-type")};
    if (type.empty()) {
      simdjson::dom::parser parser;
      std::string_view t;
      if (parser.parse(in.body.data(), in.body.size(), true)["type"].get(t) == simdjson::SUCCESS)
        type = t;
    }
    return label_of(type);
  }

  checked<delivery> parse(const inbound& in) const override {
    auto parsed = cdevents::parse(in, schemas_);
    if (auto* r = std::get_if<rejection>(&parsed))
      return *r;
    auto& events = std::get<cdevents::request>(parsed).events;
    auto label = events.size() > 1 ? std::string{"batch"} : label_of(events.front().type_name);
    auto envelopes = cdevents::envelopes(events, in.now);
    // Other CDEvents types are acknowledged and counted, not tracked.
    if (envelopes.empty())
      return delivery{delivery::ignored, std::move(label), {}};
    return delivery{delivery::events, std::move(label), std::move(envelopes)};
  }

private:
  static std::string label_of(std::string_view type) {
    if (auto t = cdevents::tracked_of(type))
      return std::string{cdevents::to_string(*t)};
    return type.starts_with("dev.cdevents.") ? "other" : "unknown";
  }

  const config::cdevents_config& cfg_;
  cdevents::schemas schemas_;
};

} // namespace

std::unique_ptr<source> make_cdevents_source(const config::cdevents_config& cfg) {
  auto folder = cfg.schemas.empty() ? std::string{BT_SCHEMA_DIR} + "/cdevents-0.4.1" : cfg.schemas;
  return std::make_unique<cdevents_source>(cfg, cdevents::schemas::load(folder));
}

} // namespace bt::sources
