// storm: a Buildkite event storm against buildtrackd and against a bare Beast
// server on the same machine, in one run: the self-contained mode of `buildtrack storm`
// (storm/), with the same generator, load and verification. It starts buildtrackd
// (and, with --store redis, a redis-server of its own), measures the bare floor before
// it and again once everything else has stopped, and prints throughput, ack latency, RSS
// per tracked build and the ratio to the bare server (the mean of its two runs), then
// verifies every build's final state and streak through the API.
// With --source taskcluster it is a storm of Taskcluster queue messages instead, task
// definitions from the storm's queue server in this process, and WebSocket subscribers on
// different bindings of the Treeherder exchange: it reports job messages published per
// second and publish -> subscriber latency, and checks that each subscriber got exactly
// what its bindings match, schema-valid, in publish order. With --notify 1 it also
// configures a webhook sink pointing at a receiver inside this process, and reports
// the time from each build.finished being accepted to the build's first notification
// arriving, and checks every build's last outcome arrived, each delivery exactly once.
#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "config/config.hpp"
#include "model/build.hpp"
#include "model/topic.hpp"
#include "sources/buildkite.hpp"
#include "store/redis_store.hpp"
#include "storm/load.hpp"
#include "storm/payloads.hpp"
#include "storm/taskcluster.hpp"
#include "storm/taskcluster_events.hpp"
#include "storm/report.hpp"
#include "storm/verify.hpp"
#include "storm/workload.hpp"
#include "support/clock.hpp"
#include "support/json_schema.hpp"
#include "tests/free_port.hpp"
#include "tests/ws_client.hpp"

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace storm = bt::storm;
using tcp = asio::ip::tcp;
using nlohmann::json;
using steady = std::chrono::steady_clock;

namespace {

using bt::payloads::token;

struct options {
  std::string daemon = "build/buildtrackd";
  std::string bare = "build/bench/bare_server";
  int builds = 2000;
  int jobs = 10;
  int connections = 64;
  // buildtrackd's defaults, unless given.
  int io_threads = bt::config::server_config{}.io_threads;
  int actor_threads = bt::config::actors_config{}.threads;
  std::string policy = bt::config::actors_config{}.policy;
  std::string idle_timeout = "5m"; ///< actor_idle_timeout; short values make actors stop mid-storm
  unsigned seed = 42;
  std::string store = "memory";      ///< or "redis": a redis-server of the bench's own
  std::string redis_fsync = "everysec"; ///< its appendfsync: always, everysec or no
  std::string snapshot_interval = "200ms";
  std::string snapshot_delay; ///< empty: the daemon's default
  int snapshot_max_builds = 1000;
  bool restart = false; ///< after the storm, restart buildtrackd and time it until it serves
  /// Redis only: finished builds written to the store before buildtrackd starts, as a
  /// long-running buildtrackd tracks them (actors stopped, states only in Redis).
  int preload = 0;
  bool notify = false;  ///< a webhook sink to a receiver in this process
  int notify_concurrency = 8;
  std::string source = "buildkite"; ///< or "native": the native event API; or "taskcluster"
  int subscribers = 4; ///< taskcluster: WebSocket subscribers of the Treeherder exchange
  int batch = 1; ///< native events per request (NDJSON when more than one)
  /// Native: three builds in four get a target that waits for a message. For one its
  /// message comes in the shuffled storm (before or after the target finishes); the
  /// others' come after it, in order per build: pause, pass, resume; or abort.
  bool targets = false;
  /// Every source in one storm: Buildkite, native (targets, messages, statistics),
  /// Taskcluster (with subscribers) and CDEvents, `builds` of each.
  bool mix = false;
  /// Thresholds, as `buildtrack storm --check` takes them, plus `ratio` (percent of the
  /// bare floor): a regression guard, e.g. 'ratio>=28,p99<5ms'.
  std::string checks;
};

/// Writes `n` finished builds of `jobs` jobs each (pipelines `preload-0..7`) into the
/// Redis at `port`, each as the storm's Buildkite deliveries make it (parsed and
/// applied once, then copied under its own key and number), with its streak verdict:
/// what buildtrackd recovers after a long run.
void preload(int n, int jobs, int port) {
  bt::store::redis_store_config cfg;
  cfg.endpoint.port = port;
  cfg.timeout = std::chrono::seconds{30};
  bt::store::redis_store store{cfg};
  auto now = bt::support::wall_clock(); // within the retention: tracked, not expired
  bt::model::build shape;
  auto apply = [&](const nlohmann::json& doc) {
    auto parsed = bt::sources::buildkite_parse(doc["event"].get<std::string>(), doc.dump(), now);
    for (auto& e : std::get<bt::sources::buildkite_delivery>(parsed).envelopes)
      bt::model::apply(shape, e, now);
  };
  apply(bt::payloads::build_delivery("build.running", "preload-0", 0, "running"));
  for (int j = 0; j < jobs; ++j) {
    apply(bt::payloads::job_delivery("preload-0", 0, j, 0, false, false));
    apply(bt::payloads::job_delivery("preload-0", 0, j, 0, true, false));
  }
  apply(bt::payloads::build_delivery("build.finished", "preload-0", 0, "passed"));
  shape.streak = bt::model::streak_result{bt::model::verdict::passed, 0, shape.revision};
  auto t0 = std::chrono::steady_clock::now();
  // As a first start on an empty Redis does: with no build stored, every build is
  // written with its recovery record from now on.
  if (!store.for_each_record([](bt::model::recovery_record&&) {}))
    throw std::runtime_error{"preload: Redis could not be read"};
  bt::store::snapshot batch;
  for (int b = 0; b < n; ++b) {
    auto& one = batch.builds.emplace_back(shape);
    one.key.pipeline = "preload-" + std::to_string(b % 8);
    one.key.id = "b-" + one.key.pipeline + "-" + std::to_string(b);
    one.info.number = b;
    one.info.url = "https://buildkite.com/acme/" + one.key.pipeline + "/builds/" + std::to_string(b);
    if (batch.builds.size() == 1000 || b + 1 == n) {
      if (!store.write(batch))
        throw std::runtime_error{"preload: Redis refused a write"};
      batch.builds.clear();
    }
  }
  std::printf("preload: %d finished builds x %d jobs written to Redis in %.1f s\n", n, jobs,
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
}

pid_t spawn(const std::vector<std::string>& argv) {
  pid_t pid = fork();
  if (pid == 0) {
    std::vector<char*> args;
    for (auto& a : argv)
      args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    std::perror("execv");
    _exit(127);
  }
  return pid;
}

void stop(pid_t pid) {
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
}

/// Waits until the server answers on `port`.
void await_ready(unsigned short port, std::chrono::milliseconds limit = std::chrono::seconds{5}) {
  for (auto until = steady::now() + limit; steady::now() < until;) {
    try {
      asio::io_context ioc;
      tcp::socket s{ioc};
      s.connect({asio::ip::make_address("127.0.0.1"), port});
      return;
    } catch (const std::exception&) {
      std::this_thread::sleep_for(std::chrono::milliseconds{2});
    }
  }
  throw std::runtime_error{"server did not come up on port " + std::to_string(port)};
}

/// Waits until buildtrackd on `port` has recovered and is ready: it answers on its
/// port before then (503 while it recovers), so an open port is not enough.
void await_daemon(unsigned short port, std::chrono::milliseconds limit) {
  for (auto until = steady::now() + limit; steady::now() < until;) {
    try {
      asio::io_context ioc;
      beast::tcp_stream s{ioc};
      s.connect(tcp::endpoint{asio::ip::make_address("127.0.0.1"), port});
      http::request<http::empty_body> req{http::verb::get, "/readyz", 11};
      req.set(http::field::host, "127.0.0.1");
      http::write(s, req);
      beast::flat_buffer buf;
      http::response<http::string_body> res;
      http::read(s, buf, res);
      if (res.result_int() == 200)
        return;
    } catch (const std::exception&) {
    }
    std::this_thread::sleep_for(std::chrono::milliseconds{2});
  }
  throw std::runtime_error{"buildtrackd did not become ready on port " + std::to_string(port)};
}

/// CPU time (user and system, every thread) a process has used so far, in seconds.
double cpu_seconds(pid_t pid) {
  std::ifstream in{"/proc/" + std::to_string(pid) + "/stat"};
  std::string stat{std::istreambuf_iterator<char>{in}, {}};
  // Fields 14 and 15 (utime, stime) follow the command name, which may hold spaces.
  std::istringstream rest{stat.substr(stat.rfind(')') + 2)};
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i)
    if (i >= 14)
      ticks += std::stod(field);
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

/// CPU time per request of a process over a run, in microseconds.
double cpu_us_per_request(double before, double after, const storm::load_result& r) {
  return r.samples.empty() ? 0.0 : (after - before) * 1e6 / static_cast<double>(r.samples.size());
}

long rss_kib(pid_t pid) {
  std::ifstream in{"/proc/" + std::to_string(pid) + "/status"};
  std::string line;
  while (std::getline(in, line))
    if (line.starts_with("VmRSS:"))
      return std::stol(line.substr(6));
  return 0;
}


/// The bindings of subscriber `i`.
std::vector<std::string> bindings_of(int i) {
  static const std::vector<std::vector<std::string>> choices{
    {"#"}, {"*.mozilla-central._"}, {"tc-treeherder.try.#"}, {"#.fenix._", "*.autoland.*"}};
  return choices[static_cast<std::size_t>(i) % choices.size()];
}

/// What one subscriber received: each frame and when (wall clock, as the backlog's
/// positions are).
struct received {
  std::vector<std::pair<std::string, std::chrono::system_clock::time_point>> frames;
};

/// Checks each subscriber's frames against its bindings: exactly the job messages they
/// match, each once, in publish order, schema-valid. Returns the faults and collects
/// publish -> received latencies (from the position's milliseconds).
std::size_t check_subscribers(const std::vector<received>& subs, const storm::treeherder_expectation& x,
                              const bt::support::json_schema& schema, std::vector<double>& latency) {
  std::size_t faults = 0;
  auto fault = [&](int i, const std::string& what) {
    if (++faults <= 5)
      std::cerr << "subscriber " << i << ": " << what << '\n';
  };
  for (int i = 0; i < static_cast<int>(subs.size()); ++i) {
    std::set<std::string> want;
    for (auto& [id, key] : x.jobs)
      for (auto& b : bindings_of(i))
        if (bt::model::topic_matches(b, key))
          want.insert(id);
    std::set<std::string> got;
    std::pair<unsigned long long, unsigned long long> last{0, 0};
    for (auto& [text, at] : subs[static_cast<std::size_t>(i)].frames) {
      auto frame = json::parse(text, nullptr, false);
      if (!frame.contains("payload")) {
        fault(i, "a notice: " + text.substr(0, 200));
        continue;
      }
      auto id = bt::storm::taskcluster::job_id(frame["payload"]);
      if (!got.insert(id).second)
        fault(i, "twice: " + id);
      if (!want.contains(id))
        fault(i, "not its binding's: " + id + " " + frame["routingKey"].dump());
      if (!schema.accepts(frame["payload"]))
        fault(i, "fails pulse-job: " + id);
      auto position = frame["id"].get<std::string>();
      auto dash = position.find('-');
      std::pair now{std::stoull(position.substr(0, dash)), std::stoull(position.substr(dash + 1))};
      if (now <= last)
        fault(i, "out of publish order: " + position);
      last = now;
      auto published = std::chrono::system_clock::time_point{std::chrono::milliseconds{now.first}};
      latency.push_back(std::chrono::duration<double>(at - published).count());
    }
    for (auto& id : want)
      if (!got.contains(id))
        fault(i, "never received: " + id);
  }
  return faults;
}

/// The storm's mix for these options: every source's builds with the bench's token.
storm::mix mix_of(const options& o) {
  storm::mix m;
  m.builds = o.builds;
  m.jobs = o.jobs;
  m.seed = o.seed;
  m.batch = o.batch;
  m.targets = o.targets || o.mix;
  m.statistics = o.mix;
  m.secrets = {token, token, token, token};
  if (o.mix)
    m.sources = {"buildkite", "native", "taskcluster", "cdevents"};
  else
    m.sources = {o.source};
  return m;
}

/// Sends the storm to 127.0.0.1:`port`, closed-loop.
storm::load_result send(const storm::workload& w, unsigned short port, int connections) {
  storm::load_options lo;
  lo.target = {"127.0.0.1", port};
  lo.connections = connections;
  return storm::send_load(w, lo);
}

/// Prints what differs (the first 5) and returns how many things did.
std::size_t report(const storm::verification& v) {
  for (std::size_t i = 0; i < std::min<std::size_t>(5, v.differences.size()); ++i) {
    auto& d = v.differences[i];
    std::cerr << "mismatch " << d.subject << " " << d.field << ": want " << d.want << ", got " << d.got << '\n';
  }
  return v.differences.size();
}

void print(const char* name, const storm::load_result& r) {
  auto latencies = storm::sorted_latencies(r);
  std::printf("%-12s %9zu req %8.2f s %10.0f req/s %10.0f events/s  p50 %6.2f ms  p99 %6.2f ms  "
              "max %7.2f ms  non-202 %zu\n",
              name, r.samples.size(), r.seconds, r.rate(), r.event_rate(), storm::quantile(latencies, 0.5) * 1e3,
              storm::quantile(latencies, 0.99) * 1e3, latencies.empty() ? 0.0 : latencies.back() * 1e3, r.errors);
}

} // namespace

/// One run of the storm against the bare server: its rate, and the CPU per request of
/// the server and of this process (the load generator).
struct floor_run {
  storm::load_result load;
  double server_us = 0, load_us = 0;
};

/// Runs the storm `w` against a bare server of its own, started and stopped here.
floor_run measure_floor(const options& o, const storm::workload& w) {
  auto port = bt::test::free_port();
  auto bare = spawn({o.bare, std::to_string(port), std::to_string(o.io_threads)});
  await_ready(port);
  auto server_cpu = cpu_seconds(bare), load_cpu = cpu_seconds(getpid());
  floor_run run;
  run.load = send(w, port, o.connections);
  run.server_us = cpu_us_per_request(server_cpu, cpu_seconds(bare), run.load);
  run.load_us = cpu_us_per_request(load_cpu, cpu_seconds(getpid()), run.load);
  stop(bare);
  return run;
}

const char* const usage =
  "usage: storm [--OPTION VALUE]...   (every option takes a value)\n"
  "  --daemon PATH --bare PATH  buildtrackd and bare_server (default build/...)\n"
  "  --builds N --jobs N --connections N --seed N\n"
  "  --source buildkite|native|taskcluster|cdevents  --mix 1 (every source)\n"
  "  --batch N --targets 1 (native)  --subscribers N (taskcluster)\n"
  "  --store memory|redis --redis-fsync always|everysec|no --restart 1 --notify 1\n"
  "  --preload N  (redis) N finished builds in the store before buildtrackd starts\n"
  "  --notify-concurrency N --io-threads N --actor-threads N --policy sharing|stealing\n"
  "  --actor-idle-timeout D --snapshot-interval D --snapshot-max-builds N --snapshot-delay D\n"
  "  --check LIST  thresholds as buildtrack storm takes them, and ratio (% of the bare\n"
  "                floor): exit status 1 when one fails, e.g. 'ratio>=28,p99<5ms'\n"
  "buildtrack storm --help explains the storm; bench/RESULTS.md has figures.\n";

int main(int argc, char** argv) {
  options o;
  if (argc % 2 == 0) { // a flag without its value, or --help
    bool help = std::string_view{argv[argc - 1]} == "--help";
    (help ? std::cout : std::cerr) << usage;
    return help ? 0 : 2;
  }
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--daemon") o.daemon = v;
    else if (k == "--bare") o.bare = v;
    else if (k == "--builds") o.builds = std::stoi(v);
    else if (k == "--jobs") o.jobs = std::stoi(v);
    else if (k == "--connections") o.connections = std::stoi(v);
    else if (k == "--io-threads") o.io_threads = std::stoi(v);
    else if (k == "--actor-threads") o.actor_threads = std::stoi(v);
    else if (k == "--policy") o.policy = v;
    else if (k == "--actor-idle-timeout") o.idle_timeout = v;
    else if (k == "--seed") o.seed = static_cast<unsigned>(std::stoul(v));
    else if (k == "--store") o.store = v;
    else if (k == "--redis-fsync") o.redis_fsync = v;
    else if (k == "--snapshot-interval") o.snapshot_interval = v;
    else if (k == "--snapshot-delay") o.snapshot_delay = v;
    else if (k == "--snapshot-max-builds") o.snapshot_max_builds = std::stoi(v);
    else if (k == "--restart") o.restart = v == "1" || v == "yes";
    else if (k == "--preload") o.preload = std::stoi(v);
    else if (k == "--notify") o.notify = v == "1" || v == "yes";
    else if (k == "--notify-concurrency") o.notify_concurrency = std::stoi(v);
    else if (k == "--source") o.source = v;
    else if (k == "--subscribers") o.subscribers = std::stoi(v);
    else if (k == "--batch") o.batch = std::stoi(v);
    else if (k == "--targets") o.targets = v == "1" || v == "yes";
    else if (k == "--mix") o.mix = v == "1" || v == "yes";
    else if (k == "--check") o.checks = v;
    else {
      std::cerr << "unknown option " << k << '\n' << usage;
      return 2;
    }
  }
  bool taskcluster = o.source == "taskcluster" || o.mix;
  bool sources_ok = o.source == "buildkite" || o.source == "native" || o.source == "taskcluster"
                    || o.source == "cdevents";
  if (!sources_ok || o.batch < 1 || o.subscribers < 1
      || (o.source != "native" && (o.batch != 1 || o.targets))
      || (o.mix && (o.source != "buildkite" || o.batch != 1 || o.targets))) {
    std::cerr << "--source buildkite, --source native [--batch N] [--targets 1], "
                 "--source taskcluster [--subscribers N], --source cdevents, or "
                 "--mix 1 [--subscribers N]\n";
    return 2;
  }
  if (o.preload < 0 || (o.preload > 0 && o.store != "redis")) {
    std::cerr << "--preload N needs --store redis\n";
    return 2;
  }
  try {
    storm::parse_checks(o.checks); // refused before the storm, not after it
  } catch (const std::invalid_argument& e) {
    std::cerr << "--check: " << e.what() << '\n';
    return 2;
  }
  auto w = storm::generate(mix_of(o));
  auto& treeherder = w.treeherder;
  if (o.mix)
    std::printf("storm: every source, %d builds x %d jobs each (taskcluster: %zu job messages)\n",
                o.builds, o.jobs, treeherder.jobs.size());
  if (o.mix)
    std::printf("storm: %zu events in %zu requests (shuffled, 2%% duplicates, ~10%% retried "
                "jobs) over %d keep-alive connections, %d subscribers\n",
                w.events, w.requests.size(), o.connections, o.subscribers);
  else if (taskcluster)
    std::printf("storm: %d task groups x %d tasks = %zu queue messages (shuffled; retries, "
                "reruns, cancels) making %zu job messages, over %d keep-alive connections, %d "
                "subscribers\n",
                o.builds, o.jobs, w.requests.size(), treeherder.jobs.size(), o.connections,
                o.subscribers);
  else
    std::printf("storm: %d builds x %d jobs = %zu %s events in %zu requests (shuffled, 2%% "
                "duplicates, ~10%% retried jobs) over %d keep-alive connections\n",
                o.builds, o.jobs, w.events, o.source.c_str(), w.requests.size(), o.connections);
  // Taskcluster: the queue the task definitions and artifact listings are read from.
  std::optional<storm::queue_server> queue;
  if (taskcluster)
    queue.emplace(storm::endpoint{"127.0.0.1", 0}, treeherder.definitions);

  // The floor first: a bare Beast server doing no work. It runs again at the end, and
  // the ratio takes the mean: its rate swings more between runs than buildtrackd's.
  auto floor_before = measure_floor(o, w);

  // The Redis store gets a redis-server of its own, appending to its AOF.
  pid_t redis = -1;
  std::string redis_dir;
  auto redis_port = bt::test::free_port();
  if (o.store == "redis") {
    char dir[] = "/tmp/bt-storm-redis-XXXXXX";
    redis_dir = mkdtemp(dir);
    redis = spawn({"/usr/bin/redis-server", "--port", std::to_string(redis_port), "--bind",
                   "127.0.0.1", "--dir", redis_dir, "--save", "", "--appendonly", "yes",
                   "--appendfsync", o.redis_fsync, "--logfile", redis_dir + "/redis.log"});
    await_ready(redis_port);
  }

  std::optional<storm::notification_receiver> receiver;
  if (o.notify)
    receiver.emplace(storm::endpoint{"127.0.0.1", 0});
  auto port = bt::test::free_port();
  auto config_path = "/tmp/buildtrack-storm-" + std::to_string(getpid()) + ".yaml";
  {
    std::ofstream cfg{config_path};
    cfg << "server:\n  listen: 127.0.0.1:" << port << "\n  io_threads: " << o.io_threads
        << "\nstore:\n  kind: " << o.store << "\n  redis:\n    url: redis://127.0.0.1:"
        << redis_port << "/0\n  snapshot_interval: " << o.snapshot_interval
        << "\n  snapshot_max_builds: " << o.snapshot_max_builds
        << (o.snapshot_delay.empty() ? "" : "\n  snapshot_delay: " + o.snapshot_delay)
        << "\nsources:\n  buildkite:\n    token: " << token << "\n  native:\n    token: " << token
        << "\n  cdevents:\n    token: " << token
        << "\n  taskcluster:\n    token: " << token << "\n    root_url: "
        << (queue ? "http://127.0.0.1:" + std::to_string(queue->port()) : std::string{"https://tc.example.com"})
        << "\nexchanges:\n  subscriber_queue: 1000000"
        << "\ntracking:\n  actor_idle_timeout: " << o.idle_timeout
        << "\nactors:\n  threads: " << o.actor_threads
        << "\n  policy: " << o.policy << "\nlog:\n  level: error\n";
    if (receiver)
      cfg << "notifications:\n  - name: bench\n    kind: webhook\n    url: http://127.0.0.1:"
          << receiver->port() << "/hook\n    concurrency: " << o.notify_concurrency
          // CDEvents builds name no branch.
          << "\n    branches: ['*']\n";
  }
  if (o.preload > 0)
    preload(o.preload, o.jobs, redis_port);
  auto started = steady::now();
  auto daemon = spawn({o.daemon, "--config", config_path});
  await_daemon(port, std::chrono::minutes{5});
  auto rss_before = rss_kib(daemon);
  if (o.preload > 0)
    std::printf("preload: buildtrackd ready in %.2f s with %d builds in the store; RSS %ld KiB, "
                "%.2f KiB per preloaded build (the daemon's own base included)\n",
                std::chrono::duration<double>(steady::now() - started).count(), o.preload,
                rss_before, static_cast<double>(rss_before) / o.preload);
  // Taskcluster: subscribers from the backlog's start (nothing is missed however the
  // subscription and the first publication meet), each reading until it has what its
  // bindings match.
  std::vector<received> subs(taskcluster ? static_cast<std::size_t>(o.subscribers) : 0);
  std::vector<std::thread> readers;
  for (int i = 0; i < static_cast<int>(subs.size()); ++i) {
    std::size_t expect = 0;
    for (auto& [id, key] : treeherder.jobs)
      for (auto& b : bindings_of(i))
        if (bt::model::topic_matches(b, key)) {
          ++expect;
          break;
        }
    std::string target = bt::storm::taskcluster::subscribe_path + "?since=0";
    for (auto& b : bindings_of(i)) {
      std::string encoded;
      for (char c : b)
        encoded += c == '#' ? std::string{"%23"} : std::string(1, c);
      target += "&bind=" + encoded;
    }
    auto client = std::make_shared<bt::test::ws_client>(port, target);
    if (!client->open())
      throw std::runtime_error{"subscriber refused: " + std::to_string(client->status)};
    readers.emplace_back([client, expect, &got = subs[static_cast<std::size_t>(i)]] {
      while (got.frames.size() < expect)
        if (auto frame = client->read(std::chrono::seconds{30}))
          got.frames.emplace_back(std::move(*frame), std::chrono::system_clock::now());
        else
          break;
    });
  }
  auto storm_started = std::chrono::system_clock::now();
  double daemon_cpu = cpu_seconds(daemon), redis_cpu = redis > 0 ? cpu_seconds(redis) : 0.0;
  auto load_cpu = cpu_seconds(getpid());
  auto result = send(w, port, o.connections);
  auto daemon_us = cpu_us_per_request(daemon_cpu, cpu_seconds(daemon), result);
  auto redis_us = redis > 0 ? cpu_us_per_request(redis_cpu, cpu_seconds(redis), result) : 0.0;
  auto load_us = cpu_us_per_request(load_cpu, cpu_seconds(getpid()), result);
  for (auto& r : readers)
    r.join();
  if (!w.afterwards.empty()) {
    storm::load_options lo;
    lo.target = {"127.0.0.1", port};
    lo.connections = o.connections;
    auto refused = storm::send_afterwards(w, lo).errors;
    std::printf("targets: %zu builds got commands and messages after the storm; %zu answers "
                "other than 200, 202 or 409\n",
                w.afterwards.size(), refused);
    result.errors += refused;
  }
  auto verified = storm::verify(w, {"127.0.0.1", port}, "");
  auto rss_after = rss_kib(daemon);
  std::vector<double> notify_latency;
  double drain_seconds = 0;
  std::size_t notify_faults = 0;
  if (receiver) {
    // Every build's last outcome must arrive; wait for the outbox to drain.
    auto t0 = steady::now();
    auto before = verified.differences.size();
    storm::check_notifications(verified, *receiver, result.finished_at, std::chrono::minutes{2},
                               notify_latency);
    notify_faults = verified.differences.size() - before;
    drain_seconds = std::chrono::duration<double>(steady::now() - t0).count();
  }
  auto mismatches = report(verified);
  stop(daemon);

  print("bare-beast", floor_before.load);
  print("buildtrackd", result);
  if (taskcluster) {
    std::string error;
    auto schema = bt::support::json_schema::load(BT_SCHEMAS "/pulse-job.schema.yml", error);
    if (!schema)
      throw std::runtime_error{error};
    std::vector<double> latency;
    auto faults = check_subscribers(subs, treeherder, *schema, latency);
    std::sort(latency.begin(), latency.end());
    auto pct = [&](double q) {
      return latency.empty() ? 0.0
                             : latency[std::min(latency.size() - 1,
                                                static_cast<std::size_t>(q * static_cast<double>(latency.size())))];
    };
    auto& all = subs.front().frames;
    double seconds = all.empty() ? 0.0
                                 : std::chrono::duration<double>(all.back().second - storm_started).count();
    std::size_t frames = 0;
    for (auto& sub : subs)
      frames += sub.frames.size();
    std::printf("exchange: %zu job messages published in %.2f s from the storm's start: %.0f "
                "messages/s; %zu frames to %d subscribers\n",
                all.size(), seconds, static_cast<double>(all.size()) / seconds, frames, o.subscribers);
    std::printf("exchange: publish -> subscriber p50 %.0f ms  p99 %.0f ms  max %.0f ms "
                "(backlog position's ms to receipt)\n",
                pct(0.5) * 1e3, pct(0.99) * 1e3, latency.empty() ? 0.0 : latency.back() * 1e3);
    std::printf("exchange: %zu faults (a message missing, twice, out of order, not the "
                "binding's, schema-invalid)\n",
                faults);
    mismatches += faults;
  }
  // Every source's builds in a mix (Taskcluster task groups too, though they never finish).
  int tracked = o.mix ? 4 * o.builds : o.builds;
  std::printf("verify: %zu of %zu builds with the expected final state\n", verified.builds_ok,
              verified.builds);
  std::printf("verify: %zu of %zu streaks as the final states make them\n", verified.streaks_ok,
              verified.streaks);
  if (receiver) {
    std::size_t twice = 0;
    for (auto& [key, h] : receiver->builds())
      twice += h.duplicates;
    std::printf("notify: build.finished accepted -> first notification received, %zu builds: "
                "p50 %.1f ms  p99 %.1f ms  max %.1f ms (webhook sink, concurrency %d)\n",
                notify_latency.size(), storm::quantile(notify_latency, 0.5) * 1e3,
                storm::quantile(notify_latency, 0.99) * 1e3,
                notify_latency.empty() ? 0.0 : notify_latency.back() * 1e3, o.notify_concurrency);
    std::printf("notify: %zu deliveries, %zu heard twice; %zu faults (final outcome missing or "
                "heard twice) after %.1f s of draining\n",
                receiver->deliveries(), twice, notify_faults, drain_seconds);
  }

  if (o.restart) {
    // Ready to serve = /readyz answers 200: buildtrackd listens at once and answers
    // 503 until it has recovered.
    auto t0 = steady::now();
    daemon = spawn({o.daemon, "--config", config_path});
    await_daemon(port, std::chrono::minutes{5});
    auto ready = std::chrono::duration<double>(steady::now() - t0).count();
    auto after_restart = report(storm::verify(w, {"127.0.0.1", port}, ""));
    if (receiver) {
      // What was delivered before must not be sent again by the restarted daemon.
      auto heard = [&] {
        std::size_t n = receiver->deliveries();
        for (auto& [key, h] : receiver->builds())
          n += h.duplicates;
        return n;
      };
      auto before = heard();
      std::this_thread::sleep_for(std::chrono::seconds{1});
      auto resent = heard() - before;
      std::printf("notify: %zu deliveries in the second after the restart\n", resent);
      after_restart += resent;
    }
    stop(daemon);
    std::printf("restart: ready to serve %d tracked builds in %.2f s; verify after restart: "
                "%zu of %zu\n",
                tracked + o.preload, ready, w.expected.size() - after_restart, w.expected.size());
    mismatches += after_restart;
  }
  std::remove(config_path.c_str());
  if (redis > 0) {
    stop(redis);
    std::filesystem::remove_all(redis_dir);
  }

  auto floor_after = measure_floor(o, w);
  print("bare-after", floor_after.load);
  auto floor_rate = (floor_before.load.rate() + floor_after.load.rate()) / 2;
  auto ratio_percent = 100.0 * result.rate() / floor_rate;
  std::printf("store %s%s  ratio to bare: %.1f%% (floor %.0f req/s, the mean of its two runs)   "
              "RSS: %ld -> %ld KiB, %.2f KiB per tracked build (%d builds, %d jobs each)\n",
              o.store.c_str(), o.store == "redis" ? (" (appendfsync " + o.redis_fsync + ")").c_str() : "",
              ratio_percent, floor_rate, rss_before, rss_after,
              static_cast<double>(rss_after - rss_before) / tracked, tracked, o.jobs);
  // CPU per request is steadier than req/s on a shared machine: it says what a change
  // costs even when a neighbour slows the whole run.
  std::printf("cpu per request: bare-beast %.1f us (load generator %.1f us); buildtrackd %.1f us, "
              "redis-server %.1f us (load generator %.1f us)\n",
              (floor_before.server_us + floor_after.server_us) / 2,
              (floor_before.load_us + floor_after.load_us) / 2, daemon_us, redis_us, load_us);
  bool checks_held = true;
  if (!o.checks.empty()) {
    storm::summary s;
    s.load = result;
    s.verified = verified;
    auto j = storm::to_json(s);
    j["ratio_percent"] = ratio_percent;
    for (auto& c : storm::evaluate(storm::parse_checks(o.checks), j)) {
      std::printf("check %s: %.3f %s\n", c.c.text.c_str(), c.actual, c.passed ? "ok" : "FAILED");
      checks_held = checks_held && c.passed;
    }
  }
  return mismatches == 0 && result.errors == 0 && checks_held ? 0 : 1;
}
