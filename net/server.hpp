#pragma once

#include <functional>
#include <memory>

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include "config/config.hpp"

namespace bt::net {

using request = boost::beast::http::request<boost::beast::http::string_body>;
using response = boost::beast::http::response<boost::beast::http::string_body>;
/// Completes a request; call exactly once, from any thread.
using responder = std::function<void(response)>;

/// What the server does with a request. No I/O of its own; may answer later.
class handler {
public:
  virtual ~handler() = default;
  virtual void handle(request&& req, responder respond) = 0;
};

/// A Beast HTTP/1.1 server: keep-alive, a strand per connection, `body_limit`
/// (413), header limit (431) and read timeouts against slow clients.
class server {
public:
  server(config::server_config cfg, handler& h);
  ~server();
  /// Binds `cfg.listen` and starts `cfg.io_threads` threads; returns the bound port
  /// (useful with port 0). Throws std::runtime_error when it cannot bind.
  unsigned short start();
  /// Stops accepting, closes connections and joins the threads.
  void stop();

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// A JSON response with the right headers.
response json_response(unsigned status, std::string body, unsigned version = 11,
                       bool keep_alive = true);

} // namespace bt::net
