#include "notify/cdevents.hpp"

#include "model/json.hpp"
#include "notify/webhook.hpp"

namespace bt::notify {
namespace {

using nlohmann::json;

constexpr const char* cdevents_version = "0.4.1";
constexpr const char* pipelinerun_finished = "dev.cdevents.pipelinerun.finished.0.2.0";
constexpr const char* taskrun_finished = "dev.cdevents.taskrun.finished.0.2.0";

/// CDEvents' outcome of a finished build or attempt: success, failure or error.
std::string outcome_of(model::build_state s) {
  switch (s) {
    case model::build_state::passed: return "success";
    case model::build_state::failed: return "failure";
    default: return "error"; // canceled, interrupted, aborted: it did not run to an end
  }
}

std::string outcome_of(const model::attempt& a) {
  switch (a.state) {
    case model::job_state::passed:
    case model::job_state::skipped: return "success";
    case model::job_state::failed:
    case model::job_state::timed_out: return a.fails ? "failure" : "success";
    default: return a.fails ? "failure" : "error";
  }
}

/// `failed jobs: lint, test`, CDEvents' `errors` of a failed build; empty otherwise.
std::string errors_of(const model::build& b) {
  std::string out;
  for (auto* j : b.failed_jobs())
    out += (out.empty() ? "failed jobs: " : ", ") + j->name;
  return out;
}

std::string time_of(const std::optional<model::timestamp>& t, const model::build& b) {
  if (t)
    return model::format_time(*t);
  return model::format_time(b.updated.value_or(model::timestamp{}));
}

json context(const outbox_entry& e, const std::string& source, const char* type,
             const std::string& timestamp) {
  return json{{"version", cdevents_version},
              {"id", delivery_id(e)},
              {"source", source},
              {"type", type},
              {"timestamp", timestamp}};
}

} // namespace

json cdevent_of(const outbox_entry& e, const std::string& source) {
  auto& b = e.notice.subject;
  auto run_id = b.key.str();
  if (e.notice.job) {
    for (auto& [group, j] : b.jobs)
      for (auto& a : j.attempts)
        if (a.id == *e.notice.job) {
          json content{{"taskName", j.name.empty() ? group : j.name},
                       {"pipelineRun", {{"id", run_id}, {"source", source}}},
                       {"outcome", outcome_of(a)}};
          if (!a.url.empty())
            content["url"] = a.url;
          return json{{"context", context(e, source, taskrun_finished, time_of(a.finished, b))},
                      {"subject", {{"id", run_id + "/" + a.id},
                                   {"source", source},
                                   {"type", "taskRun"},
                                   {"content", std::move(content)}}}};
        }
  }
  json content{{"pipelineName", b.info.pipeline_name.empty() ? b.key.pipeline : b.info.pipeline_name},
               {"outcome", outcome_of(b.state)}};
  if (!b.info.url.empty())
    content["url"] = b.info.url;
  if (auto errors = errors_of(b); !errors.empty())
    content["errors"] = errors;
  return json{{"context", context(e, source, pipelinerun_finished, time_of(b.finished, b))},
              {"subject", {{"id", run_id},
                           {"source", source},
                           {"type", "pipelineRun"},
                           {"content", std::move(content)}}}};
}

net::outbound_request cdevents_sink::request(const outbox_entry& e,
                                             const std::optional<std::string>&) const {
  auto& cfg = config();
  auto event = cdevent_of(e, cfg.event_source);
  auto& ctx = event["context"];
  net::outbound_request req{"POST", cfg.url, {}, {}};
  if (cfg.mode == "structured") {
    json cloud{{"specversion", "1.0"},
               {"id", ctx["id"]},
               {"source", ctx["source"]},
               {"type", ctx["type"]},
               {"subject", event["subject"]["id"]},
               {"time", ctx["timestamp"]},
               {"datacontenttype", "application/json"},
               {"data", event}};
    req.body = model::to_text(cloud);
    req.headers.emplace_back("Content-Type", "application/cloudevents+json");
  } else {
    req.body = model::to_text(event);
    req.headers.emplace_back("Content-Type", "application/json");
    req.headers.emplace_back("ce-specversion", "1.0");
    req.headers.emplace_back("ce-id", ctx["id"].get<std::string>());
    req.headers.emplace_back("ce-source", ctx["source"].get<std::string>());
    req.headers.emplace_back("ce-type", ctx["type"].get<std::string>());
    req.headers.emplace_back("ce-subject", event["subject"]["id"].get<std::string>());
    req.headers.emplace_back("ce-time", ctx["timestamp"].get<std::string>());
  }
  add_delivery_headers(req, e, cfg);
  return req;
}

} // namespace bt::notify
