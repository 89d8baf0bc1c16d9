// buildtrackd: the buildtrack server.
#include <csignal>
#include <cstring>
#include <iostream>
#include <memory>

#include <nlohmann/json.hpp>

#include "actors/service.hpp"
#include "config/config.hpp"
#include "net/routes.hpp"
#include "net/server.hpp"
#include "store/memory_store.hpp"
#include "support/log.hpp"

using bt::support::log;
using bt::support::log_level;

namespace {

int usage() {
  std::cerr << "usage: buildtrackd [--config FILE]\n"
               "Runs the buildtrack server; without --config every key has its default.\n";
  return 2;
}

} // namespace

int main(int argc, char** argv) {
  std::string config_path;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--config") == 0 && i + 1 < argc)
      config_path = argv[++i];
    else if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0)
      return usage(), 0;
    else
      return usage();
  }
  bt::config::config cfg;
  try {
    if (!config_path.empty())
      cfg = bt::config::load(config_path);
  } catch (const bt::config::config_error& e) {
    std::cerr << "buildtrackd: " << e.what() << '\n';
    return 2;
  }
  bt::support::set_log_level(cfg.log_level);
  if (cfg.buildkite.token.empty() && cfg.buildkite.signature_secret.empty())
    log(log_level::warn, "no Buildkite token or signature secret configured: every Buildkite "
                         "delivery will be refused");

  // Block the stop signals in every thread; the main thread waits for them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  auto store = std::make_shared<bt::store::memory_store>();
  log(log_level::warn, "store.kind is memory: nothing survives a restart");
  auto service = std::make_unique<bt::actors::service>(cfg, store);
  bt::net::api api{cfg, *service, *store};
  bt::net::server server{cfg.server, api};
  try {
    auto port = server.start();
    log(log_level::info, "buildtrackd listening",
        {{"listen", cfg.server.listen}, {"port", port}, {"io_threads", cfg.server.io_threads},
         {"store", store->kind()}});
  } catch (const std::exception& e) {
    log(log_level::error, "cannot start", {{"reason", e.what()}});
    return 1;
  }
  int signal = 0;
  sigwait(&stop_signals, &signal);
  log(log_level::info, "stopping", {{"signal", signal}});
  // Order matters: no more requests, then the actors (replies still in flight are
  // posted to the stopped io_context and dropped), then the io_context itself.
  server.stop();
  service.reset();
  return 0;
}
