#include "net/client.hpp"

#include <map>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
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
using steady = std::chrono::steady_clock;

/// True while nothing arrived on an idle connection: neither its close (end of
/// stream) nor any bytes (an answer nobody asked for, or TLS's close_notify).
bool still_idle(tcp::socket& socket) {
  char byte;
  beast::error_code ec;
  socket.non_blocking(true, ec);
  socket.receive(asio::buffer(&byte, 1), tcp::socket::message_peek, ec);
  beast::error_code ignored;
  socket.non_blocking(false, ignored);
  return ec == asio::error::would_block;
}

/// Where an origin's connections come from: new ones, and idle keep-alive ones kept
/// by origin. Used on the client's thread only.
template <class Stream>
class connection_pool {
public:
  using make_stream = std::function<std::unique_ptr<Stream>()>;

  connection_pool(connection_reuse reuse, asio::io_context& ioc, make_stream make)
    : reuse_{reuse}, sweep_{ioc}, make_{std::move(make)} {}

  /// A new, unconnected stream.
  std::unique_ptr<Stream> open() const { return make_(); }

  /// The connection used last for `origin` that is still open; null when none.
  std::unique_ptr<Stream> take(const std::string& origin) {
    auto it = idle_.find(origin);
    if (it == idle_.end())
      return nullptr;
    auto& list = it->second;
    std::unique_ptr<Stream> found;
    while (!list.empty() && !found) {
      auto candidate = std::move(list.back().stream);
      list.pop_back();
      if (still_idle(beast::get_lowest_layer(*candidate).socket()))
        found = std::move(candidate);
    }
    if (list.empty())
      idle_.erase(it);
    return found;
  }

  /// Keeps `stream` for the next request to `origin`, or closes it when the origin
  /// has enough idle ones.
  void put(const std::string& origin, std::unique_ptr<Stream> stream) {
    auto& list = idle_[origin];
    if (list.size() >= reuse_.max_idle_per_origin)
      return; // destroying it closes it
    beast::get_lowest_layer(*stream).expires_never();
    list.push_back({std::move(stream), steady::now()});
    arm_sweep();
  }

private:
  struct idle {
    std::unique_ptr<Stream> stream;
    steady::time_point since;
  };

  /// Closes connections idle for longer than the timeout, while any are kept.
  void arm_sweep() {
    if (sweep_armed_)
      return;
    sweep_armed_ = true;
    sweep_.expires_after(reuse_.idle_timeout / 2 + std::chrono::milliseconds{1});
    sweep_.async_wait([this](beast::error_code ec) {
      sweep_armed_ = false;
      if (ec)
        return;
      auto oldest = steady::now() - reuse_.idle_timeout;
      for (auto it = idle_.begin(); it != idle_.end();) {
        std::erase_if(it->second, [&](const idle& c) { return c.since <= oldest; });
        it = it->second.empty() ? idle_.erase(it) : std::next(it);
      }
      if (!idle_.empty())
        arm_sweep();
    });
  }

  connection_reuse reuse_;
  asio::steady_timer sweep_;
  make_stream make_;
  bool sweep_armed_ = false;
  std::map<std::string, std::vector<idle>> idle_;
};

/// One request: on a kept connection of its origin when there is one, else resolve,
/// connect, (handshake); then write and read. `Stream` is beast::tcp_stream or
/// beast::ssl_stream<beast::tcp_stream>. Runs on the client's one thread.
template <class Stream>
class exchange : public std::enable_shared_from_this<exchange<Stream>> {
public:
  exchange(asio::io_context& ioc, connection_pool<Stream>& pool, url_parts url,
           outbound_request req, std::chrono::milliseconds timeout, http_client::callback done)
    : resolver_{ioc},
      pool_{pool},
      url_{std::move(url)},
      origin_{(tls ? "https://" : "http://") + url_.host + ":" + url_.port},
      deadline_{steady::now() + timeout},
      done_{std::move(done)} {
    req_.method_string(req.method);
    req_.target(url_.target);
    req_.version(11);
    req_.set(http::field::host, url_.host);
    req_.set(http::field::user_agent, "buildtrack");
    for (auto& [name, value] : req.headers)
      req_.set(name, value);
    req_.body() = std::move(req.body);
    req_.keep_alive(true);
    req_.prepare_payload();
  }

  /// Starts the exchange; call on the client's thread.
  void run() {
    stream_ = pool_.take(origin_);
    reused_ = stream_ != nullptr;
    if (!reused_)
      return do_resolve();
    lowest().expires_at(deadline_);
    do_write();
  }

private:
  static constexpr bool tls = !std::is_same_v<Stream, beast::tcp_stream>;

  void do_resolve() {
    stream_ = pool_.open();
    if constexpr (tls) {
      // SNI, and the certificate must name the host we asked for.
      if (!SSL_set_tlsext_host_name(stream_->native_handle(), url_.host.c_str()))
        return fail("cannot set TLS server name");
      stream_->set_verify_callback(ssl::host_name_verification(url_.host));
    }
    lowest().expires_at(deadline_);
    resolver_.async_resolve(url_.host, url_.port,
                            beast::bind_front_handler(&exchange::on_resolve, this->shared_from_this()));
  }

  beast::tcp_stream& lowest() { return beast::get_lowest_layer(*stream_); }

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
      stream_->async_handshake(ssl::stream_base::client,
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
    parser_.emplace();
    parser_->body_limit(response_limit);
    buffer_.clear();
    http::async_write(*stream_, req_,
                      beast::bind_front_handler(&exchange::on_write, this->shared_from_this()));
  }

  void on_write(beast::error_code ec, std::size_t) {
    if (ec)
      return again_or_fail("write: " + ec.message());
    http::async_read(*stream_, buffer_, *parser_,
                     beast::bind_front_handler(&exchange::on_read, this->shared_from_this()));
  }

  void on_read(beast::error_code ec, std::size_t) {
    if (ec)
      return parser_->got_some() ? fail("read: " + ec.message())
                                 : again_or_fail("read: " + ec.message());
    auto& res = parser_->get();
    inbound_response out;
    out.status = static_cast<int>(res.result_int());
    out.body = std::move(res.body());
    if (auto it = res.find(http::field::retry_after); it != res.end())
      out.retry_after = std::string{it->value()};
    if (res.keep_alive()) {
      pool_.put(origin_, std::move(stream_));
    } else {
      beast::error_code ignored;
      lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
    }
    done_(std::move(out));
  }

  /// A kept connection the server closed meanwhile is no answer: once more on a new
  /// one, within the same deadline.
  void again_or_fail(std::string why) {
    if (!std::exchange(reused_, false) || steady::now() >= deadline_)
      return fail(std::move(why));
    do_resolve();
  }

  void fail(std::string why) {
    inbound_response out;
    out.error = std::move(why);
    done_(std::move(out));
  }

  tcp::resolver resolver_;
  connection_pool<Stream>& pool_;
  url_parts url_;
  std::string origin_;
  steady::time_point deadline_;
  http_client::callback done_;
  std::unique_ptr<Stream> stream_;
  bool reused_ = false;
  http::request<http::string_body> req_;
  beast::flat_buffer buffer_;
  std::optional<http::response_parser<http::string_body>> parser_;
};

/// Starts an exchange on the client's thread, where its origin's pool lives.
template <class Stream>
void post_exchange(asio::io_context& ioc, connection_pool<Stream>& pool, url_parts url,
                   outbound_request req, std::chrono::milliseconds timeout,
                   http_client::callback done) {
  auto x = std::make_shared<exchange<Stream>>(ioc, pool, std::move(url), std::move(req), timeout,
                                              std::move(done));
  asio::post(ioc, [x] { x->run(); });
}

} // namespace

struct http_client::impl {
  using plain_stream = beast::tcp_stream;
  using tls_stream = beast::ssl_stream<beast::tcp_stream>;

  asio::io_context ioc{1};
  asio::executor_work_guard<asio::io_context::executor_type> work{ioc.get_executor()};
  ssl::context tls{ssl::context::tls_client};
  // After the io_context: kept connections close before it goes.
  connection_pool<plain_stream> plain_pool;
  connection_pool<tls_stream> tls_pool;
  std::thread thread;

  explicit impl(connection_reuse reuse)
    : plain_pool{reuse, ioc, [this] { return std::make_unique<plain_stream>(ioc.get_executor()); }},
      tls_pool{reuse, ioc, [this] { return std::make_unique<tls_stream>(ioc.get_executor(), tls); }} {
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

http_client::http_client(connection_reuse reuse) : impl_{std::make_unique<impl>(reuse)} {
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
  auto& m = *impl_;
  if (url->tls)
    post_exchange(m.ioc, m.tls_pool, std::move(*url), std::move(req), timeout, std::move(done));
  else
    post_exchange(m.ioc, m.plain_pool, std::move(*url), std::move(req), timeout, std::move(done));
}

} // namespace bt::net
