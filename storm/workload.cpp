#include "storm/workload.hpp"

#include <algorithm>
#include <chrono>
#include <random>
#include <stdexcept>

#include "model/time.hpp"
#include "sources/treeherder.hpp"
#include "storm/cdevents_events.hpp"
#include "storm/payloads.hpp"
#include "storm/taskcluster_events.hpp"

namespace bt::storm {

namespace {

using nlohmann::json;

/// One build's life as a storm sends it: every event, and whether the build fails.
/// `job(step, attempt, finished, fails)` and `edge(finished, failed)` make the events.
template <class Job, class Edge>
bool build_life(std::mt19937& rng, int jobs, Job&& job, Edge&& edge) {
  std::uniform_real_distribution<double> chance{0, 1};
  bool build_failed = false;
  edge(false, false);
  for (int j = 0; j < jobs; ++j) {
    bool retried = chance(rng) < 0.1;
    bool first_fails = retried || chance(rng) < 0.01;
    bool last_fails = retried ? chance(rng) < 0.3 : first_fails;
    int attempts = retried ? 2 : 1;
    for (int a = 0; a < attempts; ++a) {
      bool fails = a + 1 == attempts ? last_fails : first_fails;
      for (bool done : {false, true}) {
        job(j, a, done, fails);
        if (done && chance(rng) < 0.02)
          job(j, a, done, fails); // duplicate delivery
      }
    }
    build_failed = build_failed || last_fails;
  }
  edge(true, build_failed);
  return build_failed;
}

std::string pipeline_of(const mix& m, int b) { return m.pipeline_prefix + std::to_string(b % 8); }

/// Requests of one event each, shuffled, with the build key each finishing one finishes
/// ("" for the others).
void add_shuffled(workload& w, std::vector<std::pair<std::string, std::string>> requests,
                  std::mt19937& rng) {
  std::shuffle(requests.begin(), requests.end(), rng);
  w.events = requests.size();
  for (auto& [request, finished] : requests) {
    if (!finished.empty())
      w.finish_of[w.requests.size()].push_back(std::move(finished));
    w.requests.push_back(std::move(request));
  }
}

/// Buildkite deliveries, one event per request.
workload generate_buildkite(const mix& m) {
  std::mt19937 rng{m.seed};
  workload w;
  std::vector<std::pair<std::string, std::string>> requests;
  for (int b = m.first_build; b < m.first_build + m.builds; ++b) {
    auto pipeline = pipeline_of(m, b);
    auto add = [&](const json& doc, std::string finished = {}) {
      requests.emplace_back(payloads::http_request(doc["event"], doc.dump(), m.secrets.buildkite, m.host),
                            std::move(finished));
    };
    auto key = "buildkite/" + pipeline + "/" + std::to_string(b);
    bool failed = build_life(
      rng, m.jobs,
      [&](int step, int attempt, bool done, bool fails) {
        add(payloads::job_delivery(pipeline, b, step, attempt, done, fails));
      },
      [&](bool finished, bool failed) {
        if (!finished)
          return add(payloads::build_delivery("build.running", pipeline, b, "running"));
        add(payloads::build_delivery("build.finished", pipeline, b, failed ? "failed" : "passed"), key);
      });
    w.expected["/api/v1/builds/" + key] = failed ? "failed" : "passed";
  }
  // Deliver everything out of order: late jobs, build.finished first, and so on.
  add_shuffled(w, std::move(requests), rng);
  return w;
}

/// Native events of the same storm, out of order, `m.batch` to a request.
workload generate_native(const mix& m) {
  std::mt19937 rng{m.seed};
  workload w;
  std::vector<json> events;
  for (int b = m.first_build; b < m.first_build + m.builds; ++b) {
    auto pipeline = pipeline_of(m, b);
    json build = {{"pipeline", pipeline}, {"id", std::to_string(b)}, {"number", b},
                  {"branch", "main"}, {"commit", "8faa67ad6d0fda3ccf884c90acfd061d37e8558d"},
                  {"url", "https://ci.example.com/" + pipeline + "/" + std::to_string(b)}};
    bool failed = build_life(
      rng, m.jobs,
      [&](int step, int attempt, bool done, bool fails) {
        auto id = pipeline + "-" + std::to_string(b) + "-" + std::to_string(step) + "-"
                  + std::to_string(attempt);
        json job = {{"id", id}, {"name", "step " + std::to_string(step)}, {"attempt", attempt},
                    {"state", done ? (fails ? "failed" : "passed") : "running"}};
        if (done)
          job["exit_status"] = fails ? 1 : 0;
        events.push_back({{"type", done ? "job.finished" : "job.started"}, {"build", build},
                          {"job", job}});
      },
      [&](bool finished, bool) {
        events.push_back({{"type", finished ? "build.finished" : "build.started"},
                          {"build", build}});
      });
    auto path = "/api/v1/builds/native/" + pipeline + "/" + std::to_string(b);
    w.expected[path] = failed ? "failed" : "passed";
    if (m.statistics) {
      // Shuffled with the rest: published before or after the build finished.
      events.push_back({{"type", "statistic"}, {"build", build},
                        {"statistic", {{"key", "duration"}, {"value", b * 1.5}}}});
      w.statistics[path] = b * 1.5;
    }
    if (!m.targets || b % 4 == 0)
      continue;
    // A waiting target: a failed job fails the build at once, whatever comes later.
    events.push_back({{"type", "job.finished"}, {"build", build},
                      {"job", {{"id", pipeline + "-" + std::to_string(b) + "-deploy"},
                               {"name", "deploy"}, {"state", "passed"},
                               {"waits_for_message", true}}}});
    auto message = [&](const std::string& type) {
      return json{{"type", type}, {"delivery", "m-" + pipeline + "-" + std::to_string(b)}}.dump();
    };
    auto post = [&](const std::string& target, const std::string& body) {
      return payloads::bearer_post(path + target, body, m.secrets.native, m.host);
    };
    if (b % 4 == 1) {
      bool fail = std::uniform_real_distribution<double>{0, 1}(rng) < 0.2;
      events.push_back({{"type", "message"}, {"build", build},
                        {"message", {{"target", "deploy"}, {"type", fail ? "fail" : "pass"}}}});
      if (fail)
        w.expected[path] = "failed";
    } else if (b % 4 == 2) {
      w.afterwards.push_back({post("/commands", R"({"type":"pause"})"),
                              post("/targets/deploy/messages", message("pass")),
                              post("/commands", R"({"type":"resume"})")});
    } else {
      w.afterwards.push_back({post("/commands", R"({"type":"abort"})")});
      if (!failed)
        w.expected[path] = "aborted";
    }
  }
  std::shuffle(events.begin(), events.end(), rng);
  w.events = events.size();
  auto batch = static_cast<std::size_t>(m.batch);
  for (std::size_t i = 0; i < events.size(); i += batch) {
    std::string body;
    std::vector<std::string> keys;
    auto end = std::min(events.size(), i + batch);
    for (auto k = i; k < end; ++k) {
      body += events[k].dump();
      body += '\n';
      if (events[k]["type"] == "build.finished")
        keys.push_back("native/" + events[k]["build"]["pipeline"].get<std::string>() + "/"
                       + events[k]["build"]["id"].get<std::string>());
    }
    if (!keys.empty())
      w.finish_of.emplace(w.requests.size(), std::move(keys));
    w.requests.push_back(payloads::native_request(body, m.batch > 1, m.secrets.native, m.host));
  }
  return w;
}

/// CDEvents of the same storm: a pipelineRun per build, a taskRun per job attempt
/// (a retried job is a second taskRun of its task), as CloudEvents in binary and
/// structured mode, one per request, shuffled: taskRuns often come before their
/// pipelineRun.
workload generate_cdevents(const mix& m) {
  std::mt19937 rng{m.seed + 3};
  workload w;
  std::vector<std::pair<json, std::string>> events; // (CDEvent, finished build key)
  int id = 0;
  // CloudEvent ids unique to the run: a sender's ids are, and buildtrack drops repeats.
  auto id_prefix = "ce-" + m.pipeline_prefix + std::to_string(m.first_build) + "-";
  for (int b = m.first_build; b < m.first_build + m.builds; ++b) {
    auto pipeline = pipeline_of(m, b);
    auto run = m.pipeline_prefix + "run-" + std::to_string(b);
    auto next_id = [&] { return id_prefix + std::to_string(++id); };
    auto time_of = [](int n) {
      return model::format_time(model::timestamp{std::chrono::seconds{1'800'000'000 + n}});
    };
    bool failed = build_life(
      rng, m.jobs,
      [&](int step, int attempt, bool done, bool fails) {
        auto task_run = run + "-" + std::to_string(step) + "-" + std::to_string(attempt);
        auto event = done ? cdevents::task_run("finished", "", task_run, "step " + std::to_string(step),
                                               run, fails ? "failure" : "success")
                          : cdevents::task_run("started", "", task_run, "step " + std::to_string(step), run);
        // A duplicate delivery repeats the CloudEvent id of the event before it.
        bool repeat = !events.empty() && events.back().first["subject"]["id"] == task_run
                      && events.back().first["context"]["type"] == event["context"]["type"];
        event["context"]["id"] = repeat ? events.back().first["context"]["id"].get<std::string>() : next_id();
        // The sender's clock: events of a build in the order they happened.
        event["context"]["timestamp"] = time_of(id);
        events.emplace_back(std::move(event), "");
      },
      [&](bool finished, bool failed) {
        auto event = finished ? cdevents::pipeline_run("finished", next_id(), run, pipeline,
                                                       failed ? "failure" : "success")
                              : cdevents::pipeline_run("started", next_id(), run, pipeline);
        events.emplace_back(std::move(event), finished ? "cdevents/" + pipeline + "/" + run : "");
      });
    w.expected["/api/v1/builds/cdevents/" + pipeline + "/" + run] = failed ? "failed" : "passed";
  }
  std::shuffle(events.begin(), events.end(), rng);
  w.events = events.size();
  for (auto& [event, key] : events) {
    auto r = rng() % 2 ? cdevents::binary(event) : cdevents::structured(event);
    if (!key.empty())
      w.finish_of[w.requests.size()].push_back(key);
    w.requests.push_back(payloads::bearer_request("/webhooks/cdevents", r.headers, r.body,
                                                  m.secrets.cdevents, m.host));
  }
  return w;
}

/// The projects tasks are routed to: three on hg, one on GitHub.
const std::vector<std::string> projects{"mozilla-central", "autoland", "try", "mozilla-mobile/fenix"};

/// Taskcluster queue messages: `m.builds` task groups of `m.jobs` tasks, each task
/// living one of task_life()'s lives (passes, fails, retried, canceled, rerun),
/// routed to one of four projects; every message once, shuffled.
workload generate_taskcluster(const mix& m) {
  namespace tc = taskcluster;
  namespace th = sources::treeherder;
  std::mt19937 rng{m.seed};
  workload w;
  auto& x = w.treeherder;
  std::set<std::string> seen;
  th::settings mapping{"tc-treeherder", "http://queue"};
  long task = m.first_task;
  for (int g = 0; g < m.builds; ++g)
    for (int t = 0; t < m.jobs; ++t, ++task) {
      auto id = tc::slug(task);
      auto& project = projects[static_cast<std::size_t>(task) % projects.size()];
      auto definition = x.definitions[id] =
        tc::task_definition("tc-treeherder.v2." + project + "." + tc::revision + "." + std::to_string(g));
      // Groups are numbered apart from tasks: half a billion tasks into the run's range.
      for (auto& msg : tc::task_life(id, tc::slug(m.first_task + 500'000'000 + g), static_cast<int>(rng() % 5))) {
        auto event = *th::event_of_exchange(msg["exchange"].get<std::string>());
        for (auto& job : th::map_task_event(event, msg["payload"], definition, {}, mapping).jobs)
          if (seen.insert(job.id).second)
            x.jobs.emplace_back(job.id, job.routing_key);
        w.requests.push_back(
          payloads::bearer_post("/webhooks/taskcluster", msg.dump(), m.secrets.taskcluster, m.host));
      }
    }
  std::shuffle(w.requests.begin(), w.requests.end(), rng);
  w.events = w.requests.size();
  return w;
}

/// One workload of several, each part's requests shuffled among the others'.
workload merge(std::vector<workload> parts, std::mt19937& rng) {
  std::vector<std::pair<std::string, std::vector<std::string>>> requests;
  workload out;
  for (auto& part : parts) {
    for (std::size_t i = 0; i < part.requests.size(); ++i) {
      auto f = part.finish_of.find(i);
      requests.emplace_back(std::move(part.requests[i]), f == part.finish_of.end()
                                                           ? std::vector<std::string>{}
                                                           : std::move(f->second));
    }
    out.events += part.events;
    out.expected.merge(part.expected);
    out.statistics.merge(part.statistics);
    for (auto& a : part.afterwards)
      out.afterwards.push_back(std::move(a));
    if (!part.treeherder.jobs.empty())
      out.treeherder = std::move(part.treeherder);
  }
  std::shuffle(requests.begin(), requests.end(), rng);
  out.requests.reserve(requests.size());
  for (auto& [r, keys] : requests) {
    if (!keys.empty())
      out.finish_of.emplace(out.requests.size(), std::move(keys));
    out.requests.push_back(std::move(r));
  }
  return out;
}

} // namespace

workload generate(const mix& m) {
  if (m.batch < 1 || m.builds < 0 || m.jobs < 0)
    throw std::invalid_argument{"a storm needs batch >= 1, builds >= 0, jobs >= 0"};
  std::vector<workload> parts;
  for (auto& source : all_sources) {
    if (!m.sources.contains(source))
      continue;
    parts.push_back(source == "buildkite"     ? generate_buildkite(m)
                    : source == "native"      ? generate_native(m)
                    : source == "taskcluster" ? generate_taskcluster(m)
                                              : generate_cdevents(m));
  }
  if (parts.size() == 1)
    return std::move(parts.front());
  std::mt19937 rng{m.seed};
  return merge(std::move(parts), rng);
}

std::vector<std::string> drop_finishes(workload& w, std::size_t n, unsigned seed) {
  std::vector<std::size_t> finishing;
  for (auto& [index, keys] : w.finish_of)
    finishing.push_back(index);
  std::sort(finishing.begin(), finishing.end());
  std::mt19937 rng{seed};
  std::shuffle(finishing.begin(), finishing.end(), rng);
  finishing.resize(std::min(n, finishing.size()));
  std::set<std::size_t> dropped{finishing.begin(), finishing.end()};
  std::vector<std::string> keys;
  workload kept;
  for (std::size_t i = 0; i < w.requests.size(); ++i) {
    auto f = w.finish_of.find(i);
    if (dropped.contains(i)) {
      keys.insert(keys.end(), f->second.begin(), f->second.end());
      --w.events; // one event per request, but for native batches (one finish of several)
      continue;
    }
    if (f != w.finish_of.end())
      kept.finish_of.emplace(kept.requests.size(), std::move(f->second));
    kept.requests.push_back(std::move(w.requests[i]));
  }
  w.requests = std::move(kept.requests);
  w.finish_of = std::move(kept.finish_of);
  return keys;
}

double requests_per_build(mix m) {
  m.builds = std::min(m.builds, 200);
  if (m.builds == 0 || m.sources.empty())
    return 1;
  auto w = generate(m);
  std::size_t afterwards = 0;
  for (auto& a : w.afterwards)
    afterwards += a.size();
  return static_cast<double>(w.requests.size() + afterwards) / static_cast<double>(m.builds);
}

} // namespace bt::storm
