// POST /webhooks/taskcluster end to end (SPEC §3.2): the whole service on a real
// redis-server behind the real Beast server, a local fake of the Taskcluster queue
// (task definitions, artifact listings) and a real WebSocket subscriber reading the
// Treeherder job messages off the exchange.
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <set>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "sources/treeherder.hpp"
#include "support/json_schema.hpp"
#include "tests/api_fixture.hpp"
#include "tests/eventually.hpp"
#include "tests/fixtures.hpp"
#include "tests/redis_server.hpp"
#include "tests/schemas.hpp"
#include "tests/taskcluster_fakes.hpp"
#include "tests/ws_client.hpp"

using namespace bt;
using nlohmann::json;
using namespace std::chrono_literals;
namespace th = bt::sources::treeherder;

namespace {

const std::string token = "tc-secret";
const std::string jobs_path = test::taskcluster::subscribe_path;
using test::taskcluster::revision;
using test::taskcluster::slug;
using test::taskcluster::task_definition;

using test::schema;

/// A fixture's message with its task id (and group) replaced: a task of its own.
json message(const std::string& fixture, const std::string& task_id = "") {
  auto m = json::parse(test::fixture("taskcluster/" + fixture + ".json"));
  if (!task_id.empty())
    m["payload"]["status"]["taskId"] = task_id;
  return m;
}

/// The task id of a message.
std::string task_of(const json& m) {
  return m["payload"]["status"]["taskId"].get<std::string>();
}

struct taskcluster_api : test::api_fixture {
  test::redis_server redis;
  test::taskcluster::fake_queue queue;

  taskcluster_api()
    : api_fixture{[] {
        config::config c;
        c.taskcluster.token = token;
        c.exchanges.subscriber_queue = 256;
        return c;
      }()} {
    cfg.taskcluster.root_url = queue.root_url();
  }
  void SetUp() override {
    store = redis_store_on(redis);
    api_fixture::SetUp();
  }

  test::http_client::reply post(const json& m, const std::string& auth = "Bearer " + token) {
    return client().post("/webhooks/taskcluster", m.dump(),
                         {{"Authorization", auth}, {"Content-Type", "application/json"}});
  }

  void define(const std::string& task_id, json definition = task_definition()) {
    queue.define(task_id, std::move(definition));
  }

  /// What the mapping gives for message `m` of a task defined as `definition`, with
  /// the fake queue's one artifact for the runs it lists.
  th::mapping expected(const json& m, const json& definition, bool listed = true) {
    auto e = th::event_of_exchange(m["exchange"].get<std::string>());
    std::map<std::int64_t, std::vector<std::string>> artifacts;
    if (listed)
      for (auto run : th::runs_to_list(*e, m["payload"]))
        artifacts[run] = {"public/logs/live_backing.log"};
    th::settings s{"tc-treeherder", cfg.taskcluster.root_url, &schema("task-treeherder-config.schema.yml"),
                   &schema("pulse-job.schema.yml")};
    return th::map_task_event(*e, m["payload"], definition, artifacts, s);
  }

  /// Reads frames until `n` messages came (or none for a while).
  static std::vector<json> read(test::ws_client& c, std::size_t n) {
    std::vector<json> out;
    while (out.size() < n)
      if (auto frame = c.read(10s))
        out.push_back(json::parse(*frame));
      else
        break;
    return out;
  }

  /// Waits until the publisher is done with `n` events in all: nothing more of theirs
  /// can come after.
  bool settled(long long n) {
    return test::eventually([&] {
      return metric(R"(buildtrack_treeherder_events_total{result="published"})")
               + metric(R"(buildtrack_treeherder_events_total{result="skipped"})")
               + metric(R"(buildtrack_treeherder_events_total{result="duplicate"})")
             == n;
    });
  }
  long long published() {
    return metric(R"(buildtrack_exchange_published_total{exchange="exchange/taskcluster-treeherder/v1/jobs"})");
  }

  long long metric(const std::string& series) {
    auto text = client().get("/metrics").body;
    auto at = text.find("\n" + series + " ");
    return at == std::string::npos ? 0 : std::stoll(text.substr(at + series.size() + 2));
  }
};

} // namespace

// Each fixture event kind becomes the job message the reference mapping gives (the
// mapping's own tests hold it to the reference field by field), schema-valid, with
// task-defined acknowledged and ignored and the exception run the queue made only to
// record a deadline skipped. The task definition comes from the message when it has
// one, else from the queue, once per task.
TEST_F(taskcluster_api, each_event_kind_is_published_as_the_mapping_gives_it) {
  test::ws_client sub{port, jobs_path + "?bind=%23"};
  ASSERT_TRUE(sub.open()) << sub.status << " " << sub.body;
  std::vector<std::string> kinds{"task-pending", "task-running", "task-completed", "task-failed",
                                 "task-exception-canceled", "task-exception-deadline"};
  std::vector<json> want;
  auto publish = [&](const json& m, const json& definition) {
    for (auto& job : expected(m, definition).jobs)
      want.push_back(job.payload);
    auto r = post(m);
    EXPECT_EQ(r.status, 202) << m["exchange"] << ": " << r.body;
  };
  for (auto& kind : kinds) {
    auto m = message(kind);
    define(task_of(m), task_definition());
    publish(m, task_definition());
  }
  // A forwarder that puts the whole definition into the message spares the read.
  auto whole = message("task-running", slug(1));
  whole["payload"]["task"] = task_definition("tc-treeherder.v2.mozilla-central." + revision + ".7");
  publish(whole, whole["payload"]["task"]);
  auto defined = post(message("task-defined"));
  EXPECT_EQ(defined.status, 200) << defined.body;
  EXPECT_EQ(json::parse(defined.body)["status"], "ignored");
  ASSERT_EQ(want.size(), 6u) << "the deadline's exception run is skipped";
  auto got = read(sub, want.size());
  ASSERT_EQ(got.size(), want.size());
  std::multiset<std::string> want_docs, got_docs;
  for (auto& w : want)
    want_docs.insert(w.dump());
  for (auto& g : got) {
    EXPECT_EQ(g["exchange"], "exchange/taskcluster-treeherder/v1/jobs");
    EXPECT_EQ(g["routingKey"], "tc-treeherder.mozilla-central._");
    EXPECT_TRUE(schema("pulse-job.schema.yml").accepts(g["payload"])) << g.dump(2);
    got_docs.insert(g["payload"].dump());
  }
  EXPECT_EQ(got_docs, want_docs);
  // Events of different tasks may be published in any order; each came once, and
  // once all 7 are done with, nothing more is on the way.
  ASSERT_TRUE(settled(7));
  EXPECT_EQ(published(), 6);
  EXPECT_EQ(metric(R"(buildtrack_treeherder_skipped_total{reason="exception_run"})"), 1);
  // Real messages carry only the task's tags: each task was read once. The one with
  // its definition in the message never was.
  for (auto& kind : kinds)
    EXPECT_EQ(queue.reads_of(task_of(message(kind))), 1u) << kind;
  EXPECT_EQ(queue.reads_of(slug(1)), 0u);
  // The build side: the task group is a build, the run an attempt.
  auto pending = message("task-pending");
  auto group = pending["payload"]["status"]["taskGroupId"].get<std::string>();
  auto build = client().get("/api/v1/builds/taskcluster/gecko-level-3/" + group);
  EXPECT_EQ(build.status, 200) << build.body;
}

// One task's runs: its definition is read once (the cache), its events are published
// in the order they came, and a run that retries is reported for both queue eras
// with the same id, once.
TEST_F(taskcluster_api, a_tasks_runs_read_its_definition_once_and_keep_their_order) {
  auto id = slug(1);
  define(id);
  test::ws_client sub{port, jobs_path + "?bind=%23"};
  ASSERT_TRUE(sub.open());
  auto run0 = message("task-pending", id);
  auto running = message("task-running", id);
  auto completed = message("task-completed", id);
  for (auto* m : {&run0, &running, &completed})
    ASSERT_EQ(post(*m).status, 202);
  auto got = read(sub, 3);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0]["payload"]["state"], "pending");
  EXPECT_EQ(got[1]["payload"]["state"], "running");
  EXPECT_EQ(got[2]["payload"]["state"], "completed");
  EXPECT_EQ(queue.reads_of(id), 1u);
  // The same message again is the same job message: the exchange keeps it once.
  ASSERT_EQ(post(completed).status, 202);
  ASSERT_TRUE(settled(4));
  EXPECT_EQ(published(), 3);
  EXPECT_GE(metric(R"(buildtrack_taskcluster_task_cache_total{result="hit"})")
              + metric(R"(buildtrack_taskcluster_task_cache_total{result="miss"})"), 1);
}

// Inputs that are not for Treeherder, or that it would refuse, are acknowledged and
// counted by reason; nothing of theirs is published, and what follows them is.
TEST_F(taskcluster_api, bad_routes_configs_and_job_messages_are_acknowledged_and_counted) {
  struct bad {
    std::string reason;
    json definition;
  };
  std::vector<bad> cases{
    {"missing_route", task_definition("index.gecko.v2.latest")},
    {"v1_route", task_definition("tc-treeherder.mozilla-central." + revision)},
    {"malformed_route", task_definition("tc-treeherder.v2.." + revision)},
    {"missing_config", task_definition("tc-treeherder.v2.mozilla-central." + revision, nullptr)},
    {"invalid_config", task_definition("tc-treeherder.v2.mozilla-central." + revision,
                                       {{"symbol", "x"}, {"tier", "first"}})},
    // A revision that is not 40 hex digits passes the route but fails pulse-job.
    {"invalid_job", task_definition("tc-treeherder.v2.mozilla-central.abc")},
  };
  test::ws_client sub{port, jobs_path + "?bind=%23"};
  ASSERT_TRUE(sub.open());
  int n = 0;
  for (auto& c : cases) {
    auto m = message("task-running", slug(++n));
    define(task_of(m), c.definition);
    EXPECT_EQ(post(m).status, 202) << c.reason;
  }
  auto ambiguous = task_definition();
  ambiguous["routes"].push_back("tc-treeherder.v2.try." + revision);
  auto m = message("task-running", slug(++n));
  define(task_of(m), ambiguous);
  EXPECT_EQ(post(m).status, 202);
  cases.push_back({"ambiguous_route", {}});
  // A message whose own routes name no Treeherder route is never looked up.
  auto unrouted = message("task-running", slug(++n));
  unrouted["routes"] = {"index.project.latest"};
  EXPECT_EQ(post(unrouted).status, 202);
  // And one that is fine, after them all.
  auto good = message("task-running", slug(++n));
  define(task_of(good), task_definition());
  ASSERT_EQ(post(good).status, 202);
  auto got = read(sub, 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0]["payload"]["taskId"].get<std::string>().substr(0, 8),
            th::slug_to_uuid(task_of(good))->substr(0, 8));
  std::map<std::string, long long> want;
  for (auto& c : cases)
    ++want[c.reason];
  ++want["missing_route"];
  EXPECT_TRUE(test::eventually([&] {
    for (auto& [reason, count] : want)
      if (metric("buildtrack_treeherder_skipped_total{reason=\"" + reason + "\"}") != count)
        return false;
    return true;
  })) << client().get("/metrics").body;
  EXPECT_EQ(queue.reads_of(task_of(unrouted)), 0u);
  ASSERT_TRUE(settled(static_cast<long long>(cases.size()) + 2));
  EXPECT_EQ(published(), 1);
}

// The queue fails: a task's definition is read again until it comes (the event is
// not lost), and a failed artifact listing leaves the links out.
TEST_F(taskcluster_api, queue_failures_are_retried_and_a_failed_listing_leaves_links_out) {
  auto id = slug(7);
  define(id);
  {
    std::lock_guard guard{queue.mutex};
    queue.failing[id] = 2;
  }
  queue.listings_fail = true;
  test::ws_client sub{port, jobs_path + "?bind=%23"};
  ASSERT_TRUE(sub.open());
  auto m = message("task-completed", id);
  ASSERT_EQ(post(m).status, 202);
  auto got = read(sub, 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(queue.reads_of(id), 3u) << "two failures, then the definition";
  auto want = expected(m, task_definition(), /*listed=*/false);
  ASSERT_EQ(want.jobs.size(), 1u);
  EXPECT_EQ(got[0]["payload"], want.jobs[0].payload);
  EXPECT_EQ(got[0]["payload"]["jobInfo"]["links"], json::array()) << got[0].dump(2);
  EXPECT_EQ(metric(R"(buildtrack_taskcluster_queue_reads_total{kind="task",result="failed"})"), 2);
  EXPECT_EQ(metric(R"(buildtrack_taskcluster_queue_reads_total{kind="artifacts",result="failed"})"), 1);
}

// Credentials before anything else; a message that is not a queue task message is
// refused naming the field.
TEST_F(taskcluster_api, credentials_first_then_the_message_is_checked) {
  auto m = message("task-running");
  EXPECT_EQ(post(m, "Bearer wrong").status, 401);
  EXPECT_EQ(post(m, "").status, 401);
  m["payload"].erase("runId");
  auto r = post(m);
  EXPECT_EQ(r.status, 422) << r.body;
  EXPECT_EQ(json::parse(r.body)["error"]["field"], "payload.runId") << r.body;
  EXPECT_EQ(post(json{{"exchange", "exchange/other/v1/x"}}).status, 422);
}

// A retried run in the queue's 2024 era: the exception for run 0 says it was retried,
// and the pending of run 1 that follows (all the queue sent before 2024) makes that
// same message again, which the exchange takes once.
TEST_F(taskcluster_api, a_retry_is_reported_once_whichever_queue_era_tells_it) {
  auto id = slug(9);
  define(id);
  auto pending = message("task-pending", id);
  auto& runs = pending["payload"]["status"]["runs"];
  runs[0]["state"] = "exception";
  runs[0]["reasonResolved"] = "worker-shutdown";
  runs[0]["started"] = "2019-06-26T19:23:49.524Z";
  runs[0]["resolved"] = "2019-06-26T19:30:04.986Z";
  runs.push_back({{"runId", 1}, {"state", "pending"}, {"reasonCreated", "retry"},
                  {"scheduled", "2019-06-26T19:30:05.000Z"}});
  pending["payload"]["runId"] = 1;
  auto exception = pending;
  exception["exchange"] = "exchange/taskcluster-queue/v1/task-exception";
  exception["payload"]["runId"] = 0;
  test::ws_client sub{port, jobs_path + "?bind=%23"};
  ASSERT_TRUE(sub.open());
  ASSERT_EQ(post(exception).status, 202);
  ASSERT_EQ(post(pending).status, 202);
  auto got = read(sub, 2);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0]["payload"]["taskId"], *th::slug_to_uuid(id) + "/0");
  EXPECT_TRUE(got[0]["payload"]["isRetried"]);
  EXPECT_EQ(got[0]["payload"]["result"], "exception");
  EXPECT_EQ(got[1]["payload"]["taskId"], *th::slug_to_uuid(id) + "/1");
  EXPECT_EQ(got[1]["payload"]["state"], "pending");
  ASSERT_TRUE(settled(2));
  EXPECT_EQ(published(), 2);
  // The build side has both attempts of the task's job.
  auto group = pending["payload"]["status"]["taskGroupId"].get<std::string>();
  auto build = json::parse(client().get("/api/v1/builds/taskcluster/gecko-level-3/" + group).body);
  EXPECT_EQ(build["jobs"][0]["attempts"].size(), 2u) << build.dump(2);
}
