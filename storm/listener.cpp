#include "storm/listener.hpp"

#include <optional>
#include <stdexcept>
#include <thread>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace bt::storm {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

struct http_listener::impl {
  struct session {
    explicit session(tcp::socket s) : stream{std::move(s)} {}
    beast::tcp_stream stream;
    beast::flat_buffer buffer;
    std::optional<http::request_parser<http::string_body>> req;
    http::response<http::string_body> res;
  };

  impl(const endpoint& at, handler h) : serve{std::move(h)}, acceptor{ioc} {
    try {
      auto where = tcp::resolver{ioc}.resolve(at.host, std::to_string(at.port)).begin()->endpoint();
      acceptor.open(where.protocol());
      acceptor.set_option(asio::socket_base::reuse_address(true));
      acceptor.bind(where);
      acceptor.listen();
    } catch (const std::exception& e) {
      throw std::runtime_error{"cannot listen on " + at.host + ":" + std::to_string(at.port) + ": " + e.what()};
    }
    do_accept();
    thread = std::thread{[this] { ioc.run(); }};
  }
  ~impl() {
    ioc.stop();
    thread.join();
  }

  void do_accept() {
    acceptor.async_accept([this](beast::error_code ec, tcp::socket socket) {
      if (!ec)
        do_read(std::make_shared<session>(std::move(socket)));
      do_accept();
    });
  }

  void do_read(const std::shared_ptr<session>& s) {
    s->req.emplace();
    s->req->body_limit(16 * 1024 * 1024);
    s->stream.expires_after(std::chrono::minutes{1});
    http::async_read(s->stream, s->buffer, *s->req,
                     [this, s](beast::error_code ec, std::size_t) { on_read(s, ec); });
  }

  void on_read(const std::shared_ptr<session>& s, beast::error_code ec) {
    if (ec)
      return;
    auto& req = s->req->get();
    auto [status, body] = serve({std::string{req.method_string()}, std::string{req.target()},
                                 std::string{req["X-Buildtrack-Delivery"]}, req.body()});
    s->res = {};
    s->res.result(status);
    s->res.version(11);
    s->res.set(http::field::content_type, "application/json");
    s->res.body() = std::move(body);
    s->res.keep_alive(req.keep_alive());
    s->res.prepare_payload();
    http::async_write(s->stream, s->res, [this, s](beast::error_code ec, std::size_t) {
      if (!ec && s->res.keep_alive())
        return do_read(s);
      beast::error_code ignored;
      s->stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    });
  }

  handler serve;
  asio::io_context ioc;
  tcp::acceptor acceptor;
  std::thread thread;
};

http_listener::http_listener(const endpoint& at, handler h) : impl_{std::make_unique<impl>(at, std::move(h))} {}
http_listener::~http_listener() = default;

unsigned short http_listener::port() const { return impl_->acceptor.local_endpoint().port(); }

} // namespace bt::storm
