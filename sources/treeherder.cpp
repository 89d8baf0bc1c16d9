#include "sources/treeherder.hpp"

#include <array>
#include <charconv>

#include "net/client.hpp"
#include "support/json_schema.hpp"

namespace bt::sources::treeherder {
namespace {

using nlohmann::json;

constexpr std::array<std::string_view, 6> event_names{"defined",   "pending", "running",
                                                      "completed", "failed",  "exception"};
constexpr std::array<std::string_view, 10> reason_names{
  "missing_route",  "ambiguous_route", "v1_route",      "malformed_route", "missing_config",
  "invalid_config", "invalid_job",     "routing_key",   "exception_run",   "unreadable_task"};
constexpr std::string_view exchange_prefix = "exchange/taskcluster-queue/v1/task-";
/// Routing key words are at most this long (tc-lib-pulse's maxSize).
constexpr std::size_t max_word = 25;

/// A member's text; empty when it is absent or not a string.
std::string text(const json& j, std::string_view key) {
  if (!j.is_object())
    return {};
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string{};
}

/// A member that is an object, or null.
const json& object(const json& j, std::string_view key) {
  static const json none;
  if (!j.is_object())
    return none;
  auto it = j.find(key);
  return it != j.end() && it->is_object() ? *it : none;
}

/// The first `n` code points of UTF-8 `s` (JSON Schema counts code points).
std::string first_code_points(const std::string& s, std::size_t n) {
  std::size_t i = 0;
  for (std::size_t seen = 0; i < s.size() && seen < n; ++seen)
    do
      ++i;
    while (i < s.size() && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80);
  return s.substr(0, i);
}

std::vector<std::string> words(std::string_view s, char separator) {
  std::vector<std::string> out;
  for (;;) {
    auto at = s.find(separator);
    out.emplace_back(s.substr(0, at));
    if (at == std::string_view::npos)
      return out;
    s.remove_prefix(at + 1);
  }
}

/// The run `n` of the status, or null.
const json& run_of(const json& payload, std::int64_t n) {
  static const json none;
  auto& status = object(payload, "status");
  if (!status.is_object())
    return none;
  auto it = status.find("runs");
  if (it == status.end() || !it->is_array() || n < 0 || static_cast<std::size_t>(n) >= it->size())
    return none;
  return (*it)[static_cast<std::size_t>(n)];
}

/// `runId`, or -1.
std::int64_t run_id_of(const json& payload) {
  if (!payload.is_object())
    return -1;
  auto it = payload.find("runId");
  return it != payload.end() && it->is_number_integer() ? it->get<std::int64_t>() : -1;
}

/// A run the queue made after a failure of the one before, to try again.
bool is_retry(const json& run) {
  auto why = text(run, "reasonCreated");
  return why == "retry" || why == "task-retry";
}

/// reference §3.3.
std::string result_of(const json& run) {
  auto state = text(run, "state");
  if (state == "completed")
    return "success";
  if (state == "failed")
    return "fail";
  if (state == "exception") {
    auto why = text(run, "reasonResolved");
    return why == "canceled" || why == "superseded" ? why : "exception";
  }
  return "unknown";
}

std::string artifact_url(const settings& s, const std::string& task, std::int64_t run,
                         std::string_view name) {
  // An artifact name may hold anything; a link must be a URI (the original pasted
  // names in as they were).
  return s.root_url + "/api/queue/v1/task/" + task + "/runs/" + std::to_string(run) + "/artifacts/"
         + net::percent_encode(name, "/");
}

/// `jobInfo.links` for a run's artifacts (reference §3.5): the basename as the text,
/// ` (n)` after a repeated one; directories (an empty basename) are left out.
json links_of(const settings& s, const std::string& task, std::int64_t run,
              const std::vector<std::string>& names) {
  auto links = json::array();
  std::map<std::string, int> seen;
  for (auto& name : names) {
    auto base = name.substr(name.rfind('/') + 1);
    if (base.empty())
      continue;
    auto n = seen[base]++;
    auto label = n == 0 ? base : base + " (" + std::to_string(n) + ")";
    auto url = artifact_url(s, task, run, name);
    if (url.size() > 512) // the schema's bound: one link less beats no job
      continue;
    links.push_back({{"label", "artifact uploaded"},
                     {"linkText", first_code_points(label, 125)},
                     {"url", std::move(url)}});
  }
  return links;
}

/// The fields every message of the task shares (reference §3.2), for run `run`.
json common_fields(const json& task, const json& cfg, const route& r, const std::string& task_id,
                   std::int64_t run_id, const json& run) {
  auto& metadata = object(task, "metadata");
  json display = {{"jobSymbol", text(cfg, "symbol")},
                  {"groupSymbol", text(cfg, "groupSymbol").empty() ? "?" : text(cfg, "groupSymbol")},
                  // The original cut at 99, one short of the schema's 100.
                  {"jobName", first_code_points(text(metadata, "name"), 100)}};
  if (auto name = text(cfg, "groupName"); !name.empty())
    display["groupName"] = name;
  json origin = {{"kind", r.owner.empty() ? "hg.mozilla.org" : "github.com"},
                 {"project", r.project},
                 {"revision", r.revision}};
  if (!r.owner.empty())
    origin["owner"] = r.owner;
  if (r.push_id)
    origin[r.owner.empty() ? "pushLogID" : "pullRequestID"] = *r.push_id;
  json labels = json::array();
  if (auto it = cfg.find("labels"); it != cfg.end() && it->is_array() && !it->empty())
    labels = *it;
  else if (auto& collection = object(cfg, "collection"); collection.is_object() && !collection.empty())
    for (auto& [key, value] : collection.items())
      labels.push_back(key);
  else
    labels.push_back("opt");
  auto& machine = object(cfg, "machine");
  auto platform = text(machine, "platform");
  auto os = text(machine, "os"), arch = text(machine, "architecture");
  auto worker = text(run, "workerId");
  json job = {
    {"buildSystem", "taskcluster"},
    {"owner", first_code_points(text(metadata, "owner"), 50)}, // Treeherder cuts it too
    {"taskId", task_id + "/" + std::to_string(run_id)},
    {"retryId", run_id},
    {"isRetried", false},
    {"display", std::move(display)},
    {"tier", cfg.value("tier", json{1})},
    {"timeScheduled", text(task, "created")},
    {"jobKind", text(cfg, "jobKind").empty() ? "other" : text(cfg, "jobKind")},
    {"reason", text(cfg, "reason").empty() ? "scheduled" : text(cfg, "reason")},
    {"jobInfo", {{"links", json::array()}}},
    {"origin", std::move(origin)},
    {"labels", std::move(labels)},
    {"buildMachine",
     {{"name", worker.empty() ? "unknown" : worker},
      {"platform", platform.empty() ? text(task, "workerType") : platform},
      {"os", os.empty() ? "-" : os},
      {"architecture", arch.empty() ? "-" : arch}}},
    {"version", 1},
  };
  if (auto summary = text(metadata, "description"); !summary.empty())
    job["jobInfo"]["summary"] = summary;
  if (auto product = text(cfg, "productName"); !product.empty())
    job["productName"] = product;
  return job;
}

} // namespace

std::string_view to_string(queue_event e) {
  return event_names[static_cast<std::size_t>(e)];
}

std::optional<queue_event> event_of_exchange(std::string_view exchange) {
  if (!exchange.starts_with(exchange_prefix))
    return std::nullopt;
  exchange.remove_prefix(exchange_prefix.size());
  for (std::size_t i = 0; i < event_names.size(); ++i)
    if (exchange == event_names[i])
      return static_cast<queue_event>(i);
  return std::nullopt;
}

std::string_view to_string(skip_reason r) {
  return reason_names[static_cast<std::size_t>(r)];
}

std::optional<std::string> slug_to_uuid(std::string_view slug) {
  if (slug.size() != 22)
    return std::nullopt;
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z')
      return c - 'A';
    if (c >= 'a' && c <= 'z')
      return c - 'a' + 26;
    if (c >= '0' && c <= '9')
      return c - '0' + 52;
    return c == '-' ? 62 : c == '_' ? 63 : -1;
  };
  std::array<unsigned char, 17> bytes{}; // 132 bits: the last 4 are padding
  std::uint32_t acc = 0;
  int bits = 0;
  std::size_t n = 0;
  for (char c : slug) {
    int v = value(c);
    if (v < 0)
      return std::nullopt;
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      bytes[n++] = static_cast<unsigned char>(acc >> bits);
      acc &= (1u << bits) - 1;
    }
  }
  if (acc != 0) // padding bits must be zero: one slug per UUID
    return std::nullopt;
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10)
      out += '-';
    out += hex[bytes[i] >> 4];
    out += hex[bytes[i] & 15];
  }
  return out;
}

std::variant<route, skip> parse_route(const std::vector<std::string>& routes,
                                      std::string_view prefix) {
  const std::string* found = nullptr;
  for (auto& r : routes)
    if (r.substr(0, r.find('.')) == prefix) {
      if (found)
        return skip{skip_reason::ambiguous_route, "routes " + *found + " and " + r};
      found = &r;
    }
  if (!found)
    return skip{skip_reason::missing_route, "no route starts with " + std::string{prefix}};
  auto parts = words(*found, '.');
  auto malformed = [&](const std::string& why) {
    return skip{skip_reason::malformed_route, *found + ": " + why};
  };
  if (parts.size() == 3)
    return skip{skip_reason::v1_route, *found + ": the v1 form is no longer read"};
  if (parts.size() < 4 || parts.size() > 5)
    return malformed("not <prefix>.v2.<project>.<revision>[.<pushId>]");
  if (parts[1] != "v2")
    return malformed("version '" + parts[1] + "' is not v2");
  route r{parts[0], parts[2], {}, parts[3], std::nullopt};
  if (r.project.empty() || r.revision.empty())
    return malformed("empty project or revision");
  if (auto slash = r.project.find('/'); slash != std::string::npos) {
    auto owner_repo = words(r.project, '/');
    if (owner_repo.size() != 2 || owner_repo[0].empty() || owner_repo[1].empty())
      return malformed("a GitHub project is <owner>/<repo>");
    r.owner = owner_repo[0];
    r.project = owner_repo[1];
  }
  if (parts.size() == 5 && !parts[4].empty()) {
    std::int64_t id = 0;
    auto& s = parts[4];
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), id);
    if (ec != std::errc{} || end != s.data() + s.size() || id < 0)
      return malformed("push id '" + s + "' is not a number");
    r.push_id = id;
  }
  return r;
}

std::vector<std::int64_t> runs_to_list(queue_event e, const json& payload) {
  auto run = run_id_of(payload);
  switch (e) {
    case queue_event::completed:
    case queue_event::failed:
    case queue_event::exception:
      return {run};
    case queue_event::pending:
      if (run > 0 && is_retry(run_of(payload, run)))
        return {run - 1};
      return {};
    default:
      return {};
  }
}

mapping map_task_event(queue_event e, const json& payload, const json& task,
                       const std::map<std::int64_t, std::vector<std::string>>& artifacts,
                       const settings& s) {
  mapping out;
  if (e == queue_event::defined) // Treeherder skips unscheduled jobs anyway
    return out;
  auto run_id = run_id_of(payload);
  auto& run = run_of(payload, run_id);
  auto slug = text(object(payload, "status"), "taskId");
  auto uuid = slug_to_uuid(slug);
  if (!uuid || !run.is_object()) {
    out.skipped.push_back({skip_reason::invalid_job, "no task id or run " + std::to_string(run_id)});
    return out;
  }
  if (e == queue_event::exception && text(run, "reasonCreated") == "exception") {
    out.skipped.push_back({skip_reason::exception_run, text(run, "reasonResolved")});
    return out;
  }
  std::vector<std::string> routes;
  if (task.is_object())
    if (auto it = task.find("routes"); it != task.end() && it->is_array())
      for (auto& r : *it)
        if (r.is_string())
          routes.push_back(r.get<std::string>());
  auto parsed = parse_route(routes, s.route_prefix);
  if (auto* why = std::get_if<skip>(&parsed)) {
    out.skipped.push_back(std::move(*why));
    return out;
  }
  auto& r = std::get<route>(parsed);
  auto& extra = object(task, "extra");
  auto cfg_at = extra.is_object() ? extra.find("treeherder") : extra.end();
  if (!extra.is_object() || cfg_at == extra.end() || cfg_at->is_null()) {
    out.skipped.push_back({skip_reason::missing_config, "task has no extra.treeherder"});
    return out;
  }
  auto& cfg = *cfg_at;
  // The 2018 schema lets a non-object through; its later versions do not.
  if (!cfg.is_object()) {
    out.skipped.push_back({skip_reason::invalid_config, "extra.treeherder is not an object"});
    return out;
  }
  if (s.config_schema)
    if (auto problems = s.config_schema->problems(cfg); !problems.empty()) {
      out.skipped.push_back({skip_reason::invalid_config, problems.front()});
      return out;
    }
  auto routing_key = r.destination + "." + r.project + "._";
  if (r.destination.size() > max_word || r.project.size() > max_word) {
    out.skipped.push_back({skip_reason::routing_key, routing_key + ": a word is over 25 characters"});
    return out;
  }
  auto links = [&](std::int64_t n) {
    auto it = artifacts.find(n);
    return it == artifacts.end() ? json::array() : links_of(s, slug, n, it->second);
  };
  // A run that ended (exception, or the run a retry replaced): completed, logs none.
  auto ended = [&](std::int64_t n, const json& which, bool retried) {
    auto job = common_fields(task, cfg, r, *uuid, n, which);
    job["state"] = "completed";
    job["result"] = result_of(which);
    job["isRetried"] = retried;
    if (auto started = text(which, "started"); !started.empty())
      job["timeStarted"] = started;
    if (auto resolved = text(which, "resolved"); !resolved.empty())
      job["timeCompleted"] = resolved;
    job["logs"] = json::array();
    job["jobInfo"]["links"] = links(n);
    return job;
  };
  std::vector<json> jobs;
  switch (e) {
    case queue_event::pending: {
      // Before the queue's 2024-09 change, a retry announced only the new run's pending:
      // the run it replaces is reported here. Since then the exception came first with
      // the same message (same id), so the exchange takes it once. A manual rerun of a
      // finished run is not a retry of it (the original marked it so).
      if (run_id > 0 && is_retry(run))
        if (auto& before = run_of(payload, run_id - 1); before.is_object())
          jobs.push_back(ended(run_id - 1, before, true));
      auto job = common_fields(task, cfg, r, *uuid, run_id, run);
      job["state"] = "pending";
      job["result"] = "unknown";
      jobs.push_back(std::move(job));
      break;
    }
    case queue_event::running: {
      auto job = common_fields(task, cfg, r, *uuid, run_id, run);
      job["state"] = "running";
      job["result"] = "unknown";
      if (auto started = text(run, "started"); !started.empty())
        job["timeStarted"] = started;
      jobs.push_back(std::move(job));
      break;
    }
    case queue_event::completed:
    case queue_event::failed: {
      auto job = common_fields(task, cfg, r, *uuid, run_id, run);
      job["state"] = "completed";
      job["result"] = result_of(run);
      job["timeStarted"] = text(run, "started");
      job["timeCompleted"] = text(run, "resolved");
      job["logs"] = json::array({{{"name", "builds-4h"},
                                  {"url", artifact_url(s, slug, run_id,
                                                       "public/logs/live_backing.log")}}});
      job["jobInfo"]["links"] = links(run_id);
      jobs.push_back(std::move(job));
      break;
    }
    case queue_event::exception:
      // Since the queue's 2024-09 change an exception comes first for a run a retry
      // replaces: the next run says so.
      jobs.push_back(ended(run_id, run, is_retry(run_of(payload, run_id + 1))));
      break;
    case queue_event::defined:
      break;
  }
  for (auto& job : jobs) {
    if (s.job_schema)
      if (auto problems = s.job_schema->problems(job); !problems.empty()) {
        out.skipped.push_back({skip_reason::invalid_job, job["taskId"].get<std::string>() + " "
                                                           + problems.front()});
        continue;
      }
    auto id = job["taskId"].get<std::string>() + ":" + job["state"].get<std::string>() + ":"
              + job["result"].get<std::string>() + (job["isRetried"].get<bool>() ? ":retried" : "");
    out.jobs.push_back({std::move(id), routing_key, std::move(job)});
  }
  return out;
}

} // namespace bt::sources::treeherder
