#pragma once

// Realistic Buildkite webhook bodies and requests, and native event requests, shared
// by the storm (the tool and the bench) and the crash test. Shapes follow tests/fixtures.
// Requests carry the bench's token and Host 127.0.0.1 unless told otherwise.

#include <map>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

namespace bt::payloads {

/// The token the generated requests carry.
inline const std::string token = "bench-token-0123456789abcdef";

/// A delivery of build `number` of `pipeline` in Buildkite state `state`.
inline nlohmann::json build_delivery(const std::string& event, const std::string& pipeline,
                                     int number, const std::string& state,
                                     const std::string& branch = "main") {
  using nlohmann::json;
  return {{"event", event},
          {"build",
           {{"id", "b-" + pipeline + "-" + std::to_string(number)},
            {"number", number},
            {"web_url", "https://buildkite.com/acme/" + pipeline + "/builds/"
                          + std::to_string(number)},
            {"state", state},
            {"message", "Make the storm pass\n\nA realistic commit message body."},
            {"commit", "8faa67ad6d0fda3ccf884c90acfd061d37e8558d"},
            {"branch", branch},
            {"author", {{"username", "ada"}, {"name", "Ada Lovelace"}, {"email", "ada@example.com"}}},
            {"creator", {{"id", "u1"}, {"name", "Grace Hopper"}, {"email", "grace@example.com"}}},
            {"env", json::object()},
            {"created_at", "2026-11-20 09:10:00 UTC"},
            {"started_at", "2026-11-20 09:12:00 UTC"}}},
          {"pipeline", {{"id", "p-" + pipeline}, {"slug", pipeline}, {"name", pipeline},
                        {"repository", "git@github.com:acme/app.git"}}},
          {"sender", {{"id", "s"}, {"name", "Buildkite"}}}};
}

/// A job.started or job.finished delivery: attempt `attempt` of step `step`.
inline nlohmann::json job_delivery(const std::string& pipeline, int number, int step,
                                   int attempt, bool finished, bool fails,
                                   const std::string& branch = "main") {
  using nlohmann::json;
  auto doc = build_delivery(finished ? "job.finished" : "job.started", pipeline, number,
                            "running", branch);
  doc["job"] = {{"id", pipeline + "-" + std::to_string(number) + "-" + std::to_string(step) + "-"
                         + std::to_string(attempt)},
                {"type", "script"},
                {"name", "step " + std::to_string(step)},
                {"step_key", "step-" + std::to_string(step)},
                {"state", finished ? (fails ? "failed" : "passed") : "running"},
                {"exit_status", finished ? json(fails ? 1 : 0) : json(nullptr)},
                {"soft_failed", false},
                {"retries_count", attempt},
                {"started_at", "2026-11-20 09:12:31 UTC"},
                {"finished_at", finished ? json("2026-11-20 09:12:40 UTC") : json(nullptr)}};
  return doc;
}

/// A complete HTTP/1.1 request posting `body` as Buildkite event `event`.
inline std::string http_request(const std::string& event, const std::string& body,
                                const std::string& secret = token,
                                const std::string& host = "127.0.0.1") {
  std::ostringstream out;
  out << "POST /webhooks/buildkite HTTP/1.1\r\nHost: " << host << "\r\n"
      << "Content-Type: application/json\r\nX-Buildkite-Event: " << event
      << "\r\nX-Buildkite-Token: " << secret << "\r\nContent-Length: " << body.size()
      << "\r\n\r\n"
      << body;
  return out.str();
}

/// A complete HTTP/1.1 request posting native events: one JSON event, or NDJSON.
inline std::string native_request(const std::string& body, bool ndjson,
                                  const std::string& secret = token,
                                  const std::string& host = "127.0.0.1") {
  std::ostringstream out;
  out << "POST /api/v1/events HTTP/1.1\r\nHost: " << host << "\r\nContent-Type: "
      << (ndjson ? "application/x-ndjson" : "application/json")
      << "\r\nAuthorization: Bearer " << secret << "\r\nContent-Length: " << body.size()
      << "\r\n\r\n"
      << body;
  return out.str();
}

/// A complete HTTP/1.1 request posting `body` to `path` with the bench's token as a
/// Bearer token and `headers` (a `Content-Type` among them).
inline std::string bearer_request(const std::string& path,
                                  const std::map<std::string, std::string>& headers,
                                  const std::string& body, const std::string& secret = token,
                                  const std::string& host = "127.0.0.1") {
  std::ostringstream out;
  out << "POST " << path << " HTTP/1.1\r\nHost: " << host;
  for (auto& [name, value] : headers)
    out << "\r\n" << name << ": " << value;
  out << "\r\nAuthorization: Bearer " << secret << "\r\nContent-Length: " << body.size()
      << "\r\n\r\n"
      << body;
  return out.str();
}

/// A complete HTTP/1.1 request posting a JSON `body` to `path` with the bench's token
/// as a Bearer token (target messages, build commands, Taskcluster messages).
inline std::string bearer_post(const std::string& path, const std::string& body,
                               const std::string& secret = token,
                               const std::string& host = "127.0.0.1") {
  return bearer_request(path, {{"Content-Type", "application/json"}}, body, secret, host);
}

} // namespace bt::payloads
