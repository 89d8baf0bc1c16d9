#include "net/server.hpp"

#include <algorithm>
#include <atomic>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include <nlohmann/json.hpp>

#include "support/log.hpp"
#include "support/metrics.hpp"

namespace bt::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

void answer_batch::add(responder to, response res) {
  answers_.emplace_back(std::move(to), std::move(res));
}

void answer_batch::flush() {
  // Grouped by I/O thread, in the order given within each.
  std::stable_sort(answers_.begin(), answers_.end(),
                   [](auto& a, auto& b) { return std::less<>{}(a.first.io(), b.first.io()); });
  auto begin = answers_.begin();
  while (begin != answers_.end()) {
    auto* io = begin->first.io();
    auto end = std::find_if(begin, answers_.end(), [io](auto& a) { return a.first.io() != io; });
    std::vector<std::pair<responder, response>> group{std::make_move_iterator(begin),
                                                      std::make_move_iterator(end)};
    auto write_all = [group = std::move(group)]() mutable {
      for (auto& [to, res] : group)
        to(std::move(res));
    };
    // Run there (at once when this is that thread: the memory store answers inline),
    // where each answer goes onto its connection's strand inline.
    if (io)
      asio::dispatch(static_cast<asio::io_context*>(io)->get_executor(), std::move(write_all));
    else
      write_all();
    begin = end;
  }
  answers_.clear();
}

upgrade_plan handler::upgrade(const request&) {
  upgrade_plan refused;
  refused.refusal = json_response(
    404, R"({"error":{"code":"not_found","message":"nothing to upgrade to here"}})");
  return refused;
}

response json_response(unsigned status, std::string body, unsigned version, bool keep_alive) {
  response res{static_cast<http::status>(status), version};
  res.set(http::field::server, "buildtrack");
  res.set(http::field::content_type, "application/json");
  res.keep_alive(keep_alive);
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

namespace {

std::string error_json(const char* code, const char* message) {
  return std::string{R"({"error":{"code":")"} + code + R"(","message":")" + message + "\"}}";
}

/// Counts open connections against `server.max_connections`.
struct connection_count {
  std::atomic<int> open{0};
};

/// One connection's place in the count, given back when its session ends.
class connection_slot {
public:
  explicit connection_slot(std::shared_ptr<connection_count> count) : count_{std::move(count)} {
    count_->open.fetch_add(1, std::memory_order_relaxed);
  }
  ~connection_slot() { count_->open.fetch_sub(1, std::memory_order_relaxed); }
  connection_slot(const connection_slot&) = delete;
  connection_slot& operator=(const connection_slot&) = delete;

private:
  std::shared_ptr<connection_count> count_;
};

class websocket_session;

/// A subscriber's queue: frames offered from any thread, taken by its session on its
/// strand. Bounded: a full queue opens a gap that counts what is offered until the
/// queue has drained, then closes with one note.
class ws_channel final : public support::push_channel {
public:
  ws_channel(asio::any_io_executor strand, std::weak_ptr<websocket_session> session,
             const upgrade_plan& plan)
    : strand_{std::move(strand)}, session_{std::move(session)}, limit_{plan.queue_limit},
      last_{plan.position}, gap_note_{plan.gap_note} {}

  bool offer(std::string frame, const std::string& position) override {
    std::lock_guard guard{mutex_};
    if (gone_ || closing_)
      return false;
    if (missed_ > 0 || frames_.size() >= limit_) {
      if (missed_++ == 0)
        resume_ = last_;
      return false;
    }
    frames_.push_back(std::move(frame));
    last_ = position;
    wake();
    return true;
  }

  void close() override {
    std::lock_guard guard{mutex_};
    closing_ = true;
    wake();
  }

  /// What to write next: a frame, else the note of a gap that drained; nothing when
  /// there is nothing (the session is then idle until woken). On the strand.
  std::optional<std::string> next() {
    std::lock_guard guard{mutex_};
    if (!frames_.empty()) {
      auto frame = std::move(frames_.front());
      frames_.pop_front();
      return frame;
    }
    if (missed_ > 0) {
      auto note = gap_note_ ? gap_note_(missed_, resume_) : std::string{};
      missed_ = 0;
      return note;
    }
    idle_ = true;
    return std::nullopt;
  }

  /// Whether the session should close: asked to, with nothing left to write.
  bool closing() {
    std::lock_guard guard{mutex_};
    return closing_ && frames_.empty() && missed_ == 0;
  }

  /// The connection is gone: nothing more is taken.
  void detach() {
    std::lock_guard guard{mutex_};
    gone_ = true;
    frames_.clear();
  }

private:
  /// Gets an idle session writing again (mutex_ held).
  void wake();

  asio::any_io_executor strand_;
  std::weak_ptr<websocket_session> session_;
  const std::size_t limit_;
  std::mutex mutex_;
  std::deque<std::string> frames_;
  std::string last_;   ///< position of the last frame queued
  std::string resume_; ///< position before the open gap
  std::uint64_t missed_ = 0;
  bool idle_ = true, closing_ = false, gone_ = false;
  std::function<std::string(std::uint64_t, const std::string&)> gap_note_;
};

/// One WebSocket connection, upgraded from an HTTP one: writes what its channel
/// holds, one frame at a time, and reads only to answer pings and see the close.
class websocket_session : public std::enable_shared_from_this<websocket_session> {
public:
  websocket_session(beast::tcp_stream&& stream, upgrade_plan plan,
                    std::shared_ptr<connection_count> count)
    : ws_{std::move(stream)}, plan_{std::move(plan)}, slot_{std::move(count)} {}
  /// Dropped without finishing (the server is going away): the channel takes nothing
  /// more, so nobody posts to an io_context that is going away. The owner is not
  /// told: it may be gone first.
  ~websocket_session() {
    if (channel_)
      channel_->detach();
  }

  void run(request req) {
    beast::get_lowest_layer(ws_).expires_never(); // the websocket timeouts take over
    websocket::stream_base::timeout timeouts{std::chrono::seconds{10}, plan_.idle_timeout, true};
    ws_.set_option(timeouts);
    ws_.set_option(websocket::stream_base::decorator(
      [](websocket::response_type& res) { res.set(http::field::server, "buildtrack"); }));
    ws_.read_message_max(64 * 1024); // subscribers have nothing to say
    req_ = std::move(req);
    ws_.async_accept(req_, beast::bind_front_handler(&websocket_session::on_accept,
                                                      shared_from_this()));
  }

  /// Writes what the channel holds, when nothing is being written. On the strand.
  void kick() {
    if (writing_ || closing_ || !channel_)
      return;
    if (auto frame = channel_->next()) {
      writing_ = true;
      current_ = std::move(*frame);
      ws_.text(true);
      ws_.async_write(asio::buffer(current_),
                      beast::bind_front_handler(&websocket_session::on_write, shared_from_this()));
      return;
    }
    if (channel_->closing()) {
      closing_ = true;
      ws_.async_close(websocket::close_code::normal,
                      [self = shared_from_this()](beast::error_code) { self->finish(); });
    }
  }

private:
  void on_accept(beast::error_code ec) {
    if (ec)
      return; // never opened: nobody to tell
    channel_ = std::make_shared<ws_channel>(ws_.get_executor(), weak_from_this(), plan_);
    if (plan_.opened)
      plan_.opened(channel_);
    do_read();
  }

  void do_read() {
    ws_.async_read(buffer_, beast::bind_front_handler(&websocket_session::on_read,
                                                      shared_from_this()));
  }

  void on_read(beast::error_code ec, std::size_t) {
    if (ec)
      return finish();
    buffer_.consume(buffer_.size());
    do_read();
  }

  void on_write(beast::error_code ec, std::size_t) {
    writing_ = false;
    if (ec)
      return finish();
    kick();
  }

  /// The connection is done (closed, failed or timed out): tell the owner once.
  void finish() {
    if (!channel_)
      return;
    channel_->detach();
    if (auto closed = std::exchange(plan_.closed, nullptr))
      closed();
  }

  websocket::stream<beast::tcp_stream> ws_;
  upgrade_plan plan_;
  connection_slot slot_;
  request req_;
  beast::flat_buffer buffer_;
  std::shared_ptr<ws_channel> channel_;
  std::string current_; ///< the frame being written
  bool writing_ = false, closing_ = false;
};

void ws_channel::wake() {
  if (!idle_)
    return;
  idle_ = false;
  asio::post(strand_, [session = session_] {
    if (auto s = session.lock())
      s->kick();
  });
}

/// One HTTP connection: read a request, hand it to the handler, write the answer.
class http_session : public std::enable_shared_from_this<http_session> {
public:
  http_session(tcp::socket&& socket, const config::server_config& cfg, handler& h,
               std::shared_ptr<connection_count> count)
    : stream_{std::move(socket)}, cfg_{cfg}, handler_{h}, count_{count}, slot_{std::move(count)} {
    // Beast reads at most what the buffer holds free, and at least 512 bytes: an empty
    // buffer that the parser drains as it goes never grows, so a 2 KiB webhook took
    // five reads and a 26 KiB batch fifty. Room for a typical request takes one.
    buffer_.reserve(read_buffer_size);
  }

  void run() {
    asio::dispatch(stream_.get_executor(),
                   beast::bind_front_handler(&http_session::do_read, shared_from_this()));
  }

private:
  void do_read() {
    parser_.emplace();
    parser_->body_limit(cfg_.body_limit);
    parser_->header_limit(16 * 1024);
    stream_.expires_after(cfg_.read_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&http_session::on_read, shared_from_this()));
  }

  void on_read(beast::error_code ec, std::size_t) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout
        || ec == asio::error::connection_reset || ec == asio::error::operation_aborted)
      return do_close();
    if (ec == http::error::body_limit)
      return reject(413, error_json("body_too_large", "request body exceeds server.body_limit"));
    if (ec == http::error::header_limit)
      return reject(431, error_json("headers_too_large", "request headers are too large"));
    if (ec)
      return reject(400, error_json("bad_request", "malformed HTTP request"));
    auto req = parser_->release();
    if (websocket::is_upgrade(req))
      return upgrade(std::move(req));
    auto version = req.version();
    bool keep_alive = req.keep_alive();
    stream_.expires_never();
    // The handler may answer from another thread: come back to this strand (inline
    // when it answered on the strand already). Copies of the responder share one slot
    // and the answer takes the connection out of it, so that the thread that drops the
    // last copy (the store's, an actor's) never releases the connection itself: that
    // happens on its strand, which its io_context outlives.
    auto slot = std::make_shared<std::shared_ptr<http_session>>(shared_from_this());
    responder respond{[slot, version, keep_alive](response res) {
                        auto self = std::move(*slot);
                        if (!self)
                          return; // answered already
                        res.version(version);
                        res.keep_alive(keep_alive && res.keep_alive());
                        auto strand = self->stream_.get_executor();
                        asio::dispatch(strand, [self = std::move(self), res = std::move(res)]() mutable {
                          self->do_write(std::move(res));
                        });
                      },
                      &io_context()};
    // No exception may unwind into Asio's run loop: it would end an I/O thread.
    try {
      handler_.handle(std::move(req), respond);
    } catch (const std::exception& e) {
      support::log(support::log_level::error, "request handler failed", {{"reason", e.what()}});
      respond(json_response(500, error_json("internal", "the request could not be handled")));
    }
  }

  /// Hands the connection to a WebSocket session, unless the handler refuses.
  void upgrade(request req) {
    stream_.expires_never();
    upgrade_plan plan;
    try {
      plan = handler_.upgrade(req);
    } catch (const std::exception& e) {
      support::log(support::log_level::error, "upgrade handler failed", {{"reason", e.what()}});
      plan.refusal = json_response(500, error_json("internal", "the request could not be handled"));
    }
    if (plan.refusal) {
      plan.refusal->version(req.version());
      plan.refusal->keep_alive(false);
      return do_write(std::move(*plan.refusal));
    }
    std::make_shared<websocket_session>(std::move(stream_), std::move(plan), count_)
      ->run(std::move(req));
  }

  /// Answers a request that could not be read, then closes the connection.
  void reject(unsigned status, std::string body) {
    do_write(json_response(status, std::move(body), 11, false));
  }

  /// The I/O thread's context this connection runs on.
  asio::io_context& io_context() {
    return static_cast<asio::io_context&>(
      asio::query(stream_.get_executor(), asio::execution::context));
  }

  void do_write(response res) {
    auto msg = std::make_shared<response>(std::move(res));
    bool close = !msg->keep_alive();
    stream_.expires_after(cfg_.read_timeout);
    http::async_write(stream_, *msg,
                      [self = shared_from_this(), msg, close](beast::error_code ec, std::size_t) {
                        self->on_write(close, ec);
                      });
  }

  void on_write(bool close, beast::error_code ec) {
    if (ec || close)
      return do_close();
    do_read();
  }

  /// Half-closes, then reads and discards what the client still sends (a body we
  /// refused, say) until it closes or the read timeout passes: closing with unread
  /// data would reset the connection and lose our answer.
  void do_close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec)
      return;
    drain_ = std::make_unique<char[]>(drain_size);
    do_drain();
  }

  void do_drain() {
    stream_.expires_after(cfg_.read_timeout);
    stream_.async_read_some(asio::buffer(drain_.get(), drain_size),
                            [self = shared_from_this()](beast::error_code ec, std::size_t) {
                              if (!ec)
                                self->do_drain();
                            });
  }

  static constexpr std::size_t read_buffer_size = 8 * 1024;
  static constexpr std::size_t drain_size = 16 * 1024;
  std::unique_ptr<char[]> drain_;

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  const config::server_config& cfg_;
  handler& handler_;
  std::shared_ptr<connection_count> count_;
  connection_slot slot_;
};

/// Accepts connections, at most `max_connections` at once. Each goes onto a strand of
/// the next I/O context in turn, and stays there.
class listener : public std::enable_shared_from_this<listener> {
public:
  listener(std::vector<std::unique_ptr<asio::io_context>>& contexts, tcp::endpoint endpoint,
           const config::server_config& cfg, handler& h)
    : contexts_{contexts}, acceptor_{asio::make_strand(*contexts.front())},
      retry_timer_{acceptor_.get_executor()}, cfg_{cfg}, handler_{h} {
    acceptor_.open(endpoint.protocol());
    acceptor_.set_option(asio::socket_base::reuse_address(true));
    acceptor_.bind(endpoint);
    acceptor_.listen(asio::socket_base::max_listen_connections);
    auto& m = support::metrics();
    m.set_gauge("buildtrack_http_connections", "Open HTTP connections.", this,
                [count = count_] { return static_cast<double>(count->open.load()); });
  }
  ~listener() { support::metrics().remove_gauges(this); }

  unsigned short port() const { return acceptor_.local_endpoint().port(); }

  void run() { do_accept(); }

  void close() {
    asio::post(acceptor_.get_executor(), [self = shared_from_this()] {
      beast::error_code ec;
      self->acceptor_.close(ec);
      self->retry_timer_.cancel();
    });
  }

private:
  void do_accept() {
    auto& next = *contexts_[next_context_++ % contexts_.size()];
    acceptor_.async_accept(asio::make_strand(next),
                           beast::bind_front_handler(&listener::on_accept, shared_from_this()));
  }

  void on_accept(beast::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted)
      return;
    if (ec) {
      // Out of descriptors (or memory) the same error comes back at once: accepting
      // again straight away spins a core. Wait, longer each time it repeats.
      backoff_ = std::clamp(backoff_ * 2, min_backoff, max_backoff);
      support::log(support::log_level::warn, "accept failed; pausing accepts",
                   {{"reason", ec.message()}, {"pause_ms", backoff_.count()}});
      static auto& failures = support::metrics().get_counter(
        "buildtrack_http_accept_failures_total", "Accepts that failed (e.g. out of descriptors).");
      failures.inc();
      retry_timer_.expires_after(backoff_);
      retry_timer_.async_wait([self = shared_from_this()](beast::error_code wait_ec) {
        if (!wait_ec)
          self->do_accept();
      });
      return;
    }
    backoff_ = std::chrono::milliseconds{0};
    if (count_->open.load(std::memory_order_relaxed) >= cfg_.max_connections)
      refuse(std::move(socket));
    else {
      beast::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      std::make_shared<http_session>(std::move(socket), cfg_, handler_, count_)->run();
    }
    do_accept();
  }

  /// Past `max_connections`: one 503 written without waiting (it fits in the socket's
  /// buffer; a client that reads nothing loses it), then the connection is closed.
  void refuse(tcp::socket socket) {
    static const std::string answer = [] {
      auto body = error_json("too_many_connections", "server.max_connections is reached");
      return "HTTP/1.1 503 Service Unavailable\r\nServer: buildtrack\r\n"
             "Content-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\n"
             "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    }();
    static auto& refused = support::metrics().get_counter(
      "buildtrack_http_connections_refused_total",
      "Connections closed at once because server.max_connections were open.");
    refused.inc();
    beast::error_code ec;
    socket.non_blocking(true, ec);
    socket.write_some(asio::buffer(answer), ec);
    socket.shutdown(tcp::socket::shutdown_both, ec);
    socket.close(ec);
  }

  static constexpr std::chrono::milliseconds min_backoff{5};
  static constexpr std::chrono::milliseconds max_backoff{1000};

  std::vector<std::unique_ptr<asio::io_context>>& contexts_;
  std::size_t next_context_ = 0;
  tcp::acceptor acceptor_;
  asio::steady_timer retry_timer_;
  std::chrono::milliseconds backoff_{0};
  std::shared_ptr<connection_count> count_ = std::make_shared<connection_count>();
  const config::server_config& cfg_;
  handler& handler_;
};

} // namespace

/// One I/O context per thread, each run by that thread alone: a connection's reads,
/// writes and timers never hand work to another thread, and no thread is woken for
/// work that its own loop posts (with one context shared by all threads, every
/// completion posted woke another thread, ~20 context switches per request).
struct server::impl {
  config::server_config cfg;
  handler& h;
  std::vector<std::unique_ptr<asio::io_context>> contexts;
  /// Keeps each context's `run()` going while it has no connection yet.
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> busy;
  std::shared_ptr<listener> accept;
  std::vector<std::thread> threads;

  impl(config::server_config c, handler& hd) : cfg{std::move(c)}, h{hd} {
    for (int i = 0; i < cfg.io_threads; ++i) {
      contexts.push_back(std::make_unique<asio::io_context>(1));
      busy.push_back(asio::make_work_guard(*contexts.back()));
    }
  }
};

server::server(config::server_config cfg, handler& h)
  : impl_{std::make_unique<impl>(std::move(cfg), h)} {
}

server::~server() {
  stop();
}

unsigned short server::start() {
  auto& listen = impl_->cfg.listen;
  auto colon = listen.rfind(':');
  auto host = listen.substr(0, colon);
  if (host.starts_with('[') && host.ends_with(']'))
    host = host.substr(1, host.size() - 2);
  beast::error_code ec;
  auto address = asio::ip::make_address(host, ec);
  if (ec)
    throw std::runtime_error{"server.listen: bad address '" + host + "'"};
  auto port = static_cast<unsigned short>(std::stoi(listen.substr(colon + 1)));
  try {
    impl_->accept = std::make_shared<listener>(impl_->contexts, tcp::endpoint{address, port},
                                               impl_->cfg, impl_->h);
  } catch (const boost::system::system_error& e) {
    throw std::runtime_error{"server.listen: cannot listen on " + listen + ": " + e.what()};
  }
  impl_->accept->run();
  for (auto& context : impl_->contexts)
    impl_->threads.emplace_back([&context = *context] { context.run(); });
  return impl_->accept->port();
}

void server::stop() {
  if (impl_->threads.empty())
    return;
  impl_->accept->close();
  for (auto& context : impl_->contexts)
    context->stop();
  for (auto& t : impl_->threads)
    t.join();
  impl_->threads.clear();
}

} // namespace bt::net
