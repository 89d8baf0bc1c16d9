#pragma once

#include <chrono>
#include <optional>
#include <string>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

namespace bt::test {

/// A WebSocket client for tests: Beast's, on its own io_context run by the calling
/// thread, every wait bounded.
class ws_client {
public:
  /// Connects to 127.0.0.1:`port` and upgrades `target`; a refused upgrade leaves
  /// the client closed with the refusal's status and body.
  ws_client(unsigned short port, const std::string& target, const std::string& authorization = "")
    : ws_{ioc_} {
    namespace beast = boost::beast;
    boost::asio::ip::tcp::endpoint at{boost::asio::ip::make_address("127.0.0.1"), port};
    beast::get_lowest_layer(ws_).expires_after(std::chrono::seconds{5});
    beast::get_lowest_layer(ws_).connect(at);
    ws_.set_option(beast::websocket::stream_base::decorator(
      [authorization](beast::websocket::request_type& req) {
        if (!authorization.empty())
          req.set(beast::http::field::authorization, authorization);
      }));
    beast::error_code ec;
    ws_.handshake("127.0.0.1", target, ec);
    beast::get_lowest_layer(ws_).expires_never();
    open_ = !ec;
    if (!open_)
      read_refusal(at, target, authorization);
  }

  bool open() const { return open_; }
  unsigned status = 101; ///< of a refused upgrade
  std::string body;      ///< of a refused upgrade

  /// The next text frame, or nothing when none came within `timeout` or the
  /// connection closed (then open() is false).
  std::optional<std::string> read(std::chrono::milliseconds timeout = std::chrono::seconds{5}) {
    namespace beast = boost::beast;
    if (!open_)
      return std::nullopt;
    std::optional<std::string> out;
    bool done = false;
    ws_.async_read(buffer_, [&](beast::error_code ec, std::size_t) {
      done = true;
      if (ec) {
        open_ = false;
        return;
      }
      out = beast::buffers_to_string(buffer_.data());
      buffer_.consume(buffer_.size());
    });
    ioc_.restart();
    ioc_.run_for(timeout);
    if (!done) {
      // Cancel the read, and wait for its handler: the buffer outlives it.
      beast::get_lowest_layer(ws_).cancel();
      ioc_.restart();
      ioc_.run();
      open_ = false; // a cancelled read leaves the stream unusable
    }
    return out;
  }

  /// Closes the connection at once (no close handshake, as a client that dies).
  void drop() {
    boost::beast::error_code ec;
    boost::beast::get_lowest_layer(ws_).socket().close(ec);
    open_ = false;
  }

private:
  /// Beast's handshake keeps a declined upgrade's answer to itself: ask again over
  /// plain HTTP, with the same upgrade headers, to see the status and body.
  void read_refusal(const boost::asio::ip::tcp::endpoint& at, const std::string& target,
                    const std::string& authorization) {
    namespace beast = boost::beast;
    namespace http = beast::http;
    beast::tcp_stream stream{ioc_};
    stream.expires_after(std::chrono::seconds{5});
    beast::error_code ec;
    stream.connect(at, ec);
    http::request<http::empty_body> req{http::verb::get, target, 11};
    req.set(http::field::host, "127.0.0.1");
    req.set(http::field::upgrade, "websocket");
    req.set(http::field::connection, "Upgrade");
    req.set(http::field::sec_websocket_key, "dGhlIHNhbXBsZSBub25jZQ==");
    req.set(http::field::sec_websocket_version, "13");
    if (!authorization.empty())
      req.set(http::field::authorization, authorization);
    http::write(stream, req, ec);
    beast::flat_buffer buffer;
    http::response<http::string_body> res;
    http::read(stream, buffer, res, ec);
    status = ec ? 0 : res.result_int();
    body = res.body();
  }

  boost::asio::io_context ioc_;
  boost::beast::websocket::stream<boost::beast::tcp_stream> ws_;
  boost::beast::flat_buffer buffer_;
  bool open_ = false;
};

} // namespace bt::test
