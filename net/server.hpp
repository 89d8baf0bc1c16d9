#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include "config/config.hpp"
#include "support/push_channel.hpp"

namespace bt::net {

using request = boost::beast::http::request<boost::beast::http::string_body>;
using response = boost::beast::http::response<boost::beast::http::string_body>;
/// Completes a request; call exactly once, from any thread. The answer is written on
/// the connection's strand.
class responder {
public:
  responder() = default;
  /// `answer` writes on the connection's strand; `io` is the I/O thread's context the
  /// connection belongs to (opaque; null: none, answers are not grouped).
  template <class F>
    requires std::is_invocable_v<F&, response>
  responder(F answer, void* io = nullptr) : answer_{std::move(answer)}, io_{io} {}

  void operator()(response res) const { answer_(std::move(res)); }
  /// The I/O thread's context (opaque), or null.
  void* io() const { return io_; }

private:
  std::function<void(response)> answer_;
  void* io_ = nullptr;
};

/// Answers gathered by the callbacks of one group commit (a `store::commit` part):
/// each I/O thread gets one hand-off for all of its connections' answers, rather than
/// a wake-up per answer; each answer is then written on its connection's strand.
class answer_batch {
public:
  void add(responder to, response res);
  /// Hands the answers to their I/O threads.
  void flush();

private:
  std::vector<std::pair<responder, response>> answers_;
};

/// How the server serves a WebSocket upgrade request: a subscriber that is written
/// to (server push) and whose own messages are read and dropped.
struct upgrade_plan {
  /// Answered instead of upgrading (the connection stays HTTP); the rest is unused.
  std::optional<response> refusal;
  std::size_t queue_limit = 1024; ///< frames waiting before a gap opens
  /// Nothing received for this long closes the connection; pings go out at half of it.
  std::chrono::milliseconds idle_timeout{30'000};
  std::string position; ///< where the subscriber starts: a gap before any frame resumes here
  /// The frame written where a gap closes: how many frames it lost, and the position
  /// of the last frame before it.
  std::function<std::string(std::uint64_t missed, const std::string& resume)> gap_note;
  /// Once the handshake is done: where to write. On the connection's strand.
  std::function<void(std::shared_ptr<support::push_channel>)> opened;
  /// Once the connection is gone (called once, only after `opened`).
  std::function<void()> closed;
};

/// What the server does with a request. No I/O of its own; may answer later.
class handler {
public:
  virtual ~handler() = default;
  virtual void handle(request&& req, responder respond) = 0;
  /// A WebSocket upgrade request: how to serve it. Refused with 404 unless overridden.
  virtual upgrade_plan upgrade(const request& req);
};

/// A Beast HTTP/1.1 server: keep-alive, a strand per connection, `body_limit`
/// (413), header limit (431) and read timeouts against slow clients; WebSocket
/// upgrades as the handler plans them (bounded queues, pings, idle timeouts).
class server {
public:
  server(config::server_config cfg, handler& h);
  ~server();
  /// Binds `cfg.listen` and starts `cfg.io_threads` threads; returns the bound port
  /// (useful with port 0). Throws std::runtime_error when it cannot bind.
  unsigned short start();
  /// Stops accepting, closes connections and joins the threads.
  void stop();

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// A JSON response with the right headers.
response json_response(unsigned status, std::string body, unsigned version = 11,
                       bool keep_alive = true);

} // namespace bt::net
