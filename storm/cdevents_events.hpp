#pragma once

// CDEvents as a sender (Tekton, Jenkins, Keptn) posts them: pipelineRun and taskRun
// events of CDEvents 0.4.1, and the CloudEvents HTTP requests that carry them.

#include <map>
#include <string>

#include <nlohmann/json.hpp>

namespace bt::storm::cdevents {

using nlohmann::json;

inline const std::string event_source = "/apis/tekton.dev/v1/namespaces/ci";

/// A CDEvent of `kind` (`pipelinerun.started`, `taskrun.finished`, ...) with context id
/// `id`, about subject `subject`; `content` is its subject's content.
inline json event(const std::string& kind, const std::string& id, const std::string& subject,
                  json content, const std::string& timestamp = "2026-11-30T10:00:00Z") {
  auto type_of = [&](const std::string& subject_type) {
    return json{{"id", subject}, {"source", event_source}, {"type", subject_type},
                {"content", std::move(content)}};
  };
  bool task = kind.starts_with("taskrun");
  return json{{"context", {{"version", "0.4.1"},
                           {"id", id},
                           {"source", event_source},
                           {"type", "dev.cdevents." + kind + ".0.2.0"},
                           {"timestamp", timestamp}}},
              {"subject", type_of(task ? "taskRun" : "pipelineRun")}};
}

/// A pipelineRun event of pipeline `pipeline`; `outcome` only for `finished`.
inline json pipeline_run(const std::string& predicate, const std::string& id, const std::string& run,
                         const std::string& pipeline, const std::string& outcome = "") {
  json content{{"pipelineName", pipeline}, {"url", "https://ci.example.com/runs/" + run}};
  if (!outcome.empty())
    content["outcome"] = outcome;
  return event("pipelinerun." + predicate, id, run, std::move(content));
}

/// A taskRun event of task `task` in pipelineRun `run`; `outcome` only for `finished`.
inline json task_run(const std::string& predicate, const std::string& id, const std::string& task_run_id,
                     const std::string& task, const std::string& run, const std::string& outcome = "") {
  json content{{"taskName", task}, {"pipelineRun", {{"id", run}}}};
  if (!outcome.empty())
    content["outcome"] = outcome;
  return event("taskrun." + predicate, id, task_run_id, std::move(content));
}

/// A request: its headers (without credentials) and body.
struct request {
  std::map<std::string, std::string> headers;
  std::string body;
};

/// Binary mode: the CDEvent is the body, its context the `ce-*` headers.
inline request binary(const json& cdevent) {
  auto& c = cdevent.at("context");
  request r{{{"Content-Type", "application/json"},
             {"ce-specversion", "1.0"},
             {"ce-id", c.value("id", "")},
             {"ce-source", c.value("source", "")},
             {"ce-type", c.value("type", "")},
             {"ce-time", c.value("timestamp", "")}},
            cdevent.dump()};
  if (auto subject = cdevent.at("subject").value("id", ""); !subject.empty())
    r.headers["ce-subject"] = subject;
  return r;
}

/// The structured-mode CloudEvent of a CDEvent.
inline json cloud_event(const json& cdevent) {
  auto& c = cdevent.at("context");
  json ce{{"specversion", "1.0"},     {"id", c.value("id", "")},
          {"source", c.value("source", "")}, {"type", c.value("type", "")},
          {"time", c.value("timestamp", "")}, {"datacontenttype", "application/json"},
          {"data", cdevent}};
  if (auto subject = cdevent.at("subject").value("id", ""); !subject.empty())
    ce["subject"] = subject;
  return ce;
}

/// Structured mode: the CloudEvent is the body.
inline request structured(const json& cdevent) {
  return {{{"Content-Type", "application/cloudevents+json"}}, cloud_event(cdevent).dump()};
}

/// Batched structured mode.
inline request batch(const std::vector<json>& cdevents) {
  auto list = json::array();
  for (auto& e : cdevents)
    list.push_back(cloud_event(e));
  return {{{"Content-Type", "application/cloudevents-batch+json"}}, list.dump()};
}

} // namespace bt::storm::cdevents
