// storm: a Buildkite event storm against buildtrackd and against a bare Beast
// server on the same machine, in one run. With --source taskcluster it is a storm of
// Taskcluster queue messages instead, task definitions from a fake queue in this
// process, and WebSocket subscribers on different bindings of the Treeherder
// exchange: it reports job messages published per second and publish -> subscriber
// latency, and checks that each subscriber got exactly what its bindings match,
// schema-valid, in publish order. Prints throughput, ack latency, RSS per
// tracked build and the ratio to the bare server, then verifies every build's
// final state through the API. With --notify 1 it also configures a webhook sink
// pointing at a receiver inside this process, and reports the time from each
// build.finished being accepted to the build's first notification arriving, and
// checks every build's last outcome arrived, each delivery exactly once.
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
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "bench/buildkite_payloads.hpp"
#include "model/streak.hpp"
#include "model/time.hpp"
#include "model/topic.hpp"
#include "sources/treeherder.hpp"
#include "support/json_schema.hpp"
#include "tests/cdevents_fakes.hpp"
#include "tests/free_port.hpp"
#include "tests/taskcluster_fakes.hpp"
#include "tests/ws_client.hpp"

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
};

struct workload {
  std::vector<std::string> requests; ///< complete HTTP requests, shuffled
  std::size_t events = 0;            ///< events in all requests
  std::map<std::string, std::string> expected; ///< build path -> final state
  /// request holding build.finished events -> their build keys (pointers into `requests`)
  std::unordered_map<const std::string*, std::vector<std::string>> finish_of;
  /// After the storm: each build's requests in order (commands and messages), each
  /// answered 200, 202 or 409 (a command that does not apply to a settled build).
  std::vector<std::vector<std::string>> afterwards;
  /// build path -> the value of its statistic `duration`, when the storm sent one
  std::map<std::string, double> statistics;
};

/// One workload of several, each part's requests shuffled among the others'.
workload merge(std::vector<workload> parts, std::mt19937& rng) {
  std::vector<std::pair<std::string, std::vector<std::string>>> requests;
  workload out;
  for (auto& part : parts) {
    for (auto& r : part.requests) {
      auto f = part.finish_of.find(&r);
      requests.emplace_back(std::move(r), f == part.finish_of.end() ? std::vector<std::string>{}
                                                                    : std::move(f->second));
    }
    out.events += part.events;
    out.expected.merge(part.expected);
    out.statistics.merge(part.statistics);
    for (auto& a : part.afterwards)
      out.afterwards.push_back(std::move(a));
  }
  std::shuffle(requests.begin(), requests.end(), rng);
  out.requests.reserve(requests.size());
  for (auto& [r, keys] : requests)
    out.requests.push_back(std::move(r));
  for (std::size_t i = 0; i < requests.size(); ++i)
    if (!requests[i].second.empty())
      out.finish_of.emplace(&out.requests[i], std::move(requests[i].second));
  return out;
}

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

/// When each build.finished was accepted (202), by build key.
using ack_times = std::map<std::string, steady::time_point>;

/// Buildkite deliveries, one event per request.
workload generate_buildkite(const options& o) {
  std::mt19937 rng{o.seed};
  workload w;
  std::map<std::string, std::string> finished_key;
  for (int b = 1; b <= o.builds; ++b) {
    auto pipeline = "bench-" + std::to_string(b % 8);
    auto add = [&](const json& doc) {
      w.requests.push_back(payloads::http_request(doc["event"], doc.dump()));
    };
    bool failed = build_life(
      rng, o.jobs,
      [&](int step, int attempt, bool done, bool fails) {
        add(payloads::job_delivery(pipeline, b, step, attempt, done, fails));
      },
      [&](bool finished, bool failed) {
        if (!finished)
          return add(payloads::build_delivery("build.running", pipeline, b, "running"));
        add(payloads::build_delivery("build.finished", pipeline, b, failed ? "failed" : "passed"));
        finished_key[w.requests.back()] = "buildkite/" + pipeline + "/" + std::to_string(b);
      });
    w.expected["/api/v1/builds/buildkite/" + pipeline + "/" + std::to_string(b)] =
      failed ? "failed" : "passed";
  }
  // Deliver everything out of order: late jobs, build.finished first, and so on.
  std::shuffle(w.requests.begin(), w.requests.end(), rng);
  w.events = w.requests.size();
  for (auto& r : w.requests)
    if (auto f = finished_key.find(r); f != finished_key.end())
      w.finish_of[&r].push_back(f->second);
  return w;
}

/// Native events of the same storm, out of order, `o.batch` to a request.
workload generate_native(const options& o) {
  std::mt19937 rng{o.seed};
  workload w;
  std::vector<json> events;
  for (int b = 1; b <= o.builds; ++b) {
    auto pipeline = "bench-" + std::to_string(b % 8);
    json build = {{"pipeline", pipeline}, {"id", std::to_string(b)}, {"number", b},
                  {"branch", "main"}, {"commit", "8faa67ad6d0fda3ccf884c90acfd061d37e8558d"},
                  {"url", "https://ci.example.com/" + pipeline + "/" + std::to_string(b)}};
    bool failed = build_life(
      rng, o.jobs,
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
    if (o.mix) {
      // Shuffled with the rest: published before or after the build finished.
      events.push_back({{"type", "statistic"}, {"build", build},
                        {"statistic", {{"key", "duration"}, {"value", b * 1.5}}}});
      w.statistics[path] = b * 1.5;
    }
    if (!o.targets || b % 4 == 0)
      continue;
    // A waiting target: a failed job fails the build at once, whatever comes later.
    events.push_back({{"type", "job.finished"}, {"build", build},
                      {"job", {{"id", pipeline + "-" + std::to_string(b) + "-deploy"},
                               {"name", "deploy"}, {"state", "passed"},
                               {"waits_for_message", true}}}});
    auto message = [&](const std::string& type) {
      return json{{"type", type}, {"delivery", "m-" + std::to_string(b)}}.dump();
    };
    auto post = [&](const std::string& target, const std::string& body) {
      return payloads::bearer_post(path + target, body);
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
  std::vector<std::vector<std::string>> finished;
  for (std::size_t i = 0; i < events.size(); i += static_cast<std::size_t>(o.batch)) {
    std::string body;
    std::vector<std::string> keys;
    auto end = std::min(events.size(), i + static_cast<std::size_t>(o.batch));
    for (auto k = i; k < end; ++k) {
      body += events[k].dump();
      body += '\n';
      if (events[k]["type"] == "build.finished")
        keys.push_back("native/" + events[k]["build"]["pipeline"].get<std::string>() + "/"
                       + events[k]["build"]["id"].get<std::string>());
    }
    w.requests.push_back(payloads::native_request(body, o.batch > 1));
    finished.push_back(std::move(keys));
  }
  for (std::size_t i = 0; i < w.requests.size(); ++i)
    if (!finished[i].empty())
      w.finish_of.emplace(&w.requests[i], std::move(finished[i]));
  return w;
}

/// CDEvents of the same storm: a pipelineRun per build, a taskRun per job attempt
/// (a retried job is a second taskRun of its task), as CloudEvents in binary and
/// structured mode, one per request, shuffled: taskRuns often come before their
/// pipelineRun.
workload generate_cdevents(const options& o) {
  namespace fake = bt::test::cdevents;
  std::mt19937 rng{o.seed + 3};
  workload w;
  std::vector<std::pair<json, std::string>> events; // (CDEvent, finished build key)
  int id = 0;
  for (int b = 1; b <= o.builds; ++b) {
    auto pipeline = "bench-" + std::to_string(b % 8);
    auto run = "run-" + std::to_string(b);
    auto next_id = [&] { return "ce-" + std::to_string(++id); };
    auto time_of = [](int n) {
      return bt::model::format_time(bt::model::timestamp{std::chrono::seconds{1'800'000'000 + n}});
    };
    bool failed = build_life(
      rng, o.jobs,
      [&](int step, int attempt, bool done, bool fails) {
        auto task_run = run + "-" + std::to_string(step) + "-" + std::to_string(attempt);
        auto event = done ? fake::task_run("finished", "", task_run, "step " + std::to_string(step),
                                           run, fails ? "failure" : "success")
                          : fake::task_run("started", "", task_run, "step " + std::to_string(step), run);
        // A duplicate delivery repeats the CloudEvent id of the event before it.
        bool repeat = !events.empty() && events.back().first["subject"]["id"] == task_run
                      && events.back().first["context"]["type"] == event["context"]["type"];
        event["context"]["id"] = repeat ? events.back().first["context"]["id"].get<std::string>() : next_id();
        // The sender's clock: events of a build in the order they happened.
        event["context"]["timestamp"] = time_of(id);
        events.emplace_back(std::move(event), "");
      },
      [&](bool finished, bool failed) {
        auto event = finished ? fake::pipeline_run("finished", next_id(), run, pipeline,
                                                   failed ? "failure" : "success")
                              : fake::pipeline_run("started", next_id(), run, pipeline);
        events.emplace_back(std::move(event), finished ? "cdevents/" + pipeline + "/" + run : "");
      });
    w.expected["/api/v1/builds/cdevents/" + pipeline + "/" + run] = failed ? "failed" : "passed";
  }
  std::shuffle(events.begin(), events.end(), rng);
  w.events = events.size();
  std::vector<std::string> finished;
  for (auto& [event, key] : events) {
    auto r = rng() % 2 ? fake::binary(event) : fake::structured(event);
    w.requests.push_back(payloads::bearer_request("/webhooks/cdevents", r.headers, r.body));
    finished.push_back(key);
  }
  for (std::size_t i = 0; i < w.requests.size(); ++i)
    if (!finished[i].empty())
      w.finish_of[&w.requests[i]].push_back(finished[i]);
  return w;
}

/// One keep-alive connection sending its share of requests back to back.
class connection : public std::enable_shared_from_this<connection> {
public:
  connection(asio::io_context& ioc, std::vector<const std::string*> reqs,
             std::vector<double>& latencies, std::size_t& errors, const workload& w,
             ack_times& acks, bool commands = false)
    : stream_{ioc}, reqs_{std::move(reqs)}, latencies_{latencies}, errors_{errors}, w_{w},
      acks_{acks}, commands_{commands} {}

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
    auto status = parser_->get().result_int();
    if (status != 202 && !(commands_ && (status == 200 || status == 409)))
      ++errors_;
    else if (auto f = w_.finish_of.find(reqs_[i_]); f != w_.finish_of.end())
      for (auto& key : f->second)
        acks_.try_emplace(key, steady::now());
    ++i_;
    next();
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::response_parser<http::string_body>> parser_;
  std::vector<const std::string*> reqs_;
  std::vector<double>& latencies_;
  std::size_t& errors_;
  const workload& w_;
  ack_times& acks_;
  std::size_t i_ = 0;
  steady::time_point sent_;
  bool commands_ = false;
};

/// Sends each build's requests of `w.afterwards` in order, builds spread over
/// `connections`; returns the answers that were neither 200, 202 nor 409.
std::size_t afterwards(const workload& w, unsigned short port, int connections) {
  asio::io_context ioc{1};
  std::vector<double> latencies;
  std::size_t errors = 0;
  ack_times acks;
  std::vector<std::vector<const std::string*>> shares(static_cast<size_t>(connections));
  for (std::size_t i = 0; i < w.afterwards.size(); ++i)
    for (auto& r : w.afterwards[i])
      shares[i % shares.size()].push_back(&r);
  tcp::endpoint ep{asio::ip::make_address("127.0.0.1"), port};
  for (auto& share : shares)
    if (!share.empty())
      std::make_shared<connection>(ioc, std::move(share), latencies, errors, w, acks, true)
        ->start(ep);
  ioc.run();
  return errors;
}

struct run_result {
  double seconds = 0;
  std::size_t requests = 0;
  std::size_t events = 0;
  std::size_t errors = 0;
  double p50 = 0, p99 = 0, max = 0;
  double rate() const { return static_cast<double>(requests) / seconds; }
  double event_rate() const { return static_cast<double>(events) / seconds; }
};

run_result storm(const workload& w, unsigned short port, int connections, ack_times& acks) {
  asio::io_context ioc{1};
  std::vector<double> latencies;
  latencies.reserve(w.requests.size());
  std::size_t errors = 0;
  std::vector<std::vector<const std::string*>> shares(static_cast<size_t>(connections));
  for (std::size_t i = 0; i < w.requests.size(); ++i)
    shares[i % shares.size()].push_back(&w.requests[i]);
  tcp::endpoint ep{asio::ip::make_address("127.0.0.1"), port};
  for (auto& share : shares)
    std::make_shared<connection>(ioc, std::move(share), latencies, errors, w, acks)->start(ep);
  auto t0 = steady::now();
  ioc.run();
  run_result r;
  r.seconds = std::chrono::duration<double>(steady::now() - t0).count();
  r.requests = latencies.size();
  r.events = w.events;
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

long rss_kib(pid_t pid) {
  std::ifstream in{"/proc/" + std::to_string(pid) + "/status"};
  std::string line;
  while (std::getline(in, line))
    if (line.starts_with("VmRSS:"))
      return std::stol(line.substr(6));
  return 0;
}

/// The webhook receiver for --notify: records when each build's first notification
/// arrived, the newest revision it heard of, and deliveries heard twice.
class notification_receiver {
public:
  notification_receiver()
    : acceptor_{ioc_, {asio::ip::make_address("127.0.0.1"), 0}} {
    do_accept();
    thread_ = std::thread{[this] { ioc_.run(); }};
  }
  ~notification_receiver() {
    ioc_.stop();
    thread_.join();
  }
  unsigned short port() const { return acceptor_.local_endpoint().port(); }

  struct heard {
    steady::time_point first;
    std::uint64_t revision = 0;
  };
  std::map<std::string, heard> builds() {
    std::lock_guard guard{mutex_};
    return builds_;
  }
  std::size_t duplicates() {
    std::lock_guard guard{mutex_};
    return duplicates_;
  }
  std::size_t deliveries() {
    std::lock_guard guard{mutex_};
    return ids_.size();
  }

private:
  struct session {
    explicit session(tcp::socket s) : stream{std::move(s)} {}
    beast::tcp_stream stream;
    beast::flat_buffer buffer;
    http::request<http::string_body> req;
    http::response<http::string_body> res{http::status::ok, 11};
  };

  void do_accept() {
    acceptor_.async_accept([this](beast::error_code ec, tcp::socket socket) {
      if (!ec) {
        auto s = std::make_shared<session>(std::move(socket));
        http::async_read(s->stream, s->buffer, s->req,
                         [this, s](beast::error_code ec, std::size_t) { on_read(s, ec); });
      }
      do_accept();
    });
  }

  void on_read(const std::shared_ptr<session>& s, beast::error_code ec) {
    if (ec)
      return;
    auto now = steady::now();
    auto doc = json::parse(s->req.body(), nullptr, false);
    if (!doc.is_discarded()) {
      auto& b = doc["build"];
      auto key = b["source"].get<std::string>() + "/" + b["pipeline"].get<std::string>() + "/"
                 + b["id"].get<std::string>();
      std::lock_guard guard{mutex_};
      if (!ids_.insert(std::string{s->req["X-Buildtrack-Delivery"]}).second)
        ++duplicates_;
      auto [it, fresh] = builds_.try_emplace(key, heard{now, 0});
      it->second.revision = std::max(it->second.revision, doc["revision"].get<std::uint64_t>());
    }
    s->res.keep_alive(false);
    s->res.prepare_payload();
    http::async_write(s->stream, s->res, [s](beast::error_code, std::size_t) {
      beast::error_code ignored;
      s->stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    });
  }

  asio::io_context ioc_;
  tcp::acceptor acceptor_;
  std::thread thread_;
  std::mutex mutex_;
  std::map<std::string, heard> builds_;
  std::set<std::string> ids_;
  std::size_t duplicates_ = 0;
};

/// What a Taskcluster storm publishes: each job message's id and routing key, and
/// the task definitions the fake queue answers with.
struct treeherder_expectation {
  std::vector<std::pair<std::string, std::string>> jobs; ///< (id, routing key)
  std::map<std::string, json> definitions;               ///< by task id
};

/// The projects tasks are routed to: three on hg, one on GitHub.
const std::vector<std::string> projects{"mozilla-central", "autoland", "try", "mozilla-mobile/fenix"};

/// Taskcluster queue messages: `o.builds` task groups of `o.jobs` tasks, each task
/// living one of task_life()'s lives (passes, fails, retried, canceled, rerun),
/// routed to one of four projects; every message once, shuffled.
workload generate_taskcluster(const options& o, treeherder_expectation& x) {
  namespace tc = bt::test::taskcluster;
  namespace th = bt::sources::treeherder;
  std::mt19937 rng{o.seed};
  workload w;
  std::set<std::string> seen;
  th::settings mapping{"tc-treeherder", "http://queue"};
  long task = 0;
  for (int g = 0; g < o.builds; ++g)
    for (int t = 0; t < o.jobs; ++t, ++task) {
      auto id = tc::slug(task);
      auto& project = projects[static_cast<std::size_t>(task) % projects.size()];
      auto definition = x.definitions[id] =
        tc::task_definition("tc-treeherder.v2." + project + "." + tc::revision + "." + std::to_string(g));
      for (auto& m : tc::task_life(id, tc::slug(1'000'000 + g), static_cast<int>(rng() % 5))) {
        auto event = *th::event_of_exchange(m["exchange"].get<std::string>());
        for (auto& job : th::map_task_event(event, m["payload"], definition, {}, mapping).jobs)
          if (seen.insert(job.id).second)
            x.jobs.emplace_back(job.id, job.routing_key);
        w.requests.push_back(payloads::bearer_post("/webhooks/taskcluster", m.dump()));
      }
    }
  std::shuffle(w.requests.begin(), w.requests.end(), rng);
  w.events = w.requests.size();
  return w;
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
std::size_t check_subscribers(const std::vector<received>& subs, const treeherder_expectation& x,
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
      auto id = bt::test::taskcluster::job_id(frame["payload"]);
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

/// GETs `path` on a keep-alive connection: the status and the body parsed (discarded
/// when it is not JSON).
class reader {
public:
  explicit reader(unsigned short port) : stream_{ioc_} {
    stream_.connect(tcp::endpoint{asio::ip::make_address("127.0.0.1"), port});
  }
  std::pair<unsigned, json> get(const std::string& path) {
    http::request<http::empty_body> req{http::verb::get, path, 11};
    req.set(http::field::host, "127.0.0.1");
    http::write(stream_, req);
    beast::flat_buffer buf;
    http::response<http::string_body> res;
    http::read(stream_, buf, res);
    return {res.result_int(), json::parse(res.body(), nullptr, false)};
  }

private:
  asio::io_context ioc_;
  beast::tcp_stream stream_;
};

/// Reads every build back and compares its state (and its statistic, when the storm
/// sent one); returns the mismatches. Each build's revision goes into `revisions` (by
/// build key) when given.
std::size_t verify(const workload& w, unsigned short port,
                   std::map<std::string, std::uint64_t>* revisions = nullptr) {
  reader api{port};
  std::size_t wrong = 0;
  for (auto& [path, state] : w.expected) {
    auto [status, doc] = api.get(path);
    // Only passed and failed builds are announced (not canceled or aborted ones).
    if (revisions && !doc.is_discarded() && doc.contains("revision")
        && (doc["state"] == "passed" || doc["state"] == "failed"))
      (*revisions)[path.substr(std::string_view{"/api/v1/builds/"}.size())] =
        doc["revision"].get<std::uint64_t>();
    bool statistic_ok = true;
    if (auto s = w.statistics.find(path); s != w.statistics.end())
      statistic_ok = !doc.is_discarded() && doc["statistics"].value("duration", -1.0) == s->second;
    if (status != 200 || doc.is_discarded() || doc["state"] != state || !statistic_ok) {
      if (++wrong <= 5)
        std::cerr << "mismatch " << path << ": want " << state << ", got "
                  << (doc.is_discarded() ? std::to_string(status)
                                         : doc["state"].dump() + " " + doc["messages"].dump()
                                             + " " + doc["failed_jobs"].dump() + " statistics "
                                             + doc["statistics"].dump())
                  << '\n';
    }
  }
  return wrong;
}

/// Checks GET /api/v1/streaks against the streaks the expected final states make:
/// per source and pipeline on main (Buildkite and native builds; CDEvents name no
/// branch, Taskcluster groups never finish), ordered by build number, passed and
/// failed builds judged: the newest build, its state, how many were judged (up to
/// the streak's history limit), and a verdict that fits its state. Returns the mismatches; `streaks` counts those checked.
std::size_t verify_streaks(const workload& w, unsigned short port, std::size_t& streaks) {
  std::map<std::string, std::map<long, bool>> judged; // source/pipeline -> number -> failed
  for (auto& [path, state] : w.expected) {
    auto rest = path.substr(std::string_view{"/api/v1/builds/"}.size());
    auto source = rest.substr(0, rest.find('/'));
    if ((source != "buildkite" && source != "native") || (state != "passed" && state != "failed"))
      continue;
    auto slash = rest.rfind('/');
    judged[rest.substr(0, slash)][std::stol(rest.substr(slash + 1))] = state == "failed";
  }
  auto [status, doc] = reader{port}.get("/api/v1/streaks");
  std::map<std::string, json> got;
  if (status == 200 && doc.is_array())
    for (auto& s : doc)
      if (s["branch"] == "main")
        got[s["source"].get<std::string>() + "/" + s["pipeline"].get<std::string>()] = s;
  std::size_t wrong = 0;
  for (auto& [key, builds] : judged) {
    // The newest build's verdict and failure count were decided when it finished: an
    // older build that changed its outcome later does not change them (SPEC §4), so
    // they are checked against what they may be, not recomputed.
    auto last = builds.rbegin();
    long failed = 0;
    for (auto& [_, f] : builds)
      failed += f;
    // A streak keeps its newest builds only.
    auto kept = std::min(builds.size(), bt::model::streak_book{}.history_limit());
    json want{{"last_build", last->first}, {"state", last->second ? "failing" : "passing"},
              {"builds", kept}};
    json have;
    auto g = got.find(key);
    if (g != got.end())
      for (auto& [field, _] : want.items())
        have[field] = g->second[field];
    bool consistent = false;
    if (g != got.end()) {
      auto verdict = g->second["verdict"].get<std::string>();
      auto failures = g->second["failures"].get<long>();
      consistent = last->second ? (verdict == "broken" && failures == 1)
                                    || (verdict == "still_failing" && failures > 1 && failures <= failed)
                                : (verdict == "passed" || verdict == "fixed") && failures == 0;
    }
    if ((have != want || !consistent) && ++wrong <= 5)
      std::cerr << "streak " << key << ": want " << want.dump() << ", got "
                << (g == got.end() ? std::string{"none"} : g->second.dump()) << '\n';
  }
  streaks = judged.size();
  return wrong;
}

void print(const char* name, const run_result& r) {
  std::printf("%-12s %9zu req %8.2f s %10.0f req/s %10.0f events/s  p50 %6.2f ms  p99 %6.2f ms  "
              "max %7.2f ms  non-202 %zu\n",
              name, r.requests, r.seconds, r.rate(), r.event_rate(), r.p50 * 1e3, r.p99 * 1e3,
              r.max * 1e3, r.errors);
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
    else if (k == "--notify") o.notify = v == "1" || v == "yes";
    else if (k == "--notify-concurrency") o.notify_concurrency = std::stoi(v);
    else if (k == "--source") o.source = v;
    else if (k == "--subscribers") o.subscribers = std::stoi(v);
    else if (k == "--batch") o.batch = std::stoi(v);
    else if (k == "--targets") o.targets = v == "1" || v == "yes";
    else if (k == "--mix") o.mix = v == "1" || v == "yes";
    else {
      std::cerr << "unknown option " << k << '\n';
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
  treeherder_expectation treeherder;
  workload w;
  if (o.mix) {
    // Each source's storm, shuffled into one; native with waiting targets and
    // statistics. Every source has `builds` builds.
    auto native = o;
    native.targets = true;
    std::vector<workload> parts;
    parts.push_back(generate_buildkite(o));
    parts.push_back(generate_native(native));
    parts.push_back(generate_taskcluster(o, treeherder));
    parts.push_back(generate_cdevents(o));
    std::printf("storm: every source, %d builds x %d jobs each: buildkite %zu, native %zu, "
                "taskcluster %zu (%zu job messages), cdevents %zu requests\n",
                o.builds, o.jobs, parts[0].requests.size(), parts[1].requests.size(),
                parts[2].requests.size(), treeherder.jobs.size(), parts[3].requests.size());
    std::mt19937 rng{o.seed};
    w = merge(std::move(parts), rng);
  } else if (o.source == "taskcluster") {
    w = generate_taskcluster(o, treeherder);
  } else {
    w = o.source == "native" ? generate_native(o)
        : o.source == "cdevents" ? generate_cdevents(o) : generate_buildkite(o);
  }
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
  std::optional<bt::test::taskcluster::fake_queue> queue;
  if (taskcluster) {
    queue.emplace();
    queue->tasks = treeherder.definitions;
  }

  // The floor first: a bare Beast server doing no work.
  auto bare_port = bt::test::free_port();
  auto bare = spawn({o.bare, std::to_string(bare_port), std::to_string(o.io_threads)});
  await_ready(bare_port);
  ack_times ignored_acks;
  auto floor = storm(w, bare_port, o.connections, ignored_acks);
  stop(bare);

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

  std::optional<notification_receiver> receiver;
  if (o.notify)
    receiver.emplace();
  auto port = bt::test::free_port();
  auto config_path = "/tmp/buildtrack-storm-" + std::to_string(getpid()) + ".yaml";
  {
    std::ofstream cfg{config_path};
    cfg << "server:\n  listen: 127.0.0.1:" << port << "\n  io_threads: " << o.io_threads
        << "\nstore:\n  kind: " << o.store << "\n  redis:\n    url: redis://127.0.0.1:"
        << redis_port << "/0\n  snapshot_interval: " << o.snapshot_interval
        << "\n  snapshot_max_builds: " << o.snapshot_max_builds
        << "\nsources:\n  buildkite:\n    token: " << token << "\n  native:\n    token: " << token
        << "\n  cdevents:\n    token: " << token
        << "\n  taskcluster:\n    token: " << token << "\n    root_url: "
        << (queue ? queue->root_url() : "https://tc.example.com")
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
  auto daemon = spawn({o.daemon, "--config", config_path});
  await_daemon(port, std::chrono::seconds{30});
  auto rss_before = rss_kib(daemon);
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
    std::string target = bt::test::taskcluster::subscribe_path + "?since=0";
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
  ack_times acks;
  auto storm_started = std::chrono::system_clock::now();
  auto result = storm(w, port, o.connections, acks);
  for (auto& r : readers)
    r.join();
  if (!w.afterwards.empty()) {
    auto refused = afterwards(w, port, o.connections);
    std::printf("targets: %zu builds got commands and messages after the storm; %zu answers "
                "other than 200, 202 or 409\n",
                w.afterwards.size(), refused);
    result.errors += refused;
  }
  std::map<std::string, std::uint64_t> revisions;
  auto mismatches = verify(w, port, &revisions);
  std::size_t streak_count = 0;
  auto streak_mismatches = verify_streaks(w, port, streak_count);
  auto rss_after = rss_kib(daemon);
  std::size_t notify_missing = 0;
  std::vector<double> notify_latency;
  double drain_seconds = 0;
  if (receiver) {
    // Every build's last outcome must arrive; wait for the outbox to drain.
    auto t0 = steady::now();
    auto missing = [&] {
      auto heard = receiver->builds();
      std::size_t n = 0;
      for (auto& [key, revision] : revisions)
        if (auto h = heard.find(key); h == heard.end() || h->second.revision != revision)
          ++n;
      return n;
    };
    while ((notify_missing = missing()) > 0 && steady::now() - t0 < std::chrono::minutes{2})
      std::this_thread::sleep_for(std::chrono::milliseconds{20});
    drain_seconds = std::chrono::duration<double>(steady::now() - t0).count();
    for (auto& [key, h] : receiver->builds())
      if (auto a = acks.find(key); a != acks.end())
        notify_latency.push_back(std::chrono::duration<double>(h.first - a->second).count());
    std::sort(notify_latency.begin(), notify_latency.end());
  }
  stop(daemon);

  print("bare-beast", floor);
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
  std::printf("store %s%s  ratio to bare: %.1f%%   RSS: %ld -> %ld KiB, %.2f KiB per tracked "
              "build (%d builds, %d jobs each)\n",
              o.store.c_str(), o.store == "redis" ? (" (appendfsync " + o.redis_fsync + ")").c_str() : "",
              100.0 * result.rate() / floor.rate(), rss_before, rss_after,
              static_cast<double>(rss_after - rss_before) / tracked, tracked, o.jobs);
  std::printf("verify: %zu of %zu builds with the expected final state\n",
              w.expected.size() - mismatches, w.expected.size());
  std::printf("verify: %zu of %zu streaks as the final states make them\n",
              streak_count - streak_mismatches, streak_count);
  mismatches += streak_mismatches;
  if (receiver) {
    auto pct = [&](double q) {
      if (notify_latency.empty())
        return 0.0;
      return notify_latency[std::min(notify_latency.size() - 1,
                                     static_cast<std::size_t>(q * static_cast<double>(notify_latency.size())))];
    };
    std::printf("notify: build.finished accepted -> first notification received, %zu builds: "
                "p50 %.1f ms  p99 %.1f ms  max %.1f ms (webhook sink, concurrency %d)\n",
                notify_latency.size(), pct(0.5) * 1e3, pct(0.99) * 1e3,
                notify_latency.empty() ? 0.0 : notify_latency.back() * 1e3, o.notify_concurrency);
    std::printf("notify: %zu deliveries, %zu heard twice; %zu builds without their final "
                "outcome after %.1f s of draining\n",
                receiver->deliveries(), receiver->duplicates(), notify_missing, drain_seconds);
    mismatches += notify_missing + receiver->duplicates();
  }

  if (o.restart) {
    // Ready to serve = /readyz answers 200: buildtrackd listens at once and answers
    // 503 until it has recovered.
    auto t0 = steady::now();
    daemon = spawn({o.daemon, "--config", config_path});
    await_daemon(port, std::chrono::minutes{5});
    auto ready = std::chrono::duration<double>(steady::now() - t0).count();
    std::size_t streaks_after_restart = 0;
    auto after_restart = verify(w, port) + verify_streaks(w, port, streaks_after_restart);
    if (receiver) {
      // What was delivered before must not be sent again by the restarted daemon.
      auto before = receiver->deliveries() + receiver->duplicates();
      std::this_thread::sleep_for(std::chrono::seconds{1});
      auto resent = receiver->deliveries() + receiver->duplicates() - before;
      std::printf("notify: %zu deliveries in the second after the restart\n", resent);
      after_restart += resent;
    }
    stop(daemon);
    std::printf("restart: ready to serve %d tracked builds in %.2f s; verify after restart: "
                "%zu of %zu\n",
                tracked, ready, w.expected.size() - after_restart, w.expected.size());
    mismatches += after_restart;
  }
  std::remove(config_path.c_str());
  if (redis > 0) {
    stop(redis);
    std::filesystem::remove_all(redis_dir);
  }
  return mismatches == 0 && result.errors == 0 ? 0 : 1;
}
