// The floor: a Beast HTTP server that reads each request and answers 202 with a
// fixed body, doing no other work. Kept independent of net/ on purpose, so the
// ratio also measures buildtrack's own server code.
#include <iostream>
#include <memory>
#include <thread>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

class session : public std::enable_shared_from_this<session> {
public:
  explicit session(tcp::socket s) : stream_{std::move(s)} {
    buffer_.reserve(8 * 1024); // as net/server.cpp: one read for a typical request
  }

  void read() {
    req_ = {};
    http::async_read(stream_, buffer_, req_,
                     [self = shared_from_this()](beast::error_code ec, std::size_t) {
                       if (!ec)
                         self->answer();
                     });
  }

private:
  void answer() {
    res_ = {http::status::accepted, req_.version()};
    res_.set(http::field::content_type, "application/json");
    res_.keep_alive(req_.keep_alive());
    res_.body() = R"({"accepted":1})";
    res_.prepare_payload();
    http::async_write(stream_, res_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (!ec)
        self->read();
    });
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  http::request<http::string_body> req_;
  http::response<http::string_body> res_;
};

void accept(tcp::acceptor& acceptor, asio::io_context& ioc) {
  acceptor.async_accept(asio::make_strand(ioc), [&](beast::error_code ec, tcp::socket s) {
    if (!ec) {
      s.set_option(tcp::no_delay(true));
      std::make_shared<session>(std::move(s))->read();
    }
    accept(acceptor, ioc);
  });
}

} // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: bare_server PORT THREADS\n";
    return 2;
  }
  auto threads = std::stoi(argv[2]);
  asio::io_context ioc{threads};
  tcp::acceptor acceptor{ioc, {asio::ip::make_address("127.0.0.1"),
                               static_cast<unsigned short>(std::stoi(argv[1]))}};
  accept(acceptor, ioc);
  std::vector<std::thread> pool;
  for (int i = 1; i < threads; ++i)
    pool.emplace_back([&] { ioc.run(); });
  ioc.run();
}
