// The Taskcluster queue's API as buildtrack reads it, against a local fake queue.
#include <future>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "net/taskcluster_queue.hpp"
#include "tests/fake_receiver.hpp"
#include "tests/redis_server.hpp"

using namespace bt;
using nlohmann::json;
using receiver = test::fake_receiver;

namespace {

/// A queue with task `abc` (artifacts of run 0 on three pages, the last one failing
/// for run 1), and nothing else.
receiver::answer_t fake_queue(const receiver::request& r, std::size_t) {
  const std::string task = "/api/queue/v1/task/abc";
  if (r.target == task)
    return {200, json{{"metadata", {{"name", "build"}}}, {"routes", {"tc-treeherder.v2.try.abc"}}}.dump(), {}};
  if (r.target == task + "/runs/0/artifacts")
    return {200, json{{"artifacts", {{{"name", "public/a.log"}}, {{"name", "public/b.log"}}}},
                      {"continuationToken", "p 2"}}.dump(), {}};
  if (r.target == task + "/runs/0/artifacts?continuationToken=p%202")
    return {200, json{{"artifacts", {{{"name", "public/c.log"}}}}}.dump(), {}};
  if (r.target == task + "/runs/1/artifacts")
    return {200, json{{"artifacts", {{{"name", "public/x.log"}}}}, {"continuationToken", "t"}}.dump(), {}};
  if (r.target == task + "/runs/1/artifacts?continuationToken=t")
    return {503, "{}", {}};
  if (r.target == task + "/runs/2/artifacts")
    return {200, "not json", {}};
  return {404, R"({"code":"ResourceNotFound"})", {}};
}

template <class T>
net::taskcluster_queue::result<T> wait(std::function<void(std::function<void(net::taskcluster_queue::result<T>)>)> ask) {
  std::promise<net::taskcluster_queue::result<T>> p;
  ask([&](auto r) { p.set_value(std::move(r)); });
  return p.get_future().get();
}

} // namespace

TEST(taskcluster_queue, reads_task_definitions_and_every_page_of_artifacts) {
  auto port = test::redis_server::free_port();
  receiver queue{port, fake_queue};
  net::http_client client;
  net::taskcluster_queue q{"http://127.0.0.1:" + std::to_string(port), client};
  using names = std::vector<std::string>;
  auto def = wait<json>([&](auto done) { q.task("abc", done); });
  ASSERT_TRUE(def.value) << def.error;
  EXPECT_EQ((*def.value)["metadata"]["name"], "build");
  auto unknown = wait<json>([&](auto done) { q.task("nope", done); });
  EXPECT_FALSE(unknown.value);
  EXPECT_FALSE(unknown.retry) << "a 404 will not pass";
  auto all = wait<names>([&](auto done) { q.artifacts("abc", 0, done); });
  ASSERT_TRUE(all.value) << all.error;
  EXPECT_EQ(*all.value, (names{"public/a.log", "public/b.log", "public/c.log"}));
  EXPECT_TRUE(all.error.empty());
  // A later page that fails keeps the earlier ones and says why.
  auto partial = wait<names>([&](auto done) { q.artifacts("abc", 1, done); });
  ASSERT_TRUE(partial.value);
  EXPECT_EQ(*partial.value, names{"public/x.log"});
  EXPECT_NE(partial.error.find("503"), std::string::npos);
  EXPECT_TRUE(partial.retry);
  auto garbage = wait<names>([&](auto done) { q.artifacts("abc", 2, done); });
  EXPECT_FALSE(garbage.value);
  EXPECT_FALSE(garbage.retry);
  queue.stop();
  auto down = wait<json>([&](auto done) { q.task("abc", done); });
  EXPECT_FALSE(down.value);
  EXPECT_TRUE(down.retry) << "no answer may pass";
}
