#pragma once

// A local fake of the Taskcluster queue's API, for tests and benches; the messages and
// definitions themselves are the storm's (storm/taskcluster_events.hpp).

#include <atomic>
#include <cstddef>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "storm/taskcluster_events.hpp"
#include "tests/fake_receiver.hpp"
#include "tests/free_port.hpp"

namespace bt::test::taskcluster {

using namespace bt::storm::taskcluster;
using nlohmann::json;

/// The Taskcluster queue, as far as buildtrack reads it: definitions by task id (any
/// task, when `anything` is set), one log artifact per listed run. Reads of a task in
/// `failing` answer 500 its first so many times.
struct fake_queue {
  std::mutex mutex;
  std::map<std::string, json> tasks;
  std::map<std::string, int> failing;
  std::optional<json> anything; ///< the definition of a task not in `tasks`
  std::atomic<bool> listings_fail{false};
  fake_receiver http{free_port(), [this](auto& r, std::size_t) { return answer(r); }};

  std::string root_url() const { return "http://127.0.0.1:" + std::to_string(http.port()); }

  void define(const std::string& task_id, json definition = task_definition()) {
    std::lock_guard guard{mutex};
    tasks[task_id] = std::move(definition);
  }

  fake_receiver::answer_t answer(const fake_receiver::request& r) {
    constexpr std::string_view prefix = "/api/queue/v1/task/";
    std::string_view target = r.target;
    if (!target.starts_with(prefix))
      return {404, R"({"code":"ResourceNotFound"})"};
    target.remove_prefix(prefix.size());
    auto slash = target.find('/');
    std::string id{target.substr(0, slash)};
    std::lock_guard guard{mutex};
    if (slash != std::string_view::npos) { // .../runs/<n>/artifacts
      if (listings_fail)
        return {503, R"({"code":"Unavailable"})"};
      return {200, json{{"artifacts", {{{"name", "public/logs/live_backing.log"}}}}}.dump()};
    }
    if (auto f = failing.find(id); f != failing.end() && f->second > 0) {
      --f->second;
      return {500, R"({"code":"InternalServerError"})"};
    }
    auto it = tasks.find(id);
    if (it != tasks.end())
      return {200, it->second.dump()};
    if (anything)
      return {200, anything->dump()};
    return {404, R"({"code":"ResourceNotFound"})"};
  }

  /// How many reads of task `id`'s definition came.
  std::size_t reads_of(const std::string& id) {
    std::size_t n = 0;
    for (auto& r : http.requests())
      n += r.target == "/api/queue/v1/task/" + id;
    return n;
  }
};

} // namespace bt::test::taskcluster
