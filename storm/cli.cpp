#include "storm/cli.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <numeric>
#include <iostream>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "storm/load.hpp"
#include "storm/report.hpp"
#include "storm/taskcluster.hpp"
#include "storm/verify.hpp"
#include "storm/workload.hpp"

namespace bt::storm {

namespace {

const char* const usage_text = R"(usage: buildtrack storm [options]

Sends a storm of CI events to a running buildtrackd, the way CI systems deliver them
(shuffled: late jobs, finishes before their jobs, duplicate deliveries, retried jobs,
targets waiting for messages that come first, statistics after the finish), then reads
every build back through the API and checks it ended as the events say.

Target
  --target URL           buildtrackd's plain-HTTP address (default http://127.0.0.1:8080)
  --allow-remote         allow a target that is not this machine's loopback
  --admin-token T        for reading builds back ($BUILDTRACK_ADMIN_TOKEN)
  --buildkite-token T    $BUILDKITE_TOKEN        --native-token T    $BUILDTRACK_NATIVE_TOKEN
  --cdevents-token T     $BUILDTRACK_CDEVENTS_TOKEN
  --taskcluster-token T  $BUILDTRACK_TASKCLUSTER_TOKEN
Workload
  --sources LIST         of buildkite,native,cdevents,taskcluster (default buildkite);
                         native builds get waiting targets, early and late messages,
                         commands after the storm, and late statistics
  --queue-listen H:P     taskcluster: serve the storm's task definitions here, as the
                         Taskcluster queue; the target's sources.taskcluster.root_url
                         must be http://H:P
  --taskcluster-exchange NAME
                         where the target publishes Treeherder job messages, checked
                         over WebSocket (default exchange/taskcluster-treeherder/v1/jobs)
  --builds N             builds of each source (default 2000)
  --jobs N               jobs per build (default 10)
  --batch N              native events per request, as NDJSON (default 1)
  --seed N               the workload's random seed (default 42)
  --run ID               names this run's pipelines storm-ID-0..7 (default: random)
Load
  --connections N        keep-alive connections (default 64)
  --rate N               open-loop: N requests/s at fixed times; latency counts from when
                         a request was meant to go (default: closed-loop, each connection
                         sends when its last answer came)
  --duration D           with --rate: as many builds as the rate sends in D (30s, 2m)
  --rate LO..HI          a ramp: --steps rates from LO to HI (1k..20k), each for
                         --step-duration (default 5s); stops at the first whose p99
                         exceeds --slo (default 10ms) and reports the highest within it
  --timeout D            an answer slower than this is an error (default 30s)
Checks and reports
  --check LIST           e.g. 'p99<10ms,errors=0,verified=100%': the exit status is 1 when
                         one fails (default: errors=0, and verified=100% when verifying)
  --json                 print the summary as JSON on stdout (the text goes to stderr)
  --report FILE          write a self-contained HTML report (charts as inline SVG)
  --sink-listen H:P      receive the target's webhook notifications here (configure a
                         webhook sink to http://H:P/) and check each final outcome
                         arrived exactly once
  --drain D              how long to wait for notifications (default 60s)
  --no-verify            send only (e.g. to a bare HTTP server, for a floor)
  --verify-only          send nothing: verify an earlier run (same --run, --seed, workload)
  --drop N               fault injection: leave out the finishing event of N builds
  --quiet                no progress line (there is none when stderr is not a terminal)
  --help

Check metrics: )";

struct options {
  std::string target = "http://127.0.0.1:8080";
  endpoint where;
  bool allow_remote = false;
  std::string admin_token;
  mix m;
  std::string run;
  int connections = 64;
  double rate = 0, rate_high = 0;
  std::optional<double> duration;
  int steps = 5;
  double step_duration = 5;
  double slo = 0.010;
  std::chrono::milliseconds timeout{30'000};
  std::string checks;
  bool json = false;
  std::string report;
  std::optional<endpoint> sink_listen;
  std::optional<endpoint> queue_listen;
  std::string taskcluster_exchange = "exchange/taskcluster-treeherder/v1/jobs";
  std::chrono::milliseconds drain{60'000};
  bool verify = true, send = true;
  std::size_t drop = 0;
  bool quiet = false;
};

struct usage_error : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

/// A count: 2000, 20k, 1.5k.
double parse_count(const std::string& flag, const std::string& text) {
  try {
    std::size_t used = 0;
    double v = std::stod(text, &used);
    auto rest = text.substr(used);
    if (rest == "k" || rest == "k/s")
      v *= 1000;
    else if (!rest.empty() && rest != "/s")
      throw std::invalid_argument{rest};
    if (v < 0 || !std::isfinite(v))
      throw std::invalid_argument{text};
    return v;
  } catch (const std::exception&) {
    throw usage_error{flag + ": not a number: " + text};
  }
}

int parse_int(const std::string& flag, const std::string& text, int low) {
  auto v = parse_count(flag, text);
  if (v != std::floor(v) || v < low || v > 100'000'000)
    throw usage_error{flag + ": want a whole number of at least " + std::to_string(low) + ", got " + text};
  return static_cast<int>(v);
}

double parse_seconds(const std::string& flag, const std::string& text) {
  try {
    return parse_duration(text).count();
  } catch (const std::exception& e) {
    throw usage_error{flag + ": " + e.what()};
  }
}

endpoint parse_host_port(const std::string& flag, const std::string& text) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0)
    throw usage_error{flag + ": want host:port, got " + text};
  endpoint e;
  e.host = text.substr(0, colon);
  if (e.host.size() > 2 && e.host.front() == '[' && e.host.back() == ']')
    e.host = e.host.substr(1, e.host.size() - 2);
  e.port = static_cast<unsigned short>(parse_int(flag, text.substr(colon + 1), 0));
  if (parse_int(flag, text.substr(colon + 1), 0) > 65535)
    throw usage_error{flag + ": port out of range: " + text};
  return e;
}

endpoint parse_target(const std::string& url) {
  if (url.starts_with("https://"))
    throw usage_error{"--target: https is not supported; point the storm at buildtrackd's own "
                      "plain-HTTP listener (or a port-forward to it)"};
  if (!url.starts_with("http://"))
    throw usage_error{"--target: want http://host:port, got " + url};
  auto rest = url.substr(7);
  while (!rest.empty() && rest.back() == '/')
    rest.pop_back();
  if (rest.find('/') != std::string::npos)
    throw usage_error{"--target: want http://host:port without a path, got " + url};
  if (rest.rfind(':') == std::string::npos || rest.back() == ']')
    rest += ":80";
  return parse_host_port("--target", rest);
}

options parse(int argc, char** argv) {
  options o;
  o.m.builds = 2000;
  std::string sources = "buildkite";
  std::string rate;
  std::optional<std::string> buildkite, native, cdevents, taskcluster, admin;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc)
        throw usage_error{flag + " needs a value"};
      return argv[++i];
    };
    if (flag == "--target") o.target = value();
    else if (flag == "--allow-remote") o.allow_remote = true;
    else if (flag == "--admin-token") admin = value();
    else if (flag == "--buildkite-token") buildkite = value();
    else if (flag == "--native-token") native = value();
    else if (flag == "--cdevents-token") cdevents = value();
    else if (flag == "--taskcluster-token") taskcluster = value();
    else if (flag == "--queue-listen") o.queue_listen = parse_host_port(flag, value());
    else if (flag == "--taskcluster-exchange") o.taskcluster_exchange = value();
    else if (flag == "--sources") sources = value();
    else if (flag == "--builds") o.m.builds = parse_int(flag, value(), 1);
    else if (flag == "--jobs") o.m.jobs = parse_int(flag, value(), 0);
    else if (flag == "--batch") o.m.batch = parse_int(flag, value(), 1);
    else if (flag == "--seed") o.m.seed = static_cast<unsigned>(parse_int(flag, value(), 0));
    else if (flag == "--run") o.run = value();
    else if (flag == "--connections") o.connections = parse_int(flag, value(), 1);
    else if (flag == "--rate") rate = value();
    else if (flag == "--duration") o.duration = parse_seconds(flag, value());
    else if (flag == "--steps") o.steps = parse_int(flag, value(), 2);
    else if (flag == "--step-duration") o.step_duration = parse_seconds(flag, value());
    else if (flag == "--slo") {
      auto v = value();
      if (v.starts_with("p99<"))
        v = v.substr(4);
      o.slo = parse_seconds(flag, v);
    }
    else if (flag == "--timeout")
      o.timeout = std::chrono::milliseconds{static_cast<long>(parse_seconds(flag, value()) * 1e3)};
    else if (flag == "--check") o.checks += (o.checks.empty() ? "" : ",") + value();
    else if (flag == "--json") o.json = true;
    else if (flag == "--report") o.report = value();
    else if (flag == "--sink-listen") o.sink_listen = parse_host_port(flag, value());
    else if (flag == "--drain")
      o.drain = std::chrono::milliseconds{static_cast<long>(parse_seconds(flag, value()) * 1e3)};
    else if (flag == "--no-verify") o.verify = false;
    else if (flag == "--verify-only") o.send = false;
    else if (flag == "--drop") o.drop = static_cast<std::size_t>(parse_int(flag, value(), 0));
    else if (flag == "--quiet") o.quiet = true;
    else throw usage_error{"unknown option " + flag + " (see buildtrack storm --help)"};
  }
  o.where = parse_target(o.target);
  o.target = "http://" + (o.where.host.find(':') != std::string::npos ? "[" + o.where.host + "]" : o.where.host)
             + ":" + std::to_string(o.where.port);
  o.m.sources.clear();
  std::stringstream list{sources};
  for (std::string s; std::getline(list, s, ',');) {
    if (std::find(all_sources.begin(), all_sources.end(), s) == all_sources.end())
      throw usage_error{"--sources: unknown source '" + s + "' (buildkite, native, cdevents, taskcluster)"};
    o.m.sources.insert(s);
  }
  if (o.m.sources.empty())
    throw usage_error{"--sources: name at least one source"};
  o.m.secrets.buildkite = buildkite.value_or(env("BUILDKITE_TOKEN"));
  o.m.secrets.native = native.value_or(env("BUILDTRACK_NATIVE_TOKEN"));
  o.m.secrets.cdevents = cdevents.value_or(env("BUILDTRACK_CDEVENTS_TOKEN"));
  o.m.secrets.taskcluster = taskcluster.value_or(env("BUILDTRACK_TASKCLUSTER_TOKEN"));
  o.admin_token = admin.value_or(env("BUILDTRACK_ADMIN_TOKEN"));
  auto need = [&](const char* source, const std::string& secret, const char* flag, const char* var) {
    if (o.m.sources.contains(source) && secret.empty() && o.send)
      throw usage_error{std::string{"--sources "} + source + " needs its token: " + flag + " or $" + var};
  };
  need("buildkite", o.m.secrets.buildkite, "--buildkite-token", "BUILDKITE_TOKEN");
  need("native", o.m.secrets.native, "--native-token", "BUILDTRACK_NATIVE_TOKEN");
  need("cdevents", o.m.secrets.cdevents, "--cdevents-token", "BUILDTRACK_CDEVENTS_TOKEN");
  need("taskcluster", o.m.secrets.taskcluster, "--taskcluster-token", "BUILDTRACK_TASKCLUSTER_TOKEN");
  if (o.m.sources.contains("taskcluster")) {
    if (!o.send)
      throw usage_error{"--verify-only: Taskcluster job messages are checked as they are published; "
                        "leave taskcluster out of --sources"};
    if (!o.queue_listen)
      throw usage_error{"--sources taskcluster needs --queue-listen HOST:PORT: the target reads each "
                        "task's definition from its queue, so the storm serves them there (set the "
                        "target's sources.taskcluster.root_url to http://HOST:PORT)"};
  }
  o.m.targets = o.m.statistics = o.m.sources.contains("native");
  if (o.m.batch > 1 && !o.m.sources.contains("native"))
    throw usage_error{"--batch: only native events come in batches"};
  if (!rate.empty()) {
    if (auto dots = rate.find(".."); dots != std::string::npos) {
      o.rate = parse_count("--rate", rate.substr(0, dots));
      o.rate_high = parse_count("--rate", rate.substr(dots + 2));
      if (o.rate <= 0 || o.rate_high <= o.rate)
        throw usage_error{"--rate: a ramp goes from a lower rate to a higher one, e.g. 1k..20k"};
    } else {
      o.rate = parse_count("--rate", rate);
      if (o.rate <= 0)
        throw usage_error{"--rate: want a rate above 0"};
    }
  }
  if (o.duration && o.rate <= 0)
    throw usage_error{"--duration needs --rate (closed-loop storms are sized by --builds)"};
  if (o.duration && o.rate_high > 0)
    throw usage_error{"--duration does not apply to a ramp: each step lasts --step-duration"};
  if (!o.verify && (o.sink_listen || !o.send))
    throw usage_error{"--no-verify cannot go with --sink-listen or --verify-only"};
  if (!o.send && o.drop > 0)
    throw usage_error{"--drop needs a storm to drop from"};
  if (o.run.empty()) {
    std::random_device rd;
    char buf[16];
    std::snprintf(buf, sizeof buf, "%06x", rd() & 0xffffffu);
    o.run = buf;
  }
  for (char c : o.run)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_')
      throw usage_error{"--run: letters, digits, - and _ only"};
  o.m.pipeline_prefix = "storm-" + o.run + "-";
  // A range of task ids of the run's own: the target caches definitions by task id.
  o.m.first_task = static_cast<long>(std::hash<std::string>{}(o.run) % 1'000'000) * 1'000'000'000L;
  o.m.host = o.where.host;
  return o;
}

/// Whether every address `host` resolves to is a loopback address.
bool loopback_only(const std::string& host) {
  boost::asio::io_context ioc;
  auto results = boost::asio::ip::tcp::resolver{ioc}.resolve(host, "");
  for (auto& r : results)
    if (!r.endpoint().address().is_loopback())
      return false;
  return !results.empty();
}

/// The storm's parts: one workload, or one per ramp step (build numbers apart).
struct plan {
  std::vector<workload> steps;
  std::vector<double> rates; ///< per step; 0 for closed-loop
  std::vector<std::string> dropped;
  std::vector<int> builds; ///< per step, of each source
};

plan make_plan(const options& o) {
  plan p;
  auto sized = [&](double rate, double seconds) {
    return std::max(1, static_cast<int>(std::ceil(rate * seconds / requests_per_build(o.m))));
  };
  auto m = o.m;
  if (o.rate_high > 0) {
    for (int i = 0; i < o.steps; ++i) {
      double rate = o.rate + (o.rate_high - o.rate) * i / (o.steps - 1);
      m.builds = sized(rate, o.step_duration);
      p.steps.push_back(generate(m));
      p.rates.push_back(rate);
      p.builds.push_back(m.builds);
      m.first_build += m.builds;
    }
  } else {
    if (o.duration)
      m.builds = sized(o.rate, *o.duration);
    p.steps.push_back(generate(m));
    p.rates.push_back(o.rate);
    p.builds.push_back(m.builds);
  }
  if (o.drop > 0)
    p.dropped = drop_finishes(p.steps.front(), o.drop, o.m.seed);
  return p;
}

/// Prints a progress line over itself on stderr.
void show(const progress& p, const std::string& step) {
  std::fprintf(stderr, "\r\033[K%s%3.0f%%  %zu/%zu  %7.0f req/s  errors %zu  p50 %.1f ms  p99 %.1f ms  %.1f s",
               step.c_str(), p.total ? 100.0 * static_cast<double>(p.done) / static_cast<double>(p.total) : 100.0,
               p.done, p.total, p.rate, p.errors, p.p50 * 1e3, p.p99 * 1e3, p.elapsed);
  std::fflush(stderr);
}

/// Appends `more` to `into`, its times after `into`'s.
void append(load_result& into, load_result more) {
  for (auto& s : more.samples) {
    s.done_at += into.seconds;
    into.samples.push_back(s);
  }
  into.seconds += more.seconds;
  into.events += more.events;
  into.errors += more.errors;
  for (auto& [status, n] : more.statuses)
    into.statuses[status] += n;
  if (into.first_error.empty())
    into.first_error = more.first_error;
  into.finished_at.merge(more.finished_at);
}

/// `v` without trailing zeros: 0, 12.5, 99.675.
std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", v);
  std::string text = buf;
  while (text.back() == '0')
    text.pop_back();
  if (text.back() == '.')
    text.pop_back();
  return text;
}

void print_text(std::ostream& out, const nlohmann::json& j) {
  char line[512];
  auto& w = j["workload"];
  out << "storm " << j["run"].get<std::string>() << " -> " << j["target"].get<std::string>() << ": "
      << w["sources"].get<std::string>() << ", " << w["builds_per_source"] << " builds x " << w["jobs"]
      << " jobs each, " << w["requests"] << " requests, " << w["events"] << " events\n";
  if (auto& dropped = w["dropped"]; !dropped.empty())
    out << "dropped (--drop): the finish of " << dropped.size() << " builds: " << dropped.dump() << '\n';
  auto& l = j["latency_ms"];
  std::snprintf(line, sizeof line,
                "%s, %d connections: %zu answers in %.2f s, %.0f req/s, %.0f events/s\n"
                "latency from %s: p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  p99.9 %.2f ms  max %.2f ms\n",
                j["mode"] == "closed" ? "closed-loop"
                : !j["ramp"].is_null()
                  ? ("open-loop ramp, " + std::to_string(j["ramp"]["steps"].size()) + " steps up to "
                     + std::to_string(static_cast<long>(j["ramp"]["steps"].back()["rate"].get<double>())) + " req/s")
                      .c_str()
                  : ("open-loop at " + std::to_string(static_cast<long>(j["rate"].get<double>())) + " req/s").c_str(),
                j["connections"].get<int>(), j["requests"].get<std::size_t>(), j["seconds"].get<double>(),
                j["requests_per_s"].get<double>(), j["events_per_s"].get<double>(),
                j["latency_from"].get<std::string>().c_str(), l["p50"].get<double>(), l["p90"].get<double>(),
                l["p99"].get<double>(), l["p999"].get<double>(), l["max"].get<double>());
  out << line << "errors: " << j["errors"] << " (statuses " << j["statuses"].dump() << ')';
  if (!j["first_error"].get<std::string>().empty())
    out << "; first: " << j["first_error"].get<std::string>();
  out << '\n';
  if (j["afterwards"]["requests"].get<std::size_t>() > 0)
    out << "afterwards: " << j["afterwards"]["requests"] << " commands and messages, " << j["afterwards"]["errors"]
        << " answered other than 200, 202 or 409\n";
  if (!j["ramp"].is_null()) {
    for (auto& s : j["ramp"]["steps"])
      out << "ramp: " << number(s["rate"].get<double>()) << " req/s asked, "
          << number(s["requests_per_s"].get<double>()) << " answered/s, p99 " << s["p99_ms"] << " ms, errors "
          << s["errors"] << (s["within_slo"].get<bool>() ? "" : "  (over the SLO)")
          << '\n';
    out << "ramp: highest rate with p99 under " << j["ramp"]["slo_p99_ms"] << " ms: "
        << number(j["ramp"]["max_rate_within_slo"].get<double>()) << " req/s\n";
  }
  if (!j["notify_latency_ms"].is_null())
    out << "notify: build.finished accepted -> first notification p50 " << j["notify_latency_ms"]["p50"]
        << " ms, p99 " << j["notify_latency_ms"]["p99"] << " ms\n";
  if (auto& v = j["verification"]; !v.is_null()) {
    out << "verify: builds " << v["builds_ok"] << "/" << v["builds"];
    for (auto [field, name] : {std::pair{"streaks", "streaks"}, {"notifications", "notifications"},
                               {"job_messages", "Taskcluster job messages"}})
      if (v[field].get<std::size_t>() > 0)
        out << ", " << name << " " << v[std::string{field} + "_ok"] << "/" << v[field];
    out << ": " << v["verified_percent"] << "% as expected\n";
    std::size_t shown = 0;
    for (auto& d : v["differences"])
      if (++shown <= 20)
        out << "  " << d["subject"].get<std::string>() << "  " << d["field"].get<std::string>() << ": want "
          << d["want"].get<std::string>() << ", got " << d["got"].get<std::string>() << '\n';
    if (auto total = v["differences_total"].get<std::size_t>(); total > 20)
      out << "  ... " << total - 20 << " more (--json lists the first 100)\n";
  }
  for (auto& c : j["checks"])
    out << "check " << c["check"].get<std::string>() << ": "
        << (c["actual"].is_number() ? number(c["actual"].get<double>()) : std::string{"not measured"})
        << (c["passed"].get<bool>() ? "  ok" : "  FAILED") << '\n';
}

int run(const options& o) {
  if (!o.allow_remote && !loopback_only(o.where.host)) {
    std::cerr << "buildtrack storm: " << o.where.host
              << " is not this machine's loopback; a storm is heavy load: give --allow-remote to send it there\n";
    return 2;
  }
  auto checks = parse_checks(o.checks.empty() ? (o.verify ? "errors=0,verified=100%" : "errors=0") : o.checks);
  auto p = make_plan(o);
  std::optional<notification_receiver> receiver;
  if (o.sink_listen)
    receiver.emplace(*o.sink_listen);
  // Taskcluster: the queue the target reads definitions from, and a watch on the
  // exchange it publishes job messages on, subscribed before the first message.
  treeherder_expectation treeherder;
  for (auto& w : p.steps) {
    treeherder.jobs.insert(treeherder.jobs.end(), w.treeherder.jobs.begin(), w.treeherder.jobs.end());
    treeherder.definitions.insert(w.treeherder.definitions.begin(), w.treeherder.definitions.end());
  }
  std::optional<queue_server> queue;
  std::optional<exchange_watch> watch;
  if (o.m.sources.contains("taskcluster")) {
    queue.emplace(*o.queue_listen, treeherder.definitions);
    if (o.verify) {
      watch.emplace(o.where, o.taskcluster_exchange, o.admin_token);
      std::string why;
      if (!watch->subscribed(why, std::chrono::seconds{10})) {
        std::cerr << "buildtrack storm: " << why << '\n';
        return 1;
      }
    }
  }

  summary s;
  s.target = o.target;
  s.run = o.run;
  s.workload_mix = o.m;
  s.connections = o.connections;
  s.rate = o.rate_high > 0 ? o.rate_high : o.rate;
  s.slo_p99 = o.slo;
  s.dropped = p.dropped;
  bool progress_line = !o.quiet && isatty(STDERR_FILENO);
  if (o.send) {
    for (std::size_t i = 0; i < p.steps.size(); ++i) {
      load_options lo;
      lo.target = o.where;
      lo.connections = o.connections;
      lo.rate = p.rates[i];
      lo.timeout = o.timeout;
      std::string label = p.steps.size() > 1 ? "step " + std::to_string(i + 1) + "/" + std::to_string(p.steps.size())
                                                 + " at " + std::to_string(static_cast<long>(p.rates[i])) + "/s  "
                                             : "";
      if (progress_line)
        lo.on_progress = [label](const progress& pr) { show(pr, label); };
      auto r = send_load(p.steps[i], lo);
      if (progress_line)
        std::fprintf(stderr, "\r\033[K");
      if (p.steps.size() > 1) {
        ramp_step step{p.rates[i], r.rate(), quantile(sorted_latencies(r), 0.99), r.errors, false};
        step.within_slo = step.p99 <= o.slo && step.errors == 0;
        s.ramp.push_back(step);
      }
      append(s.load, std::move(r));
      if (!s.ramp.empty() && !s.ramp.back().within_slo) {
        // Steps past the first over the SLO would only pile more on a target behind.
        p.steps.resize(i + 1);
        p.builds.resize(i + 1);
        break;
      }
    }
    load_options lo;
    lo.target = o.where;
    lo.connections = o.connections;
    lo.timeout = o.timeout;
    for (auto& w : p.steps) {
      auto r = send_afterwards(w, lo);
      s.afterwards += r.samples.size();
      s.afterwards_errors += r.errors;
      if (s.load.first_error.empty())
        s.load.first_error = r.first_error;
    }
  }
  s.workload_mix.builds = std::accumulate(p.builds.begin(), p.builds.end(), 0);
  for (auto& w : p.steps)
    s.requests += w.requests.size();
  if (o.verify) {
    workload all;
    for (auto& w : p.steps) {
      all.expected.merge(w.expected);
      all.statistics.merge(w.statistics);
    }
    try {
      s.verified = verify(all, o.where, o.admin_token);
    } catch (const std::exception& e) {
      std::cerr << "buildtrack storm: cannot verify: " << e.what() << '\n';
      return 1;
    }
    if (receiver)
      check_notifications(*s.verified, *receiver, s.load.finished_at, o.drain, s.notify_latencies);
    if (watch) {
      // A ramp stopped early sent only its first steps' messages.
      treeherder_expectation sent;
      for (auto& w : p.steps)
        sent.jobs.insert(sent.jobs.end(), w.treeherder.jobs.begin(), w.treeherder.jobs.end());
      sent.definitions = std::move(treeherder.definitions);
      watch->check(*s.verified, sent, o.drain);
    }
  }
  auto j = to_json(s);
  j["checks"] = nlohmann::json::array();
  bool passed = s.afterwards_errors == 0;
  for (auto& c : evaluate(checks, j)) {
    j["checks"].push_back({{"check", c.c.text}, {"actual", std::isnan(c.actual) ? nlohmann::json(nullptr) : nlohmann::json(c.actual)},
                           {"passed", c.passed}});
    passed = passed && c.passed;
  }
  j["passed"] = passed;
  print_text(o.json ? std::cerr : std::cout, j);
  if (o.json)
    std::cout << j.dump(2) << '\n';
  if (!o.report.empty()) {
    std::ofstream out{o.report, std::ios::binary};
    out << render_html(j);
    if (!out) {
      std::cerr << "buildtrack storm: cannot write " << o.report << '\n';
      return 1;
    }
  }
  return passed ? 0 : 1;
}

} // namespace

int command(int argc, char** argv) {
  for (int i = 1; i < argc; ++i)
    if (std::string_view{argv[i]} == "--help" || std::string_view{argv[i]} == "-h") {
      std::cout << usage_text << check_metrics_help << '\n';
      return 0;
    }
  try {
    auto o = parse(argc, argv);
    return run(o);
  } catch (const usage_error& e) {
    std::cerr << "buildtrack storm: " << e.what() << '\n';
    return 2;
  } catch (const std::invalid_argument& e) { // a --check that is not understood
    std::cerr << "buildtrack storm: --check: " << e.what() << '\n';
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "buildtrack storm: " << e.what() << '\n';
    return 1;
  }
}

} // namespace bt::storm
