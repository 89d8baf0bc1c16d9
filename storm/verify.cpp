#include "storm/verify.hpp"

#include <algorithm>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>
#include <simdjson.h>

#include "model/streak.hpp"
#include "storm/listener.hpp"

namespace bt::storm {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using nlohmann::json;

/// GETs paths on one keep-alive connection (opened anew when the target closes it).
class api_reader {
public:
  api_reader(endpoint target, std::string admin_token)
    : target_{std::move(target)}, token_{std::move(admin_token)}, stream_{ioc_} {}

  /// The status and the body parsed (discarded when it is not JSON).
  std::pair<unsigned, json> get(const std::string& path) {
    for (int attempt = 0;; ++attempt) {
      try {
        if (!open_) {
          stream_.expires_after(std::chrono::seconds{30});
          stream_.connect(tcp::resolver{ioc_}.resolve(target_.host, std::to_string(target_.port)));
          open_ = true;
        }
        http::request<http::empty_body> req{http::verb::get, path, 11};
        req.set(http::field::host, target_.host);
        if (!token_.empty())
          req.set(http::field::authorization, "Bearer " + token_);
        stream_.expires_after(std::chrono::seconds{30});
        http::write(stream_, req);
        beast::flat_buffer buf;
        http::response_parser<http::string_body> res;
        res.body_limit(64 * 1024 * 1024);
        http::read(stream_, buf, res);
        if (!res.get().keep_alive())
          close();
        if (res.get().result_int() == 401)
          throw std::logic_error{"the target refused the admin token (401) for " + path
                                 + ": give it with --admin-token or BUILDTRACK_ADMIN_TOKEN"};
        return {res.get().result_int(), json::parse(res.get().body(), nullptr, false)};
      } catch (const std::logic_error&) {
        throw;
      } catch (const std::exception& e) {
        close();
        if (attempt == 2)
          throw std::runtime_error{"reading " + path + " from " + target_.host + ":"
                                   + std::to_string(target_.port) + ": " + e.what()};
      }
    }
  }

private:
  void close() {
    beast::error_code ignored;
    stream_.socket().close(ignored);
    open_ = false;
  }

  endpoint target_;
  std::string token_;
  asio::io_context ioc_;
  beast::tcp_stream stream_;
  bool open_ = false;
};

constexpr std::string_view builds_path = "/api/v1/builds/";

/// Each build's state (and its statistic, when the storm sent one).
void verify_builds(const workload& w, api_reader& api, verification& v) {
  for (auto& [path, state] : w.expected) {
    auto key = path.substr(builds_path.size());
    auto [status, doc] = api.get(path);
    ++v.builds;
    if (status != 200 || doc.is_discarded() || !doc.is_object()) {
      v.differences.push_back({key, "build", "HTTP 200 with the build", "HTTP " + std::to_string(status)});
      continue;
    }
    bool ok = true;
    if (doc.value("state", "") != state) {
      ok = false;
      v.differences.push_back({key, "state", state, doc.value("state", "(none)")});
    }
    if (auto s = w.statistics.find(path); s != w.statistics.end()) {
      auto& statistics = doc["statistics"];
      auto got = statistics.is_object() && statistics.contains("duration") ? statistics["duration"].dump()
                                                                           : std::string{"(none)"};
      if (!statistics.is_object() || statistics.value("duration", -1.0) != s->second) {
        ok = false;
        v.differences.push_back({key, "statistics.duration", json(s->second).dump(), got});
      }
    }
    v.builds_ok += ok;
    // Only passed and failed builds are announced (not canceled or aborted ones).
    auto now = doc.value("state", "");
    if (doc.contains("revision") && (now == "passed" || now == "failed"))
      v.revisions[key] = doc["revision"].get<std::uint64_t>();
  }
}

/// GET /api/v1/streaks against the streaks the expected final states make: per source
/// and pipeline on main (Buildkite and native builds; CDEvents name no branch,
/// Taskcluster groups never finish), ordered by build number, passed and failed builds
/// judged: the newest build, its state, how many were judged (up to the streak's
/// history limit), and a verdict that fits its state.
void verify_streaks(const workload& w, api_reader& api, verification& v) {
  std::map<std::string, std::map<long, bool>> judged; // source/pipeline -> number -> failed
  for (auto& [path, state] : w.expected) {
    auto rest = path.substr(builds_path.size());
    auto source = rest.substr(0, rest.find('/'));
    if ((source != "buildkite" && source != "native") || (state != "passed" && state != "failed"))
      continue;
    auto slash = rest.rfind('/');
    judged[rest.substr(0, slash)][std::stol(rest.substr(slash + 1))] = state == "failed";
  }
  if (judged.empty())
    return;
  auto [status, doc] = api.get("/api/v1/streaks");
  std::map<std::string, json> got;
  if (status == 200 && doc.is_array())
    for (auto& s : doc)
      if (s.value("branch", "") == "main")
        got[s.value("source", "") + "/" + s.value("pipeline", "")] = s;
  for (auto& [key, builds] : judged) {
    ++v.streaks;
    auto g = got.find(key);
    if (g == got.end()) {
      v.differences.push_back({key, "streak", "a streak on main", "none"});
      continue;
    }
    // The newest build's verdict and failure count were decided when it finished: an
    // older build that changed its outcome later does not change them (SPEC §4), so
    // they are checked against what they may be, not recomputed.
    auto last = builds.rbegin();
    long failed = 0;
    for (auto& [_, f] : builds)
      failed += f;
    // A streak keeps its newest builds only.
    auto kept = std::min(builds.size(), model::streak_book{}.history_limit());
    json want{{"last_build", last->first}, {"state", last->second ? "failing" : "passing"},
              {"builds", kept}};
    bool ok = true;
    for (auto& [field, value] : want.items())
      if (g->second[field] != value) {
        ok = false;
        v.differences.push_back({key, "streak." + field, value.dump(), g->second[field].dump()});
      }
    auto verdict = g->second.value("verdict", "");
    auto failures = g->second.value("failures", -1L);
    bool consistent = last->second ? (verdict == "broken" && failures == 1)
                                       || (verdict == "still_failing" && failures > 1 && failures <= failed)
                                   : (verdict == "passed" || verdict == "fixed") && failures == 0;
    if (!consistent) {
      ok = false;
      v.differences.push_back({key, "streak.verdict",
                               last->second ? "broken with 1 failure, or still_failing with 2.."
                                                + std::to_string(failed)
                                            : std::string{"passed or fixed with 0 failures"},
                               verdict + " with " + std::to_string(failures) + " failures"});
    }
    v.streaks_ok += ok;
  }
}

} // namespace

double verification::verified_percent() const {
  auto checked = builds + streaks + notifications + jobs;
  if (checked == 0)
    return 100;
  return 100.0 * static_cast<double>(builds_ok + streaks_ok + notifications_ok + jobs_ok) / static_cast<double>(checked);
}

verification verify(const workload& w, const endpoint& target, const std::string& admin_token) {
  api_reader api{target, admin_token};
  verification v;
  try {
    verify_builds(w, api, v);
    verify_streaks(w, api, v);
  } catch (const std::logic_error& e) {
    throw std::runtime_error{e.what()};
  }
  return v;
}

struct notification_receiver::impl {
  explicit impl(const endpoint& at) : listener{at, [this](const inbound& r) { return hear(r); }} {}

  /// Reads only the build's key and the revision, with simdjson: the receiver stands in
  /// for a system elsewhere, and it shares the load generator's cores. Parsing each
  /// ~5 KB body into a nlohmann tree cost ~100 µs a delivery, which the storm then
  /// counted against buildtrackd's throughput.
  std::pair<unsigned, std::string> hear(const inbound& r) {
    auto now = steady::now();
    simdjson::dom::element doc;
    simdjson::dom::object b;
    if (parser.parse(r.body).get(doc) || doc["build"].get(b))
      return {200, "{}"};
    auto text = [&b](const char* name) {
      std::string_view v;
      return b[name].get(v) ? std::string_view{} : v;
    };
    auto revision = doc["revision"];
    if (revision.error() == simdjson::NO_SUCH_FIELD)
      return {200, "{}"};
    std::string key{text("source")};
    key.append("/").append(text("pipeline")).append("/").append(text("id"));
    std::lock_guard guard{mutex};
    auto [it, fresh] = builds.try_emplace(std::move(key), heard{now, 0, 0});
    if (!ids.insert(r.delivery).second)
      ++it->second.duplicates;
    if (std::uint64_t n; !revision.get(n))
      it->second.revision = std::max(it->second.revision, n);
    return {200, "{}"};
  }

  simdjson::dom::parser parser; // only the listener's thread calls hear()
  mutable std::mutex mutex;
  std::map<std::string, heard> builds;
  std::set<std::string> ids;
  http_listener listener; // last: it calls hear() until it is destroyed, first
};

notification_receiver::notification_receiver(const endpoint& at) : impl_{std::make_unique<impl>(at)} {}
notification_receiver::~notification_receiver() = default;

unsigned short notification_receiver::port() const { return impl_->listener.port(); }

std::map<std::string, notification_receiver::heard> notification_receiver::builds() const {
  std::lock_guard guard{impl_->mutex};
  return impl_->builds;
}

std::size_t notification_receiver::deliveries() const {
  std::lock_guard guard{impl_->mutex};
  return impl_->ids.size();
}

void check_notifications(verification& v, const notification_receiver& r,
                         const std::map<std::string, steady::time_point>& finished_at,
                         std::chrono::milliseconds drain, std::vector<double>& latencies) {
  auto missing = [&](const std::map<std::string, notification_receiver::heard>& heard) {
    std::size_t n = 0;
    for (auto& [key, revision] : v.revisions)
      if (auto h = heard.find(key); h == heard.end() || h->second.revision < revision)
        ++n;
    return n;
  };
  auto until = steady::now() + drain;
  auto heard = r.builds();
  // Deliveries are asynchronous: wait until the last expected one came or time is up.
  while (missing(heard) > 0 && steady::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds{20});
    heard = r.builds();
  }
  for (auto& [key, revision] : v.revisions) {
    ++v.notifications;
    auto h = heard.find(key);
    if (h == heard.end()) {
      v.differences.push_back({key, "notification", "revision " + std::to_string(revision), "none"});
      continue;
    }
    bool ok = true;
    if (h->second.revision < revision) {
      ok = false;
      v.differences.push_back({key, "notification", "revision " + std::to_string(revision),
                               "revision " + std::to_string(h->second.revision)});
    }
    if (h->second.duplicates > 0) {
      ok = false;
      v.differences.push_back({key, "notification.deliveries", "each once",
                               std::to_string(h->second.duplicates) + " heard twice"});
    }
    v.notifications_ok += ok;
    if (auto a = finished_at.find(key); a != finished_at.end())
      latencies.push_back(std::chrono::duration<double>(h->second.first - a->second).count());
  }
  std::sort(latencies.begin(), latencies.end());
}

} // namespace bt::storm
