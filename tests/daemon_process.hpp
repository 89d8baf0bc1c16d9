#pragma once

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "tests/http_client.hpp"

namespace bt::test {

/// buildtrackd (BT_DAEMON) as a child process with the given configuration. Start
/// and kill it from the test's main thread only: PR_SET_PDEATHSIG follows the thread
/// that forked it.
class daemon_process {
public:
  daemon_process(unsigned short port, const std::string& config_yaml) : port_{port} {
    config_ = (std::filesystem::temp_directory_path()
               / ("bt-daemon-" + std::to_string(getpid()) + "-" + std::to_string(port) + ".yaml"))
                .string();
    std::ofstream{config_} << config_yaml;
  }
  ~daemon_process() {
    kill9();
    std::filesystem::remove(config_);
  }

  /// Starts it and waits until /readyz answers 200.
  void start() {
    using namespace std::chrono_literals;
    pid_ = fork();
    if (pid_ == 0) {
      // Dies with the thread that started it (a kill of its own), or with the test.
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      execl(BT_DAEMON, BT_DAEMON, "--config", config_.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    for (int i = 0; i < 1000; ++i) {
      try {
        http_client c{port_};
        if (c.send(boost::beast::http::verb::get, "/readyz").status == 200)
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

private:
  unsigned short port_;
  std::string config_;
  pid_t pid_ = -1;
};

} // namespace bt::test
