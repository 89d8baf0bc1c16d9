#include "sources/taskcluster.hpp"

#include <array>

#include "sources/payload.hpp"

namespace bt::sources::taskcluster {
namespace {

constexpr std::array<std::string_view, 5> run_states{"pending", "running", "completed", "failed",
                                                     "exception"};

checked<std::string> slug(const fields& f, std::string_view name) {
  BT_TRY(value, f.string(name));
  if (!treeherder::slug_to_uuid(value))
    return invalid(f.at(name), "expected a task id (a 22-character slug)");
  return value;
}

checked<run> run_of(const fields& f) {
  run r;
  BT_TRY(id, f.integer("runId"));
  BT_TRY(state, f.string("state"));
  if (std::find(run_states.begin(), run_states.end(), state) == run_states.end())
    return invalid(f.at("state"), "expected pending, running, completed, failed or exception");
  BT_TRY(created, f.string("reasonCreated"));
  BT_TRY(resolved_why, f.string("reasonResolved"));
  BT_TRY(started, f.time("started"));
  BT_TRY(resolved, f.time("resolved"));
  r.id = id.value_or(-1);
  r.state = std::move(state);
  r.reason_created = std::move(created);
  r.reason_resolved = std::move(resolved_why);
  r.started = started;
  r.resolved = resolved;
  return r;
}

/// A run's state for the model, with whether it fails its task: the queue's failed,
/// and exceptions other than a cancel or a supersede (a retry run follows those the
/// queue retries, and decides then).
std::pair<model::job_state, bool> state_of(const run& r) {
  using model::job_state;
  if (r.state == "pending")
    return {job_state::scheduled, false};
  if (r.state == "running")
    return {job_state::running, false};
  if (r.state == "completed")
    return {job_state::passed, false};
  if (r.state == "failed")
    return {job_state::failed, true};
  if (r.reason_resolved == "canceled" || r.reason_resolved == "superseded")
    return {job_state::canceled, false};
  if (r.reason_resolved == "deadline-exceeded")
    return {job_state::timed_out, true};
  return {job_state::failed, true};
}

} // namespace

checked<task_message> parse_message(std::string_view body) {
  BT_TRY(top, parse_object(body, "the message"));
  BT_TRY(exchange, top.string("exchange"));
  auto event = treeherder::event_of_exchange(exchange);
  if (!event)
    return invalid("exchange", "expected exchange/taskcluster-queue/v1/task-{defined,pending,"
                               "running,completed,failed,exception}");
  BT_TRY(payload_obj, top.child("payload", true));
  fields payload{*payload_obj, "payload"};
  BT_TRY(status_obj, payload.child("status", true));
  fields status{*status_obj, "payload.status"};
  task_message m;
  m.event = *event;
  BT_TRY(task_id, slug(status, "taskId"));
  BT_TRY(group, slug(status, "taskGroupId"));
  BT_TRY(scheduler, status.string("schedulerId"));
  if (auto problem = key_part_problem(scheduler))
    return invalid(status.at("schedulerId"), *problem);
  m.task_id = std::move(task_id);
  m.task_group = std::move(group);
  m.scheduler = std::move(scheduler);
  if (auto runs = status.get("runs")) {
    if (!runs->is_array())
      return invalid(status.at("runs"), "expected an array");
    std::size_t i = 0;
    simdjson::dom::array list = runs->get_array().value_unsafe();
    for (auto item : list) {
      auto at = status.at("runs") + "[" + std::to_string(i) + "]";
      if (!item.is_object())
        return invalid(at, "expected an object");
      BT_TRY(r, run_of(fields{item.get_object().value_unsafe(), at}));
      if (r.id != static_cast<std::int64_t>(i))
        return invalid(at + ".runId", "expected " + std::to_string(i) + ", the run's place");
      m.runs.push_back(std::move(r));
      ++i;
    }
  }
  BT_TRY(run_id, payload.integer("runId"));
  if (m.event != treeherder::queue_event::defined) {
    if (!run_id || *run_id < 0 || static_cast<std::size_t>(*run_id) >= m.runs.size())
      return invalid(payload.at("runId"), "expected the number of a run in payload.status.runs");
    m.run_id = *run_id;
  }
  m.payload = simdjson::minify(*payload_obj);
  return m;
}

model::build_key build_of(const task_message& m) {
  return {"taskcluster", m.scheduler, m.task_group};
}

std::vector<model::job_event> job_events(const task_message& m) {
  std::vector<model::job_event> out;
  for (auto& r : m.runs) {
    model::job_event e;
    e.group = e.name = m.task_id;
    e.report.id = m.task_id + "/" + std::to_string(r.id);
    e.report.number = r.id;
    std::tie(e.report.state, e.report.fails) = state_of(r);
    e.report.source_state = r.reason_resolved.empty() ? r.state : r.state + ":" + r.reason_resolved;
    e.report.started = r.started;
    e.report.finished = r.resolved;
    out.push_back(std::move(e));
  }
  return out;
}

std::vector<model::envelope> envelopes(const task_message& m, std::string_view body,
                                       model::timestamp now, std::string_view root_url) {
  auto key = build_of(m);
  model::build_info info;
  info.pipeline_name = m.scheduler;
  if (!root_url.empty())
    info.url = std::string{root_url} + "/tasks/groups/" + m.task_group;
  std::vector<model::envelope> out;
  for (auto& e : job_events(m))
    out.push_back({key, "", now, info, std::move(e)});
  out.push_back({key, "", now, std::nullopt, model::relayed{std::string{relay}, std::string{body}}});
  return out;
}

} // namespace bt::sources::taskcluster

namespace bt::sources {
namespace {

/// A queue event's metric label: its exchange's last word, `task-completed`, ...
std::string label_of(treeherder::queue_event e) {
  return "task-" + std::string{treeherder::to_string(e)};
}

class taskcluster_source final : public source {
public:
  explicit taskcluster_source(const config::taskcluster_config& cfg) : cfg_{cfg} {}
  std::string_view name() const override { return "taskcluster"; }
  std::string_view path() const override { return "/webhooks/taskcluster"; }

  std::optional<rejection> authenticate(const inbound& in) const override {
    return check_bearer(in.header("Authorization"), cfg_.token);
  }

  /// The queue event (`task-completed`, ...), or `unknown`.
  std::string label(const inbound& in) const override {
    simdjson::dom::parser parser;
    std::string_view exchange;
    if (parser.parse(in.body.data(), in.body.size(), true)["exchange"].get(exchange) == simdjson::SUCCESS)
      if (auto e = treeherder::event_of_exchange(exchange))
        return label_of(*e);
    return "unknown";
  }

  checked<delivery> parse(const inbound& in) const override {
    auto parsed = taskcluster::parse_message(in.body);
    if (auto* r = std::get_if<rejection>(&parsed))
      return *r;
    auto& m = std::get<taskcluster::task_message>(parsed);
    auto label = label_of(m.event);
    // Treeherder skips unscheduled tasks, and the queue says nothing of their runs.
    if (m.event == treeherder::queue_event::defined)
      return delivery{delivery::ignored, std::move(label), {}};
    return delivery{delivery::events, std::move(label),
                    taskcluster::envelopes(m, in.body, in.now, cfg_.root_url)};
  }

private:
  const config::taskcluster_config& cfg_;
};

} // namespace

std::unique_ptr<source> make_taskcluster_source(const config::taskcluster_config& cfg) {
  return std::make_unique<taskcluster_source>(cfg);
}

} // namespace bt::sources
