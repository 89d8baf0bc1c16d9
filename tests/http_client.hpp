#pragma once

#include <map>
#include <string>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace bt::test {

/// A blocking HTTP/1.1 keep-alive client for tests.
class http_client {
public:
  struct reply {
    unsigned status = 0;
    std::string body;
    std::map<std::string, std::string> headers;
  };

  explicit http_client(unsigned short port) : stream_{ioc_} {
    stream_.connect(boost::asio::ip::tcp::endpoint{boost::asio::ip::make_address("127.0.0.1"),
                                                   port});
  }

  reply send(boost::beast::http::verb method, const std::string& target, std::string body = "",
             const std::map<std::string, std::string>& headers = {}) {
    namespace http = boost::beast::http;
    http::request<http::string_body> req{method, target, 11};
    req.set(http::field::host, "127.0.0.1");
    if (method == http::verb::post)
      req.set(http::field::content_type, "application/json");
    for (auto& [k, v] : headers)
      req.set(k, v);
    req.body() = std::move(body);
    req.prepare_payload();
    http::write(stream_, req);
    boost::beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(64 * 1024 * 1024);
    http::read(stream_, buffer, parser);
    auto res = parser.release();
    reply out{res.result_int(), res.body(), {}};
    for (auto& h : res)
      out.headers[std::string{h.name_string()}] = std::string{h.value()};
    return out;
  }

  reply get(const std::string& target, const std::map<std::string, std::string>& headers = {}) {
    return send(boost::beast::http::verb::get, target, "", headers);
  }

  reply post(const std::string& target, std::string body,
             const std::map<std::string, std::string>& headers) {
    return send(boost::beast::http::verb::post, target, std::move(body), headers);
  }

  boost::beast::tcp_stream& stream() { return stream_; }

private:
  boost::asio::io_context ioc_;
  boost::beast::tcp_stream stream_;
};

} // namespace bt::test
