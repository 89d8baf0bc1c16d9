#include "storm/taskcluster.hpp"

#include <atomic>
#include <functional>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <set>
#include <string_view>
#include <thread>
#include <vector>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include "net/client.hpp"
#include "storm/listener.hpp"
#include "storm/taskcluster_events.hpp"

namespace bt::storm {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using nlohmann::json;

/// A backlog position `<ms>-<seq>` as a comparable pair.
std::pair<unsigned long long, unsigned long long> position_of(const std::string& id) {
  auto dash = id.find('-');
  try {
    return {std::stoull(id.substr(0, dash)), dash == std::string::npos ? 0 : std::stoull(id.substr(dash + 1))};
  } catch (const std::exception&) {
    return {0, 0};
  }
}

} // namespace

struct queue_server::impl {
  impl(const endpoint& at, std::map<std::string, json> definitions)
    : tasks{std::move(definitions)}, listener{at, [this](const inbound& r) { return answer(r); }} {}

  std::pair<unsigned, std::string> answer(const inbound& r) {
    constexpr std::string_view prefix = "/api/queue/v1/task/";
    std::string_view target = r.target;
    if (!target.starts_with(prefix))
      return {404, R"({"code":"ResourceNotFound"})"};
    target.remove_prefix(prefix.size());
    auto slash = target.find('/');
    auto it = tasks.find(std::string{target.substr(0, slash)});
    if (it == tasks.end())
      return {404, R"({"code":"ResourceNotFound"})"};
    if (slash != std::string_view::npos) // .../runs/<n>/artifacts
      return {200, json{{"artifacts", {{{"name", "public/logs/live_backing.log"}}}}}.dump()};
    return {200, it->second.dump()};
  }

  const std::map<std::string, json> tasks; // read only: the listener's thread reads it
  http_listener listener;
};

queue_server::queue_server(const endpoint& at, std::map<std::string, json> definitions)
  : impl_{std::make_unique<impl>(at, std::move(definitions))} {}
queue_server::~queue_server() = default;
unsigned short queue_server::port() const { return impl_->listener.port(); }

struct exchange_watch::impl {
  /// A job message as heard: its backlog position, job id and task.
  struct heard {
    std::string position;
    std::string job;
    std::string task;
    bool in_order = true; ///< after the one before it on the same connection
  };

  impl(endpoint t, std::string x, std::string token)
    : target{std::move(t)}, exchange{std::move(x)}, admin_token{std::move(token)} {
    auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
    since = std::to_string(now - 60'000) + "-0";
    thread = std::thread{[this] { run(); }};
  }
  ~impl() {
    stop = true;
    thread.join();
  }

  /// Subscribes, reads, and subscribes again from the last position after a gap or a
  /// dropped connection, until told to stop.
  void run() {
    while (!stop) {
      asio::io_context ioc;
      websocket::stream<beast::tcp_stream> ws{ioc};
      try {
        auto& tcp_layer = beast::get_lowest_layer(ws);
        tcp_layer.expires_after(std::chrono::seconds{10});
        tcp_layer.connect(tcp::resolver{ioc}.resolve(target.host, std::to_string(target.port)));
        ws.set_option(websocket::stream_base::decorator([this](websocket::request_type& req) {
          if (!admin_token.empty())
            req.set(beast::http::field::authorization, "Bearer " + admin_token);
        }));
        auto path = "/api/v1/exchanges/" + net::percent_encode(exchange) + "/subscribe?bind=%23&since=" + since;
        ws.handshake(target.host, path);
        tcp_layer.expires_never();
      } catch (const std::exception& e) {
        settle(false, std::string{"subscribing to "} + exchange + ": " + e.what()
                        + " (a refused upgrade: check --admin-token and the exchange's name)");
        std::this_thread::sleep_for(std::chrono::milliseconds{200});
        continue;
      }
      settle(true, "");
      read_until_gap(ioc, ws);
    }
  }

  /// Reads frames until stopped, the connection drops or a gap notice comes. A timer
  /// looks at `stop` every 200 ms and closes the connection then: the read ends with it.
  void read_until_gap(asio::io_context& ioc, websocket::stream<beast::tcp_stream>& ws) {
    beast::flat_buffer buffer;
    std::pair<unsigned long long, unsigned long long> last{0, 0};
    bool over = false;
    asio::steady_timer timer{ioc};
    std::function<void()> watch_stop = [&] {
      timer.expires_after(std::chrono::milliseconds{200});
      timer.async_wait([&](beast::error_code ec) {
        if (ec || over)
          return;
        if (!stop)
          return watch_stop();
        over = true;
        beast::get_lowest_layer(ws).close();
      });
    };
    std::function<void()> do_read = [&] {
      ws.async_read(buffer, [&](beast::error_code ec, std::size_t) {
        bool more = !ec && on_frame(beast::buffers_to_string(buffer.data()), last);
        buffer.consume(buffer.size());
        if (more)
          return do_read();
        over = true;
        timer.cancel();
      });
    };
    watch_stop();
    do_read();
    ioc.restart();
    ioc.run();
  }

  /// Takes one frame; false when the subscription must start again (after a gap).
  bool on_frame(const std::string& text, std::pair<unsigned long long, unsigned long long>& last) {
    auto frame = json::parse(text, nullptr, false);
    if (!frame.is_object())
      return true;
    if (frame.contains("missed")) {
      since = frame.value("resume", since);
      return false; // the gap is fetched by subscribing again from its start
    }
    if (frame.contains("truncated")) {
      std::lock_guard guard{mutex};
      faults.push_back("the exchange's backlog let go of messages after " + frame.value("since", std::string{})
                       + " before the watch read them");
      return true;
    }
    if (!frame.contains("payload") || !frame["payload"].is_object())
      return true;
    auto id = frame.value("id", std::string{});
    auto now = position_of(id);
    heard h{id, "", "", now > last};
    last = std::max(last, now);
    since = id;
    try {
      h.job = taskcluster::job_id(frame["payload"]);
      h.task = frame["payload"].value("taskId", std::string{});
    } catch (const std::exception&) {
      return true; // not a job message of the shape the storm checks
    }
    std::lock_guard guard{mutex};
    frames.push_back(std::move(h));
    arrived.notify_all();
    return true;
  }

  void settle(bool ok, std::string why) {
    std::lock_guard guard{mutex};
    if (!subscription) {
      subscription = ok;
      refusal = std::move(why);
      arrived.notify_all();
    }
  }

  endpoint target;
  std::string exchange, admin_token;
  std::string since; ///< where the next subscription starts (the reader thread's)
  std::atomic<bool> stop{false};
  std::mutex mutex;
  std::condition_variable arrived;
  std::optional<bool> subscription; ///< whether the first subscription was accepted
  std::string refusal;
  std::vector<heard> frames;
  std::vector<std::string> faults;
  std::thread thread;
};

exchange_watch::exchange_watch(endpoint target, std::string exchange, std::string admin_token)
  : impl_{std::make_unique<impl>(std::move(target), std::move(exchange), std::move(admin_token))} {}
exchange_watch::~exchange_watch() = default;

bool exchange_watch::subscribed(std::string& why, std::chrono::milliseconds wait) {
  std::unique_lock lock{impl_->mutex};
  impl_->arrived.wait_for(lock, wait, [&] { return impl_->subscription.has_value(); });
  why = impl_->subscription ? impl_->refusal : "no answer to the subscription in time";
  return impl_->subscription.value_or(false);
}

void exchange_watch::check(verification& v, const treeherder_expectation& x, std::chrono::milliseconds drain) {
  // Job ids are `<task uuid>/<run>:<state>:<result>`: the storm's tasks are the uuids in them.
  std::set<std::string> want, tasks;
  for (auto& [id, key] : x.jobs) {
    want.insert(id);
    tasks.insert(id.substr(0, id.find('/')));
  }
  std::unique_lock lock{impl_->mutex};
  auto all_heard = [&] {
    std::set<std::string> got;
    for (auto& h : impl_->frames)
      if (want.contains(h.job))
        got.insert(h.job);
    return got.size() == want.size();
  };
  impl_->arrived.wait_for(lock, drain, all_heard);
  std::map<std::string, std::set<std::string>> positions; // job -> distinct positions
  for (auto& h : impl_->frames) {
    if (!tasks.contains(h.task.substr(0, h.task.find('/'))))
      continue; // another run's, or another sender's
    positions[h.job].insert(h.position);
    if (!want.contains(h.job))
      v.differences.push_back({h.job, "job_message", "not published (no such job in the storm)", "at " + h.position});
    if (!h.in_order)
      v.differences.push_back({h.job, "job_message.order", "in publish order", "out of order at " + h.position});
  }
  for (auto& fault : impl_->faults)
    v.differences.push_back({"exchange", "backlog", "every message kept", fault});
  for (auto& id : want) {
    ++v.jobs;
    auto p = positions.find(id);
    if (p == positions.end())
      v.differences.push_back({id, "job_message", "published once", "never heard"});
    else if (p->second.size() > 1)
      v.differences.push_back({id, "job_message", "published once", "at " + std::to_string(p->second.size()) + " positions"});
    else
      ++v.jobs_ok;
  }
}

} // namespace bt::storm
