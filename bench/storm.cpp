// storm: a Buildkite event storm against buildtrackd and against a bare Beast
// server on the same machine, in one run. Prints throughput, ack latency, RSS per
// tracked build and the ratio to the bare server, then verifies every build's
// final state through the API.
#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <random>
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

#include "bench/buildkite_payloads.hpp"

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace payloads = bt::payloads;
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
  int io_threads = 2;
  int actor_threads = 2;
  std::string policy = "sharing";
  std::string idle_timeout = "5m"; ///< actor_idle_timeout; short values make actors stop mid-storm
  unsigned seed = 42;
  std::string store = "memory";      ///< or "redis": a redis-server of the bench's own
  std::string redis_fsync = "everysec"; ///< its appendfsync: always, everysec or no
  std::string snapshot_interval = "200ms";
  int snapshot_max_builds = 1000;
  bool restart = false; ///< after the storm, restart buildtrackd and time it until it serves
};

struct workload {
  std::vector<std::string> requests; ///< complete HTTP requests, shuffled
  std::map<std::string, std::string> expected; ///< build path -> final state
};

workload generate(const options& o) {
  std::mt19937 rng{o.seed};
  std::uniform_real_distribution<double> chance{0, 1};
  workload w;
  for (int b = 1; b <= o.builds; ++b) {
    auto pipeline = "bench-" + std::to_string(b % 8);
    bool build_failed = false;
    auto running = payloads::build_delivery("build.running", pipeline, b, "running");
    w.requests.push_back(payloads::http_request("build.running", running.dump()));
    for (int j = 0; j < o.jobs; ++j) {
      bool retried = chance(rng) < 0.1;
      bool first_fails = retried || chance(rng) < 0.01;
      bool last_fails = retried ? chance(rng) < 0.3 : first_fails;
      int attempts = retried ? 2 : 1;
      for (int a = 0; a < attempts; ++a) {
        bool fails = a + 1 == attempts ? last_fails : first_fails;
        for (bool done : {false, true}) {
          auto doc = payloads::job_delivery(pipeline, b, j, a, done, fails);
          auto req = payloads::http_request(doc["event"], doc.dump());
          w.requests.push_back(req);
          if (done && chance(rng) < 0.02)
            w.requests.push_back(req); // duplicate delivery
        }
      }
      build_failed = build_failed || last_fails;
    }
    auto state = build_failed ? "failed" : "passed";
    auto finished = payloads::build_delivery("build.finished", pipeline, b, state);
    w.requests.push_back(payloads::http_request("build.finished", finished.dump()));
    w.expected["/api/v1/builds/buildkite/" + pipeline + "/" + std::to_string(b)] = state;
  }
  // Deliver everything out of order: late jobs, build.finished first, and so on.
  std::shuffle(w.requests.begin(), w.requests.end(), rng);
  return w;
}

/// One keep-alive connection sending its share of requests back to back.
class connection : public std::enable_shared_from_this<connection> {
public:
  connection(asio::io_context& ioc, std::vector<const std::string*> reqs,
             std::vector<double>& latencies, std::size_t& errors)
    : stream_{ioc}, reqs_{std::move(reqs)}, latencies_{latencies}, errors_{errors} {}

  void start(tcp::endpoint ep) {
    stream_.async_connect(ep, [self = shared_from_this()](beast::error_code ec) {
      if (ec)
        throw std::runtime_error{"connect: " + ec.message()};
      self->stream_.socket().set_option(tcp::no_delay(true));
      self->next();
    });
  }

private:
  void next() {
    if (i_ == reqs_.size())
      return;
    sent_ = steady::now();
    asio::async_write(stream_, asio::buffer(*reqs_[i_]),
                      [self = shared_from_this()](beast::error_code ec, std::size_t) {
                        if (ec)
                          throw std::runtime_error{"write: " + ec.message()};
                        self->parser_.emplace();
                        http::async_read(self->stream_, self->buffer_, *self->parser_,
                                         [self](beast::error_code ec, std::size_t) {
                                           self->on_response(ec);
                                         });
                      });
  }

  void on_response(beast::error_code ec) {
    if (ec)
      throw std::runtime_error{"read: " + ec.message()};
    latencies_.push_back(std::chrono::duration<double>(steady::now() - sent_).count());
    if (parser_->get().result_int() != 202)
      ++errors_;
    ++i_;
    next();
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::response_parser<http::string_body>> parser_;
  std::vector<const std::string*> reqs_;
  std::vector<double>& latencies_;
  std::size_t& errors_;
  std::size_t i_ = 0;
  steady::time_point sent_;
};

struct run_result {
  double seconds = 0;
  std::size_t requests = 0;
  std::size_t errors = 0;
  double p50 = 0, p99 = 0, max = 0;
  double rate() const { return static_cast<double>(requests) / seconds; }
};

run_result storm(const workload& w, unsigned short port, int connections) {
  asio::io_context ioc{1};
  std::vector<double> latencies;
  latencies.reserve(w.requests.size());
  std::size_t errors = 0;
  std::vector<std::vector<const std::string*>> shares(static_cast<size_t>(connections));
  for (std::size_t i = 0; i < w.requests.size(); ++i)
    shares[i % shares.size()].push_back(&w.requests[i]);
  tcp::endpoint ep{asio::ip::make_address("127.0.0.1"), port};
  for (auto& share : shares)
    std::make_shared<connection>(ioc, std::move(share), latencies, errors)->start(ep);
  auto t0 = steady::now();
  ioc.run();
  run_result r;
  r.seconds = std::chrono::duration<double>(steady::now() - t0).count();
  r.requests = latencies.size();
  r.errors = errors;
  std::sort(latencies.begin(), latencies.end());
  auto pct = [&](double q) {
    return latencies[std::min(latencies.size() - 1,
                              static_cast<std::size_t>(q * static_cast<double>(latencies.size())))];
  };
  r.p50 = pct(0.50);
  r.p99 = pct(0.99);
  r.max = latencies.back();
  return r;
}

unsigned short free_port() {
  asio::io_context ioc;
  tcp::acceptor a{ioc, {asio::ip::make_address("127.0.0.1"), 0}};
  return a.local_endpoint().port();
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

long rss_kib(pid_t pid) {
  std::ifstream in{"/proc/" + std::to_string(pid) + "/status"};
  std::string line;
  while (std::getline(in, line))
    if (line.starts_with("VmRSS:"))
      return std::stol(line.substr(6));
  return 0;
}

/// Reads every build back and compares its state; returns the mismatches.
std::size_t verify(const workload& w, unsigned short port) {
  asio::io_context ioc;
  beast::tcp_stream stream{ioc};
  stream.connect(tcp::endpoint{asio::ip::make_address("127.0.0.1"), port});
  std::size_t wrong = 0;
  for (auto& [path, state] : w.expected) {
    http::request<http::empty_body> req{http::verb::get, path, 11};
    req.set(http::field::host, "127.0.0.1");
    http::write(stream, req);
    beast::flat_buffer buf;
    http::response<http::string_body> res;
    http::read(stream, buf, res);
    auto doc = json::parse(res.body(), nullptr, false);
    if (res.result_int() != 200 || doc.is_discarded() || doc["state"] != state) {
      if (++wrong <= 5)
        std::cerr << "mismatch " << path << ": want " << state << ", got " << res.body().substr(0, 200) << '\n';
    }
  }
  return wrong;
}

void print(const char* name, const run_result& r) {
  std::printf("%-12s %9zu req %8.2f s %10.0f req/s  p50 %6.2f ms  p99 %6.2f ms  max %7.2f ms  "
              "non-202 %zu\n",
              name, r.requests, r.seconds, r.rate(), r.p50 * 1e3, r.p99 * 1e3, r.max * 1e3,
              r.errors);
}

} // namespace

int main(int argc, char** argv) {
  options o;
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
    else if (k == "--snapshot-max-builds") o.snapshot_max_builds = std::stoi(v);
    else if (k == "--restart") o.restart = v == "1" || v == "yes";
    else {
      std::cerr << "unknown option " << k << '\n';
      return 2;
    }
  }
  auto w = generate(o);
  std::printf("storm: %d builds x %d jobs = %zu Buildkite deliveries (shuffled, 2%% "
              "duplicates, ~10%% retried jobs) over %d keep-alive connections\n",
              o.builds, o.jobs, w.requests.size(), o.connections);

  // The floor first: a bare Beast server doing no work.
  auto bare_port = free_port();
  auto bare = spawn({o.bare, std::to_string(bare_port), std::to_string(o.io_threads)});
  await_ready(bare_port);
  auto floor = storm(w, bare_port, o.connections);
  stop(bare);

  // The Redis store gets a redis-server of its own, appending to its AOF.
  pid_t redis = -1;
  std::string redis_dir;
  auto redis_port = free_port();
  if (o.store == "redis") {
    char dir[] = "/tmp/bt-storm-redis-XXXXXX";
    redis_dir = mkdtemp(dir);
    redis = spawn({"/usr/bin/redis-server", "--port", std::to_string(redis_port), "--bind",
                   "127.0.0.1", "--dir", redis_dir, "--save", "", "--appendonly", "yes",
                   "--appendfsync", o.redis_fsync, "--logfile", redis_dir + "/redis.log"});
    await_ready(redis_port);
  }

  auto port = free_port();
  auto config_path = "/tmp/buildtrack-storm-" + std::to_string(getpid()) + ".yaml";
  {
    std::ofstream cfg{config_path};
    cfg << "server:\n  listen: 127.0.0.1:" << port << "\n  io_threads: " << o.io_threads
        << "\nstore:\n  kind: " << o.store << "\n  redis:\n    url: redis://127.0.0.1:"
        << redis_port << "/0\n  snapshot_interval: " << o.snapshot_interval
        << "\n  snapshot_max_builds: " << o.snapshot_max_builds
        << "\nsources:\n  buildkite:\n    token: " << token
        << "\ntracking:\n  actor_idle_timeout: " << o.idle_timeout
        << "\nactors:\n  threads: " << o.actor_threads
        << "\n  policy: " << o.policy << "\nlog:\n  level: error\n";
  }
  auto daemon = spawn({o.daemon, "--config", config_path});
  await_ready(port);
  auto rss_before = rss_kib(daemon);
  auto result = storm(w, port, o.connections);
  auto mismatches = verify(w, port);
  auto rss_after = rss_kib(daemon);
  stop(daemon);

  print("bare-beast", floor);
  print("buildtrackd", result);
  std::printf("store %s%s  ratio to bare: %.1f%%   RSS: %ld -> %ld KiB, %.2f KiB per tracked "
              "build (%d builds, %d jobs each)\n",
              o.store.c_str(), o.store == "redis" ? (" (appendfsync " + o.redis_fsync + ")").c_str() : "",
              100.0 * result.rate() / floor.rate(), rss_before, rss_after,
              static_cast<double>(rss_after - rss_before) / o.builds, o.builds, o.jobs);
  std::printf("verify: %zu of %zu builds with the expected final state\n",
              w.expected.size() - mismatches, w.expected.size());

  if (o.restart) {
    // Ready to serve = listening: buildtrackd opens its port only after recovery.
    auto t0 = steady::now();
    daemon = spawn({o.daemon, "--config", config_path});
    await_ready(port, std::chrono::minutes{5});
    auto ready = std::chrono::duration<double>(steady::now() - t0).count();
    auto after_restart = verify(w, port);
    stop(daemon);
    std::printf("restart: ready to serve %d tracked builds in %.2f s; verify after restart: "
                "%zu of %zu\n",
                o.builds, ready, w.expected.size() - after_restart, w.expected.size());
    mismatches += after_restart;
  }
  std::remove(config_path.c_str());
  if (redis > 0) {
    stop(redis);
    std::filesystem::remove_all(redis_dir);
  }
  return mismatches == 0 && result.errors == 0 ? 0 : 1;
}
