#pragma once

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <thread>

#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <fcntl.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "tests/free_port.hpp"

namespace bt::test {

/// A real redis-server on a free loopback port, with its data in a fresh temporary
/// folder; stopped (and the folder removed) when the object goes. stop() kills it
/// and start() brings it back on the same port: an outage. A durable server
/// (append-only file, fsync on every write) keeps every confirmed write across that.
class redis_server {
public:
  explicit redis_server(bool durable = false)
    : dir_{make_dir()}, port_{free_port()}, durable_{durable} {
    // Another process may still take the port first; then it is the next one's turn.
    for (int attempt = 1; !launch(); ++attempt) {
      if (attempt == 5)
        throw std::runtime_error{"redis-server did not start on any of 5 ports"};
      port_ = free_port();
    }
  }

  ~redis_server() {
    stop();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  unsigned short port() const { return port_; }

  /// The integer reply to `command` (e.g. "XLEN key"); -1 when there is none.
  long long integer(const std::string& command) const {
    long long n = -1;
    run(command, [&](const redisReply& r) {
      if (r.type == REDIS_REPLY_INTEGER)
        n = r.integer;
    });
    return n;
  }
  /// The string reply to `command` (e.g. "GET key"); empty when there is none.
  std::string text(const std::string& command) const {
    std::string out;
    run(command, [&](const redisReply& r) {
      if (r.type == REDIS_REPLY_STRING)
        out.assign(r.str, r.len);
    });
    return out;
  }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }

  /// Brings the server (back) up on its port; throws when it does not answer.
  void start() {
    if (pid_ <= 0 && !launch())
      throw std::runtime_error{"redis-server did not start on port " + std::to_string(port_)};
  }

  void stop() {
    if (pid_ <= 0)
      return;
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

private:
  /// Starts redis-server on port_ and waits until it answers: false when it exits
  /// first (its port is taken) or does not answer within 5 s.
  bool launch() {
    auto port = std::to_string(port_);
    pid_ = fork();
    if (pid_ == 0) {
      // Dies with the test process, even when that one crashes. (Strictly: with the
      // thread calling start(), so call it from one that lives as long as it should.)
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      // Its start-up chatter is not test output.
      if (int devnull = open("/dev/null", O_WRONLY); devnull >= 0)
        dup2(devnull, STDOUT_FILENO);
      execlp("redis-server", "redis-server", "--port", port.c_str(), "--bind", "127.0.0.1",
             "--dir", dir_.c_str(), "--save", "", "--appendonly", durable_ ? "yes" : "no",
             "--appendfsync", "always", "--loglevel", "warning", static_cast<char*>(nullptr));
      _exit(127);
    }
    for (int i = 0; i < 500; ++i) {
      if (answers())
        return true;
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds{10});
    }
    stop();
    return false;
  }

  /// Runs `command` (split on spaces) on a new connection and hands `read` the reply.
  template <class Read>
  void run(const std::string& command, Read read) const {
    timeval tv{1, 0};
    auto* c = redisConnectWithTimeout("127.0.0.1", port_, tv);
    if (c && !c->err)
      if (auto* r = static_cast<redisReply*>(redisCommand(c, command.c_str()))) {
        read(*r);
        freeReplyObject(r);
      }
    if (c)
      redisFree(c);
  }

  /// Whether our server answers on port_: one started by another test on the same
  /// port answers too, so the reply must name our data folder.
  bool answers() const {
    timeval tv{0, 100'000};
    auto* c = redisConnectWithTimeout("127.0.0.1", port_, tv);
    bool ok = c && !c->err;
    if (ok) {
      auto* r = static_cast<redisReply*>(redisCommand(c, "CONFIG GET dir"));
      std::error_code ec;
      ok = r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
           r->element[1]->type == REDIS_REPLY_STRING &&
           std::filesystem::equivalent(std::string(r->element[1]->str, r->element[1]->len),
                                       dir_, ec);
      if (r)
        freeReplyObject(r);
    }
    if (c)
      redisFree(c);
    return ok;
  }

  static std::string make_dir() {
    std::string templ = (std::filesystem::temp_directory_path() / "bt-redis-XXXXXX").string();
    if (!mkdtemp(templ.data()))
      throw std::runtime_error{"mkdtemp failed"};
    return templ;
  }

public:
  /// A loopback TCP port nobody listens on right now (see free_port.hpp).
  static unsigned short free_port() { return test::free_port(); }

private:
  std::string dir_;
  unsigned short port_;
  bool durable_;
  pid_t pid_ = -1;
};

} // namespace bt::test
