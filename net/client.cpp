#include "net/client.hpp"

#include <thread>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

namespace bt::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

std::optional<url_parts> parse_url(std::string_view url) {
  url_parts out;
  if (url.starts_with("https://")) {
    url.remove_prefix(8);
  } else if (url.starts_with("http://")) {
    out.tls = false;
    url.remove_prefix(7);
  } else {
    return std::nullopt;
  }
  auto slash = url.find('/');
  auto authority = url.substr(0, slash);
  out.target = slash == std::string_view::npos ? "/" : std::string{url.substr(slash)};
  std::string_view port;
  if (authority.starts_with('[')) { // IPv6 literal
    auto close = authority.find(']');
    if (close == std::string_view::npos)
      return std::nullopt;
    out.host = std::string{authority.substr(1, close - 1)};
    auto rest = authority.substr(close + 1);
    if (!rest.empty() && !rest.starts_with(':'))
      return std::nullopt;
    port = rest.empty() ? "" : rest.substr(1);
  } else {
    auto colon = authority.rfind(':');
    out.host = std::string{authority.substr(0, colon)};
    port = colon == std::string_view::npos ? "" : authority.substr(colon + 1);
  }
  if (out.host.empty() || authority.find('@') != std::string_view::npos)
    return std::nullopt;
  if (port.empty())
    out.port = out.tls ? "443" : "80";
  else if (port.size() <= 5 && port.find_first_not_of("0123456789") == std::string_view::npos)
    out.port = std::string{port};
  else
    return std::nullopt;
  return out;
}

std::string percent_encode(std::string_view s, std::string_view keep) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
                      || c == '-' || c == '.' || c == '_' || c == '~';
    if (unreserved || keep.find(static_cast<char>(c)) != std::string_view::npos)
      out += static_cast<char>(c);
    else
      out += {'%', hex[c >> 4], hex[c & 15]};
  }
  return out;
}

bool is_loopback_host(std::string_view host) {
  if (host == "localhost" || host == "::1")
    return true;
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(std::string{host}, ec);
  return !ec && addr.is_loopback();
}

namespace {

constexpr std::size_t response_limit = 1024 * 1024;

/// One request on one connection: resolve, connect, (handshake), write, read.
/// `Stream` is beast::tcp_stream or beast::ssl_stream<beast::tcp_stream>.
template <class Stream>
class exchange : public std::enable_shared_from_this<exchange<Stream>> {
public:
  template <class... StreamArgs>
  exchange(asio::io_context& ioc, url_parts url, outbound_request req,
           std::chrono::milliseconds timeout, http_client::callback done, StreamArgs&&... args)
    : resolver_{asio::make_strand(ioc)},
      stream_{resolver_.get_executor(), std::forward<StreamArgs>(args)...},
      url_{std::move(url)},
      timeout_{timeout},
      done_{std::move(done)} {
    req_.method_string(req.method);
    req_.target(url_.target);
    req_.version(11);
    req_.set(http::field::host, url_.host);
    req_.set(http::field::user_agent, "buildtrack");
    for (auto& [name, value] : req.headers)
      req_.set(name, value);
    req_.body() = std::move(req.body);
    req_.prepare_payload();
    req_.keep_alive(false);
    parser_.body_limit(response_limit);
  }

  /// Starts the exchange on its own strand.
  void run() {
    asio::dispatch(resolver_.get_executor(),
                   beast::bind_front_handler(&exchange::do_resolve, this->shared_from_this()));
  }

private:
  static constexpr bool tls = !std::is_same_v<Stream, beast::tcp_stream>;

  void do_resolve() {
    if constexpr (tls) {
      // SNI, and the certificate must name the host we asked for.
      if (!SSL_set_tlsext_host_name(stream_.native_handle(), url_.host.c_str()))
        return fail("cannot set TLS server name");
      stream_.set_verify_callback(ssl::host_name_verification(url_.host));
    }
    lowest().expires_after(timeout_);
    resolver_.async_resolve(url_.host, url_.port,
                            beast::bind_front_handler(&exchange::on_resolve, this->shared_from_this()));
  }

  beast::tcp_stream& lowest() { return beast::get_lowest_layer(stream_); }

  void on_resolve(beast::error_code ec, tcp::resolver::results_type results) {
    if (ec)
      return fail("resolve: " + ec.message());
    lowest().async_connect(results,
                           beast::bind_front_handler(&exchange::on_connect, this->shared_from_this()));
  }

  void on_connect(beast::error_code ec, tcp::resolver::results_type::endpoint_type) {
    if (ec)
      return fail("connect: " + ec.message());
    if constexpr (tls)
      stream_.async_handshake(ssl::stream_base::client,
                              beast::bind_front_handler(&exchange::on_handshake,
                                                        this->shared_from_this()));
    else
      do_write();
  }

  void on_handshake(beast::error_code ec) {
    if (ec)
      return fail("TLS handshake: " + ec.message());
    do_write();
  }

  void do_write() {
    http::async_write(stream_, req_,
                      beast::bind_front_handler(&exchange::on_write, this->shared_from_this()));
  }

  void on_write(beast::error_code ec, std::size_t) {
    if (ec)
      return fail("write: " + ec.message());
    http::async_read(stream_, buffer_, parser_,
                     beast::bind_front_handler(&exchange::on_read, this->shared_from_this()));
  }

  void on_read(beast::error_code ec, std::size_t) {
    if (ec)
      return fail("read: " + ec.message());
    auto& res = parser_.get();
    inbound_response out;
    out.status = static_cast<int>(res.result_int());
    out.body = std::move(res.body());
    if (auto it = res.find(http::field::retry_after); it != res.end())
      out.retry_after = std::string{it->value()};
    // The server closes after answering (keep_alive false): no graceful shutdown needed.
    beast::error_code ignored;
    lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
    done_(std::move(out));
  }

  void fail(std::string why) {
    inbound_response out;
    out.error = std::move(why);
    done_(std::move(out));
  }

  tcp::resolver resolver_;
  Stream stream_;
  url_parts url_;
  std::chrono::milliseconds timeout_;
  http_client::callback done_;
  http::request<http::string_body> req_;
  beast::flat_buffer buffer_;
  http::response_parser<http::string_body> parser_;
};

} // namespace

struct http_client::impl {
  asio::io_context ioc{1};
  asio::executor_work_guard<asio::io_context::executor_type> work{ioc.get_executor()};
  ssl::context tls{ssl::context::tls_client};
  std::thread thread;

  impl() {
    tls.set_default_verify_paths();
    tls.set_verify_mode(ssl::verify_peer);
    tls.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2
                    | ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    thread = std::thread{[this] { ioc.run(); }};
  }

  ~impl() {
    work.reset();
    ioc.stop();
    thread.join();
  }
};

http_client::http_client() : impl_{std::make_unique<impl>()} {
}

http_client::~http_client() = default;

void http_client::send(outbound_request req, std::chrono::milliseconds timeout, callback done) {
  auto url = parse_url(req.url);
  if (!url) {
    inbound_response out;
    out.error = "not an http(s) URL";
    done(std::move(out));
    return;
  }
  if (url->tls)
    std::make_shared<exchange<beast::ssl_stream<beast::tcp_stream>>>(
      impl_->ioc, std::move(*url), std::move(req), timeout, std::move(done), impl_->tls)
      ->run();
  else
    std::make_shared<exchange<beast::tcp_stream>>(impl_->ioc, std::move(*url), std::move(req),
                                                  timeout, std::move(done))
      ->run();
}

} // namespace bt::net
