#include "net/taskcluster_queue.hpp"

namespace bt::net {
namespace {

/// The JSON object an answer carries, or why it does not.
std::optional<nlohmann::json> object_of(const inbound_response& r, std::string& error, bool& retry) {
  if (r.status == 0) {
    error = r.error;
    retry = true;
    return std::nullopt;
  }
  if (r.status != 200) {
    error = "the queue answered " + std::to_string(r.status);
    retry = r.status >= 500 || r.status == 429 || r.status == 408;
    return std::nullopt;
  }
  auto doc = nlohmann::json::parse(r.body, nullptr, false);
  if (!doc.is_object()) {
    error = "the queue's answer is not a JSON object";
    retry = false;
    return std::nullopt;
  }
  return doc;
}

/// One page of an artifact listing after `token` (empty: the first), added to `names`;
/// the next page follows until none is left or one fails.
void artifact_page(http_client& client, std::chrono::milliseconds timeout, std::string base,
                   std::string token, std::vector<std::string> names,
                   std::function<void(taskcluster_queue::result<std::vector<std::string>>)> done) {
  auto url = token.empty() ? base : base + "?continuationToken=" + percent_encode(token);
  outbound_request req{"GET", std::move(url), {}, {}};
  req.headers.emplace_back("Accept", "application/json");
  client.send(std::move(req), timeout,
              [&client, timeout, base = std::move(base), names = std::move(names),
               done = std::move(done)](inbound_response r) mutable {
                taskcluster_queue::result<std::vector<std::string>> out;
                auto page = object_of(r, out.error, out.retry);
                if (page)
                  if (auto it = page->find("artifacts"); it != page->end() && it->is_array())
                    for (auto& a : *it)
                      if (a.is_object() && a.contains("name") && a["name"].is_string())
                        names.push_back(a["name"].get<std::string>());
                auto next = page ? page->value("continuationToken", std::string{}) : std::string{};
                if (page && !next.empty())
                  return artifact_page(client, timeout, std::move(base), std::move(next),
                                       std::move(names), std::move(done));
                // A failed first page gives no listing; a later one keeps what came.
                if (page || !names.empty())
                  out.value = std::move(names);
                done(std::move(out));
              });
}

} // namespace

taskcluster_queue::taskcluster_queue(std::string root_url, http_client& client,
                                     std::chrono::milliseconds timeout)
  : root_url_{std::move(root_url)}, client_{client}, timeout_{timeout} {
}

void taskcluster_queue::task(const std::string& task_id,
                             std::function<void(result<nlohmann::json>)> done) {
  outbound_request req{"GET", root_url_ + "/api/queue/v1/task/" + percent_encode(task_id), {}, {}};
  req.headers.emplace_back("Accept", "application/json");
  client_.send(std::move(req), timeout_, [done = std::move(done)](inbound_response r) {
    result<nlohmann::json> out;
    out.value = object_of(r, out.error, out.retry);
    done(std::move(out));
  });
}

void taskcluster_queue::artifacts(const std::string& task_id, std::int64_t run,
                                  std::function<void(result<std::vector<std::string>>)> done) {
  artifact_page(client_, timeout_,
                root_url_ + "/api/queue/v1/task/" + percent_encode(task_id) + "/runs/"
                  + std::to_string(run) + "/artifacts",
                "", {}, std::move(done));
}

} // namespace bt::net
