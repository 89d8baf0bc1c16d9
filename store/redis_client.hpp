#pragma once

#include <chrono>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

struct redisContext;

namespace bt::store {

/// Where a Redis server is: `redis://[[user]:password@]host[:port][/db]`.
struct redis_endpoint {
  std::string host = "127.0.0.1";
  int port = 6379;
  int db = 0;
  std::string user;
  std::string password;
};

/// Parses a redis:// URL; nothing when it is malformed.
std::optional<redis_endpoint> parse_redis_url(std::string_view url);

/// One Redis reply, copied out of hiredis.
struct redis_reply {
  enum kind_t { nil, integer, string, status, error, array } kind = nil;
  long long number = 0;
  std::string text; ///< string, status or error text
  std::vector<redis_reply> elements;
};

using redis_command = std::vector<std::string>;
/// A command whose arguments are views into strings the caller keeps for the call:
/// the exchange's payloads are not copied into a command of their own.
using redis_command_view = std::vector<std::string_view>;

namespace detail {
/// One piece of a pipeline to write: `length` bytes of the pipeline's text from
/// `offset`, or of an argument the caller keeps (`data`).
struct resp_piece {
  const char* data = nullptr;
  std::size_t offset = 0;
  std::size_t length = 0;
};
} // namespace detail

/// A blocking connection that sends many commands in one round trip: it writes them
/// in Redis's protocol itself (large arguments straight from the caller's strings)
/// and lets hiredis read the replies. One owner at a time (not thread-safe). Failures are values; after an I/O failure the
/// connection is dropped and the next call reconnects.
class redis_client {
public:
  redis_client(redis_endpoint endpoint, std::chrono::milliseconds timeout);
  ~redis_client();
  redis_client(const redis_client&) = delete;
  redis_client& operator=(const redis_client&) = delete;

  /// Connects, authenticates and selects the database unless connected already.
  /// Returns why it could not.
  std::optional<std::string> connect();
  bool connected() const { return context_ != nullptr; }

  /// Sends every command, then reads every reply, in order. A command Redis refuses
  /// yields an `error` reply; a lost connection fails the whole call. An `idempotent`
  /// call that fails on a connection left over from before (Redis restarted since)
  /// is sent once more on a fresh one.
  std::variant<std::vector<redis_reply>, std::string>
  pipeline(std::span<const redis_command> commands, bool idempotent = false);
  /// The same, for commands that view their arguments.
  std::variant<std::vector<redis_reply>, std::string>
  pipeline(std::span<const redis_command_view> commands, bool idempotent = false);
  /// The same, for a braced list of commands.
  std::variant<std::vector<redis_reply>, std::string>
  pipeline(const std::vector<redis_command>& commands, bool idempotent = false) {
    return pipeline(std::span<const redis_command>{commands}, idempotent);
  }

private:
  void disconnect();
  template <class Command>
  std::variant<std::vector<redis_reply>, std::string>
  run(std::span<const Command> commands, bool idempotent);
  template <class Command>
  std::variant<std::vector<redis_reply>, std::string> send(std::span<const Command> commands);

  redis_endpoint endpoint_;
  std::chrono::milliseconds timeout_;
  redisContext* context_ = nullptr;
  /// The pipeline being sent, in Redis's protocol, but for large arguments, and the
  /// pieces to write; kept between calls up to `kept_capacity`, so that small
  /// pipelines do not allocate them each time.
  std::string formatted_;
  std::vector<detail::resp_piece> pieces_;
  static constexpr std::size_t kept_capacity = 64 * 1024;
};

} // namespace bt::store
