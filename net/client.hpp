#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace bt::net {

/// An outbound HTTP request.
struct outbound_request {
  std::string method = "POST";
  std::string url; ///< https://host[:port]/path, or http:// (loopback only, by config)
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

/// What came back. `status` is 0 when no answer came (then `error` says why).
struct inbound_response {
  int status = 0;
  std::string error;
  std::string body;
  std::optional<std::string> retry_after; ///< the Retry-After header, when sent
};

/// The parts of an http(s) URL. Nothing when it is not one.
struct url_parts {
  bool tls = true;
  std::string host;
  std::string port;
  std::string target; ///< path and query, at least "/"
};
std::optional<url_parts> parse_url(std::string_view url);

/// `s` with every byte other than RFC 3986's unreserved ones (letters, digits, `-._~`)
/// and those in `keep` as `%XX`: a path segment, or with `keep` "/" a path.
std::string percent_encode(std::string_view s, std::string_view keep = {});

/// True for hosts that never leave this machine: localhost, 127.0.0.0/8, ::1.
bool is_loopback_host(std::string_view host);

/// How long an idle keep-alive connection is kept, and how many per origin.
struct connection_reuse {
  std::chrono::milliseconds idle_timeout{30'000};
  std::size_t max_idle_per_origin = 32;
};

/// An asynchronous HTTP/1.1 client on its own I/O thread. Connections are kept alive
/// and reused per origin (scheme, host, port) while the server allows it; an idle one
/// closes after `connection_reuse::idle_timeout`. A request that fails on a reused
/// connection before any byte of an answer came (the server closed it meanwhile) is
/// sent once more on a new connection, so a receiver may see it twice, as with any
/// retry: deliveries carry an id for that. TLS verifies the peer's certificate chain and
/// host name against the system's trust store. Bodies of answers are capped at 1 MiB.
class http_client {
public:
  using callback = std::function<void(inbound_response)>;

  explicit http_client(connection_reuse reuse = {});
  /// Stops the I/O thread; the callbacks of requests still in flight never run.
  ~http_client();
  http_client(const http_client&) = delete;
  http_client& operator=(const http_client&) = delete;

  /// Sends `req`; `done` runs once on the client's thread, after at most `timeout`.
  void send(outbound_request req, std::chrono::milliseconds timeout, callback done);

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace bt::net
