#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <sys/socket.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace bt::test {

/// A local HTTP receiver standing in for Slack or a webhook consumer: it records every
/// request and answers what the test's `answer` function says. stop() closes the
/// port (connections are refused) and start() opens it again: an outage.
class fake_receiver {
public:
  struct request {
    std::string target;
    std::map<std::string, std::string> headers;
    std::string body;
    std::chrono::steady_clock::time_point at;
  };
  struct answer_t {
    unsigned status = 200;
    std::string body = "{}";
    std::map<std::string, std::string> headers;
    /// What the connection does after: by default it is closed after the answer,
    /// unless the receiver keeps connections alive.
    enum class then { as_configured, close_unannounced, drop_unanswered } after = then::as_configured;
  };
  /// Decides the answer to the request; `n` counts requests from 0. Calls may come
  /// from several threads at once (one per connection).
  using answer_fn = std::function<answer_t(const request&, std::size_t n)>;

  /// With `keep_alive`, a connection serves requests until the client closes it (as
  /// most servers do); without, each answer says "Connection: close".
  fake_receiver(unsigned short port, answer_fn answer, bool keep_alive = false)
    : port_{port}, answer_{std::move(answer)}, keep_alive_{keep_alive} {
    start();
  }
  ~fake_receiver() { stop(); }

  void start() {
    namespace asio = boost::asio;
    acceptor_.emplace(ioc_);
    asio::ip::tcp::endpoint at{asio::ip::make_address("127.0.0.1"), port_};
    acceptor_->open(at.protocol());
    acceptor_->set_option(asio::socket_base::reuse_address{true});
    acceptor_->bind(at);
    acceptor_->listen();
    running_ = true;
    thread_ = std::thread{[this] { serve(); }};
  }

  void stop() {
    if (!running_)
      return;
    running_ = false;
    boost::system::error_code ec;
    // Wakes the blocking accept.
    boost::asio::ip::tcp::socket poke{ioc_};
    poke.connect({boost::asio::ip::make_address("127.0.0.1"), port_}, ec);
    thread_.join();
    acceptor_->close(ec);
    acceptor_.reset();
  }

  std::vector<request> requests() const {
    std::lock_guard guard{mutex_};
    return requests_;
  }
  std::size_t count() const {
    std::lock_guard guard{mutex_};
    return requests_.size();
  }
  unsigned short port() const { return port_; }
  /// Connections accepted, and those since closed (by either side).
  std::size_t connections() const { return connections_; }
  std::size_t closed_connections() const { return closed_; }

private:
  /// Accepts connections and answers each on a thread of its own: a slow answer
  /// does not hold up the others, as with a real server.
  void serve() {
    struct worker {
      std::thread thread;
      std::shared_ptr<boost::asio::ip::tcp::socket> socket;
      std::shared_ptr<std::atomic<bool>> done = std::make_shared<std::atomic<bool>>(false);
    };
    std::vector<worker> workers;
    while (running_) {
      auto socket = std::make_shared<boost::asio::ip::tcp::socket>(ioc_);
      boost::system::error_code ec;
      acceptor_->accept(*socket, ec);
      // Those that finished are joined as new ones come: a storm leaves few behind.
      std::erase_if(workers, [](worker& w) {
        if (!*w.done)
          return false;
        w.thread.join();
        return true;
      });
      if (ec || !running_)
        continue;
      ++connections_;
      worker w;
      w.socket = socket;
      w.thread = std::thread{[this, socket, done = w.done] {
        while (answer(*socket)) {
        }
        // Shut down, not closed: the descriptor lives until serve() joins this thread.
        ::shutdown(socket->native_handle(), SHUT_RDWR);
        ++closed_;
        *done = true;
      }};
      workers.push_back(std::move(w));
    }
    // Kept-alive connections wait for their next request: an outage ends them.
    for (auto& w : workers) {
      ::shutdown(w.socket->native_handle(), SHUT_RDWR);
      w.thread.join();
    }
  }

  /// Reads and answers one request; true when the connection stays open for the next.
  bool answer(boost::asio::ip::tcp::socket& socket) {
    namespace beast = boost::beast;
    namespace http = beast::http;
    boost::system::error_code ec;
    beast::flat_buffer buffer;
    http::request<http::string_body> req;
    http::read(socket, buffer, req, ec);
    if (ec)
      return false;
    request r{std::string{req.target()}, {}, req.body(), std::chrono::steady_clock::now()};
    for (auto& h : req)
      r.headers[std::string{h.name_string()}] = std::string{h.value()};
    std::size_t n;
    {
      std::lock_guard guard{mutex_};
      n = requests_.size();
      requests_.push_back(r);
    }
    auto a = answer_(r, n);
    if (a.after == answer_t::then::drop_unanswered)
      return false;
    http::response<http::string_body> res{static_cast<http::status>(a.status), 11};
    res.set(http::field::content_type, "application/json");
    for (auto& [k, v] : a.headers)
      res.set(k, v);
    res.body() = a.body;
    bool keep = keep_alive_ && req.keep_alive();
    res.keep_alive(keep || a.after == answer_t::then::close_unannounced);
    res.prepare_payload();
    http::write(socket, res, ec);
    if (!ec && keep && a.after == answer_t::then::as_configured)
      return true;
    socket.shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
    return false;
  }

  unsigned short port_;
  answer_fn answer_;
  bool keep_alive_;
  std::atomic<std::size_t> connections_{0};
  std::atomic<std::size_t> closed_{0};
  boost::asio::io_context ioc_;
  std::optional<boost::asio::ip::tcp::acceptor> acceptor_;
  std::thread thread_;
  std::atomic<bool> running_{false};
  mutable std::mutex mutex_;
  std::vector<request> requests_;
};

} // namespace bt::test
