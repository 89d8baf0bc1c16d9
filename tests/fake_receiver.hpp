#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

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
  };
  /// Decides the answer to the request; `n` counts requests from 0.
  using answer_fn = std::function<answer_t(const request&, std::size_t n)>;

  fake_receiver(unsigned short port, answer_fn answer) : port_{port}, answer_{std::move(answer)} {
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

private:
  void serve() {
    namespace beast = boost::beast;
    namespace http = beast::http;
    while (running_) {
      boost::system::error_code ec;
      boost::asio::ip::tcp::socket socket{ioc_};
      acceptor_->accept(socket, ec);
      if (ec || !running_)
        continue;
      beast::flat_buffer buffer;
      http::request<http::string_body> req;
      http::read(socket, buffer, req, ec);
      if (ec)
        continue;
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
      http::response<http::string_body> res{static_cast<http::status>(a.status), 11};
      res.set(http::field::content_type, "application/json");
      for (auto& [k, v] : a.headers)
        res.set(k, v);
      res.body() = a.body;
      res.keep_alive(false);
      res.prepare_payload();
      http::write(socket, res, ec);
      socket.shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
    }
  }

  unsigned short port_;
  answer_fn answer_;
  boost::asio::io_context ioc_;
  std::optional<boost::asio::ip::tcp::acceptor> acceptor_;
  std::thread thread_;
  std::atomic<bool> running_{false};
  mutable std::mutex mutex_;
  std::vector<request> requests_;
};

} // namespace bt::test
