#pragma once

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "tests/http_client.hpp"

namespace bt::test {

/// How a daemon_process starts, beyond its configuration.
struct daemon_options {
  /// RLIMIT_NOFILE (soft and hard) of the process; 0 leaves it alone.
  rlim_t open_files = 0;
  /// Where its stderr goes (its log); empty: the test's stderr.
  std::string log_path;
};

/// buildtrackd (BT_DAEMON) as a child process with the given configuration. Start
/// and kill it from the test's main thread only: PR_SET_PDEATHSIG follows the thread
/// that forked it.
class daemon_process {
public:
  daemon_process(unsigned short port, const std::string& config_yaml, daemon_options options = {})
    : port_{port}, options_{std::move(options)} {
    config_ = (std::filesystem::temp_directory_path()
               / ("bt-daemon-" + std::to_string(getpid()) + "-" + std::to_string(port) + ".yaml"))
                .string();
    std::ofstream{config_} << config_yaml;
  }
  ~daemon_process() {
    kill9();
    std::filesystem::remove(config_);
  }

  /// Starts it and waits until `probe` answers 200: by default /readyz (recovered and
  /// ready), /healthz for "listening".
  void start(const char* probe = "/readyz") {
    using namespace std::chrono_literals;
    pid_ = fork();
    if (pid_ == 0) {
      // Dies with the thread that started it (a kill of its own), or with the test.
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (options_.open_files != 0) {
        rlimit lim{options_.open_files, options_.open_files};
        setrlimit(RLIMIT_NOFILE, &lim);
      }
      if (!options_.log_path.empty())
        if (int fd = open(options_.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644); fd >= 0)
          dup2(fd, STDERR_FILENO);
      execl(BT_DAEMON, BT_DAEMON, "--config", config_.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    for (int i = 0; i < 1000; ++i) {
      try {
        http_client c{port_};
        if (c.send(boost::beast::http::verb::get, probe).status == 200)
          return;
      } catch (const std::exception&) {
      }
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        FAIL() << "buildtrackd ended on its own, status " << status;
      }
      std::this_thread::sleep_for(10ms);
    }
    FAIL() << "buildtrackd did not become ready";
  }

  void kill9() {
    if (pid_ <= 0)
      return;
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  bool running() const { return pid_ > 0 && waitpid(pid_, nullptr, WNOHANG) == 0; }
  unsigned short port() const { return port_; }
  pid_t pid() const { return pid_; }
  const std::string& config_path() const { return config_; }

private:
  unsigned short port_;
  daemon_options options_;
  std::string config_;
  pid_t pid_ = -1;
};

} // namespace bt::test
