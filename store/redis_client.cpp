#include "store/redis_client.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstring>
#include <memory>

#include <sys/socket.h>
#include <sys/uio.h>

#include <hiredis/hiredis.h>

namespace bt::store {
namespace {

bool to_int(std::string_view s, int& out) {
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc{} && ptr == s.data() + s.size();
}

// hiredis builds each reply straight into a redis_reply through its reader's object
// functions, rather than into its own redisReply that was then copied: recovery
// reads every stored build, and that copy (with the page faults of its fresh
// strings) was ~14 % of a restart. A value inside an array lives in its parent's
// `elements`, sized when the array was read; only the outermost reply is allocated,
// and hiredis frees only that one (freeObject), on a protocol error or a lost
// connection. No exception may cross hiredis's C code: a failed allocation answers
// NULL, which hiredis reports as out of memory.

redis_reply* place(const redisReadTask* task) {
  if (!task->parent)
    return new redis_reply;
  auto* parent = static_cast<redis_reply*>(task->parent->obj);
  return &parent->elements[static_cast<size_t>(task->idx)];
}

template <class Fill>
void* create(const redisReadTask* task, Fill fill) noexcept {
  redis_reply* r = nullptr;
  try {
    r = place(task);
    fill(*r);
    return r;
  } catch (...) {
    if (!task->parent)
      delete r;
    return nullptr;
  }
}

void* create_string(const redisReadTask* task, char* str, size_t len) {
  return create(task, [&](redis_reply& r) {
    r.kind = task->type == REDIS_REPLY_ERROR    ? redis_reply::error
             : task->type == REDIS_REPLY_STATUS ? redis_reply::status
                                                : redis_reply::string;
    r.text.assign(str, len);
  });
}

void* create_array(const redisReadTask* task, int elements) {
  return create(task, [&](redis_reply& r) {
    r.kind = redis_reply::array;
    r.elements.resize(static_cast<size_t>(elements));
  });
}

void* create_integer(const redisReadTask* task, long long value) {
  return create(task, [&](redis_reply& r) {
    r.kind = redis_reply::integer;
    r.number = value;
  });
}

void* create_nil(const redisReadTask* task) {
  return create(task, [](redis_reply& r) { r.kind = redis_reply::nil; });
}

void free_reply(void* reply) {
  delete static_cast<redis_reply*>(reply);
}

redisReplyObjectFunctions reply_functions{create_string, create_array, create_integer, create_nil,
                                          free_reply};

void append_count(std::string& out, char tag, std::size_t n) {
  char text[24];
  text[0] = tag;
  auto end = std::to_chars(text + 1, text + sizeof text - 2, n).ptr;
  *end++ = '\r';
  *end++ = '\n';
  out.append(text, end);
}

/// Arguments at least this long are written from where they are; shorter ones are
/// copied into the pipeline's text (an iovec each would cost more than the copy).
constexpr std::size_t written_in_place = 128;

using detail::resp_piece;

/// Appends `cmd` in Redis's protocol (RESP: `*<argc>\r\n`, then `$<length>\r\n<bytes>\r\n`
/// per argument; arguments are binary-safe) to `text`, and the pieces to write.
template <class Command>
void append_resp(std::string& text, std::vector<resp_piece>& pieces, const Command& cmd) {
  auto from = text.size();
  auto flush = [&] {
    if (text.size() > from)
      pieces.push_back({nullptr, from, text.size() - from});
    from = text.size();
  };
  append_count(text, '*', cmd.size());
  for (auto& arg : cmd) {
    append_count(text, '$', arg.size());
    if (arg.size() >= written_in_place) {
      flush();
      pieces.push_back({arg.data(), 0, arg.size()});
    } else {
      text.append(arg.data(), arg.size());
    }
    text.append("\r\n", 2);
  }
  flush();
}

/// Writes every piece to the socket `fd` (blocking, with the connection's send timeout).
/// Returns why it could not.
std::optional<std::string> write_all(int fd, const std::string& text, const std::vector<resp_piece>& pieces) {
  std::vector<iovec> io;
  io.reserve(pieces.size());
  for (auto& p : pieces)
    io.push_back({const_cast<char*>(p.data ? p.data : text.data() + p.offset), p.length});
  std::size_t next = 0;
  while (next < io.size()) {
    msghdr message{};
    message.msg_iov = io.data() + next;
    message.msg_iovlen = std::min<std::size_t>(io.size() - next, IOV_MAX);
    // MSG_NOSIGNAL: a Redis that went away is an error value, not a SIGPIPE.
    auto written = ::sendmsg(fd, &message, MSG_NOSIGNAL);
    if (written < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        return std::string{"timed out writing to Redis"};
      return std::string{"cannot write to Redis: "} + std::strerror(errno);
    }
    auto left = static_cast<std::size_t>(written);
    while (next < io.size() && left >= io[next].iov_len)
      left -= io[next++].iov_len;
    if (left > 0) {
      io[next].iov_base = static_cast<char*>(io[next].iov_base) + left;
      io[next].iov_len -= left;
    }
  }
  return std::nullopt;
}

timeval to_timeval(std::chrono::milliseconds d) {
  return {static_cast<time_t>(d.count() / 1000), static_cast<suseconds_t>(d.count() % 1000 * 1000)};
}

} // namespace

std::optional<redis_endpoint> parse_redis_url(std::string_view url) {
  constexpr std::string_view scheme = "redis://";
  if (!url.starts_with(scheme))
    return std::nullopt;
  url.remove_prefix(scheme.size());
  redis_endpoint ep;
  if (auto at = url.rfind('@'); at != std::string_view::npos) {
    auto credentials = url.substr(0, at);
    url.remove_prefix(at + 1);
    auto colon = credentials.find(':');
    if (colon == std::string_view::npos)
      return std::nullopt;
    ep.user = std::string{credentials.substr(0, colon)};
    ep.password = std::string{credentials.substr(colon + 1)};
  }
  if (auto slash = url.find('/'); slash != std::string_view::npos) {
    auto db = url.substr(slash + 1);
    url = url.substr(0, slash);
    if (!db.empty() && (!to_int(db, ep.db) || ep.db < 0))
      return std::nullopt;
  }
  if (auto colon = url.rfind(':'); colon != std::string_view::npos) {
    if (!to_int(url.substr(colon + 1), ep.port) || ep.port <= 0 || ep.port > 65535)
      return std::nullopt;
    url = url.substr(0, colon);
  }
  if (url.empty())
    return std::nullopt;
  ep.host = std::string{url};
  return ep;
}

redis_client::redis_client(redis_endpoint endpoint, std::chrono::milliseconds timeout)
  : endpoint_{std::move(endpoint)}, timeout_{timeout} {
}

redis_client::~redis_client() {
  disconnect();
}

void redis_client::disconnect() {
  if (context_)
    redisFree(context_);
  context_ = nullptr;
}

std::optional<std::string> redis_client::connect() {
  if (context_)
    return std::nullopt;
  context_ = redisConnectWithTimeout(endpoint_.host.c_str(), endpoint_.port, to_timeval(timeout_));
  if (!context_)
    return std::string{"cannot allocate a Redis context"};
  if (context_->err) {
    std::string why = context_->errstr;
    disconnect();
    return why;
  }
  redisSetTimeout(context_, to_timeval(timeout_));
  context_->reader->fn = &reply_functions;
  std::vector<redis_command> setup;
  if (!endpoint_.password.empty()) {
    if (endpoint_.user.empty())
      setup.push_back({"AUTH", endpoint_.password});
    else
      setup.push_back({"AUTH", endpoint_.user, endpoint_.password});
  }
  if (endpoint_.db != 0)
    setup.push_back({"SELECT", std::to_string(endpoint_.db)});
  if (setup.empty())
    return std::nullopt;
  auto replies = pipeline(setup);
  if (auto* why = std::get_if<std::string>(&replies))
    return *why;
  for (auto& r : std::get<0>(replies))
    if (r.kind == redis_reply::error) {
      disconnect();
      return r.text; // never the password: Redis's own message
    }
  return std::nullopt;
}

std::variant<std::vector<redis_reply>, std::string>
redis_client::pipeline(std::span<const redis_command> commands, bool idempotent) {
  return run(commands, idempotent);
}

std::variant<std::vector<redis_reply>, std::string>
redis_client::pipeline(std::span<const redis_command_view> commands, bool idempotent) {
  return run(commands, idempotent);
}

template <class Command>
std::variant<std::vector<redis_reply>, std::string>
redis_client::run(std::span<const Command> commands, bool idempotent) {
  bool reused = connected();
  if (auto why = connect())
    return *why;
  auto result = send(commands);
  if (idempotent && reused && std::holds_alternative<std::string>(result)) {
    if (auto why = connect())
      return *why;
    result = send(commands);
  }
  return result;
}

template <class Command>
std::variant<std::vector<redis_reply>, std::string>
redis_client::send(std::span<const Command> commands) {
  // The pipeline is written here, in Redis's protocol, rather than appended command
  // by command to hiredis's output buffer: hiredis formats each length with its own
  // printf and copies every argument into that buffer, growing it by copying again
  // (the `builds` feed's pipelines under a storm are hundreds of kilobytes: ~4 % of the
  // daemon's CPU). Large arguments go from where they are; hiredis only reads replies.
  formatted_.clear();
  pieces_.clear();
  for (auto& cmd : commands)
    append_resp(formatted_, pieces_, cmd);
  if (auto why = write_all(context_->fd, formatted_, pieces_)) {
    disconnect();
    return *why;
  }
  // A large pipeline's text is not kept between calls.
  if (formatted_.capacity() > kept_capacity) {
    std::string{}.swap(formatted_);
    std::vector<resp_piece>{}.swap(pieces_);
  }
  std::vector<redis_reply> replies;
  replies.reserve(commands.size());
  for (size_t i = 0; i < commands.size(); ++i) {
    void* raw = nullptr;
    if (redisGetReply(context_, &raw) != REDIS_OK || !raw) {
      std::string why = context_->errstr[0] ? context_->errstr : "connection lost";
      disconnect();
      return why;
    }
    std::unique_ptr<redis_reply> reply{static_cast<redis_reply*>(raw)};
    replies.push_back(std::move(*reply));
  }
  return replies;
}

} // namespace bt::store
