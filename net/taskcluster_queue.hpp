#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "net/client.hpp"

namespace bt::net {

/// What the Taskcluster queue's API is read for (SPEC §3.2): task definitions, and
/// the artifact listing of a run, over the outbound client. Callbacks run on the
/// client's thread.
class taskcluster_queue {
public:
  /// What a read gave: the value, or why not and whether trying again may help.
  template <class T>
  struct result {
    std::optional<T> value;
    std::string error; ///< empty when it worked
    bool retry = true; ///< the error may pass (no answer, 5xx, 429); false for 4xx
  };

  /// `root_url`: the deployment's, without a trailing slash. `client` outlives every
  /// read in flight; this object need not.
  taskcluster_queue(std::string root_url, http_client& client,
                    std::chrono::milliseconds timeout = std::chrono::seconds{10});

  /// `GET <root>/api/queue/v1/task/<taskId>`: the task's definition.
  void task(const std::string& task_id, std::function<void(result<nlohmann::json>)> done);

  /// Every artifact name of run `run`, following `continuationToken` over every page
  /// (`GET <root>/api/queue/v1/task/<taskId>/runs/<run>/artifacts`). A page that fails
  /// ends the listing: the value keeps what the pages before it gave (none for the
  /// first), and the error says why.
  void artifacts(const std::string& task_id, std::int64_t run,
                 std::function<void(result<std::vector<std::string>>)> done);

private:
  std::string root_url_;
  http_client& client_;
  std::chrono::milliseconds timeout_;
};

} // namespace bt::net
