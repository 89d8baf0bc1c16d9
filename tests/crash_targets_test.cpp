// Real processes: buildtrackd on a real redis-server, killed with SIGKILL at random
// during a storm of waiting targets, early messages, commands and wait timeouts.
// Every message and command that got its answer must be applied exactly once after
// the restarts, and deadlines pending at a kill must still go off.
#include <atomic>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "model/build.hpp"
#include "model/json.hpp"
#include "sources/native.hpp"
#include "tests/daemon_process.hpp"
#include "tests/eventually.hpp"
#include "tests/http_client.hpp"
#include "tests/lane_storm.hpp"
#include "tests/redis_server.hpp"

using namespace bt;
using namespace std::chrono_literals;
using bt::test::eventually;
using nlohmann::json;
namespace http = boost::beast::http;

namespace {

const std::string token = "crash-native-token-0123456789";

/// One request of the storm, and the answers that mean it was taken.
struct request {
  std::string target; ///< the URL path
  std::string body;
  enum kind_t { event, message, command } kind = event;
  model::build_key key;
  std::string name; ///< the message's target
};

json build_of(const std::string& pipeline, int b, const std::string& branch) {
  return {{"pipeline", pipeline}, {"id", std::to_string(b)}, {"number", b}, {"branch", branch}};
}

/// A pipeline's builds one after another, each in one of five plots: a message before
/// its target waits; work then fail after the build's end; pause, pass, resume; a wait
/// that times out (on an untracked branch: its verdict comes when the timer does);
/// abort, then a pass that must change nothing.
std::vector<request> lane(const std::string& pipeline, int builds) {
  std::vector<request> out;
  for (int b = 1; b <= builds; ++b) {
    int plot = b % 5;
    auto branch = plot == 3 ? "release" : "main";
    model::build_key key{"native", pipeline, std::to_string(b)};
    auto base = "/api/v1/builds/native/" + pipeline + "/" + std::to_string(b);
    auto event = [&](const std::string& type, json job = nullptr) {
      json e = {{"type", type}, {"build", build_of(pipeline, b, branch)}};
      if (!job.is_null())
        e["job"] = std::move(job);
      out.push_back({"/api/v1/events", e.dump(), request::event, key, ""});
    };
    // Retried messages carry a delivery id, so that one journaled before a kill and
    // sent again is a duplicate.
    int n = 0;
    auto message = [&](const std::string& target, json body) {
      body["delivery"] = pipeline + "-" + std::to_string(b) + "-m" + std::to_string(++n);
      out.push_back({base + "/targets/" + target + "/messages", body.dump(), request::message,
                     key, target});
    };
    auto command = [&](const std::string& type) {
      out.push_back({base + "/commands", json{{"type", type}}.dump(), request::command, key, ""});
    };
    auto waits = [&](const std::string& name, json extra = json::object()) {
      json job = {{"id", name + "-" + std::to_string(b)}, {"name", name}, {"state", "passed"},
                  {"waits_for_message", true}};
      job.update(extra);
      event("job.finished", job);
    };
    event("build.started");
    switch (plot) {
      case 0:
        message("deploy", {{"type", "pass"}});
        waits("deploy");
        event("job.finished", {{"id", "unit-" + std::to_string(b)}, {"name", "unit"},
                               {"state", "passed"}});
        event("build.finished");
        break;
      case 1:
        waits("tests");
        event("build.finished");
        message("tests", {{"type", "work"}, {"unit", {{{"name", "a"}, {"result", "pass"}}}}});
        message("tests", {{"type", "fail"}, {"unit", {{{"name", "b"}, {"result", "fail"}}}}});
        break;
      case 2:
        waits("deploy");
        command("pause");
        message("deploy", {{"type", "pass"}});
        event("build.finished");
        command("resume");
        break;
      case 3:
        waits("deploy", {{"wait_timeout", 0.25}});
        event("build.finished");
        break;
      case 4:
        waits("deploy");
        command("abort");
        message("deploy", {{"type", "pass"}});
        break;
    }
  }
  return out;
}

std::string daemon_config(unsigned short redis_port, unsigned short port) {
  std::ostringstream cfg;
  cfg << "server:\n  listen: 127.0.0.1:" << port
      << "\nstore:\n  kind: redis\n  redis:\n    url: redis://127.0.0.1:" << redis_port
      << "/0\n  snapshot_interval: 30ms\n  snapshot_max_builds: 40\n  snapshot_delay: 0ms\nsources:\n  native:\n    token: "
      << token << "\ntracking:\n  actor_idle_timeout: 40ms\nlog:\n  level: error\n";
  return cfg.str();
}

/// The requests, each sent until it was taken: 202 for events and messages; 200, or
/// 409 for a command a journaled copy already applied.
struct storm : test::lane_storm<request> {
  void run(unsigned short port) {
    send(
      port,
      [](test::http_client& c, const request& r) {
        return c.send(http::verb::post, r.target, r.body,
                      {{"Authorization", "Bearer " + token}, {"Content-Type", "application/json"}})
          .status;
      },
      [](const request& r, unsigned status) {
        return r.kind == request::command ? status == 200 || status == 409 : status == 202;
      });
  }
};

/// What the model says: every request taken, applied in order, then every deadline
/// passed; verdicts as the streak tracker gives them.
std::map<std::string, model::build> expected(const storm& s) {
  std::map<std::string, model::build> builds;
  model::streak_book streaks;
  model::timestamp now{std::chrono::milliseconds{1'700'000'000'000LL}};
  auto apply = [&](const model::envelope& e, model::timestamp at) {
    auto& b = builds[e.key.str()];
    for (auto& effect : model::apply(b, e, at).effects)
      if (auto* f = std::get_if<model::finished_effect>(&effect);
          f && f->branch == "main"
          && (f->state == model::build_state::passed || f->state == model::build_state::failed)) {
        auto verdict = streaks.record({f->key.source, f->key.pipeline, f->branch}, f->number,
                                      f->state == model::build_state::failed);
        verdict.revision = f->revision;
        model::apply(b, {f->key, "", at, std::nullopt, verdict}, at);
      }
  };
  for (auto& lane : s.taken)
    for (auto* r : lane) {
      now += 1ms;
      sources::checked<std::vector<model::envelope>> parsed = std::vector<model::envelope>{};
      if (r->kind == request::event)
        parsed = sources::native_parse("application/json", r->body, now);
      else if (r->kind == request::message)
        parsed = std::vector{std::get<model::envelope>(
          sources::native_message(r->key, r->name, "application/json", r->body, now))};
      else
        parsed = std::vector{
          std::get<model::envelope>(sources::native_command(r->key, "application/json", r->body, now))};
      for (auto& e : std::get<std::vector<model::envelope>>(parsed))
        apply(e, now);
    }
  auto later = now + std::chrono::hours{1};
  for (auto& [name, b] : builds)
    if (model::next_deadline(b))
      apply({b.key, "", later, std::nullopt, model::deadline_passed{"targets"}}, later);
  return builds;
}

/// A document without what depends on when things arrived.
json comparable(json doc) {
  if (doc.is_object()) {
    for (auto key : {"updated_at", "created_at", "started_at", "finished_at", "received_at",
                     "waiting_since", "deadline"})
      doc.erase(key);
    for (auto& [_, v] : doc.items())
      v = comparable(v);
  } else if (doc.is_array()) {
    for (auto& v : doc)
      v = comparable(v);
  }
  return doc;
}

} // namespace

TEST(crash, kill_9_during_waiting_targets_messages_and_commands_loses_nothing_answered) {
  test::redis_server redis{true};
  auto port = test::redis_server::free_port();
  test::daemon_process daemon{port, daemon_config(redis.port(), port)};
  daemon.start();
  storm s;
  for (int p = 0; p < 8; ++p)
    s.lanes.push_back(lane("targets-" + std::to_string(p), 150));
  std::thread sender([&] { s.run(daemon.port()); });
  // Killed at points of progress, not after sleeps: on a fast machine the whole storm
  // takes less than a second. Where in a request each kill lands is up to chance.
  std::mt19937 rng{23};
  std::uniform_real_distribution<double> jitter{0, 0.08};
  int kills = 0;
  for (double at : {0.1, 0.3, 0.5, 0.7, 0.85}) {
    auto mark = static_cast<std::size_t>((at + jitter(rng)) * static_cast<double>(s.total()));
    if (!eventually([&] { return s.acknowledged >= mark; }, 60s))
      break;
    daemon.kill9();
    ++kills;
    daemon.start();
  }
  sender.join();
  // Killed again at once: the last builds' deadlines are pending in what Redis holds.
  daemon.kill9();
  daemon.start();
  std::printf("%d kills\n", kills);
  EXPECT_GE(kills, 3) << "the storm ended before the daemon was killed a few times";
  EXPECT_EQ(s.unexpected, 0);
  auto want = expected(s);
  test::http_client c{daemon.port()};
  auto document = [&](const std::string& key) {
    auto r = c.send(http::verb::get, "/api/v1/builds/" + key);
    return r.status == 200 ? comparable(json::parse(r.body)) : json{};
  };
  // Pending deadlines go off after the restart: every timed wait ends.
  for (auto& [key, b] : want) {
    if (b.info.branch == "release") {
      EXPECT_TRUE(eventually([&] { return document(key)["state"] == "failed"; }, 10s)) << key;
    }
  }
  std::size_t wrong = 0;
  for (auto& [key, b] : want) {
    auto got = document(key);
    auto expect = comparable(model::to_json(b));
    if (got != expect && ++wrong <= 3)
      ADD_FAILURE() << key << "\n got:  " << got.dump() << "\n want: " << expect.dump();
  }
  EXPECT_EQ(wrong, 0u) << "of " << want.size() << " builds";
}
