// buildtrackd: the buildtrack server.
#include <chrono>
#include <csignal>
#include <cstring>
#include <iostream>
#include <memory>

#include <sys/resource.h>

#include <nlohmann/json.hpp>

#include "actors/service.hpp"
#include "config/config.hpp"
#include "net/routes.hpp"
#include "net/server.hpp"
#include "store/memory_store.hpp"
#include "store/redis_store.hpp"
#include "support/log.hpp"

using bt::support::log;
using bt::support::log_level;

namespace {

int usage() {
  std::cerr << "usage: buildtrackd [--config FILE]\n"
               "Runs the buildtrack server; without --config every key has its default.\n";
  return 2;
}

/// The configured store; nothing (after saying why) when the configuration is unusable.
std::shared_ptr<bt::store::store> open_store(const bt::config::config& cfg) {
  if (cfg.store.kind == "memory") {
    log(log_level::warn, "store.kind is memory: nothing survives a restart");
    return std::make_shared<bt::store::memory_store>();
  }
  auto endpoint = bt::store::parse_redis_url(cfg.store.redis.url);
  if (!endpoint) {
    std::cerr << "buildtrackd: store.redis.url: malformed Redis URL\n";
    return nullptr;
  }
  bt::store::redis_store_config rc;
  rc.endpoint = *endpoint;
  rc.key_prefix = cfg.store.redis.key_prefix;
  return std::make_shared<bt::store::redis_store>(rc);
}

/// Raises the soft limit on open files to the hard one: every connection is one, and
/// the default soft limit (often 1024) is far below what a webhook server meets.
void raise_open_file_limit(int max_connections) {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0)
    return;
  if (lim.rlim_cur < lim.rlim_max) {
    rlimit raised = lim;
    raised.rlim_cur = lim.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
      lim = raised;
  }
  // Redis connections, the journal, logs and the listener need some of them too.
  constexpr rlim_t reserve = 64;
  if (lim.rlim_cur != RLIM_INFINITY
      && lim.rlim_cur < static_cast<rlim_t>(max_connections) + reserve)
    log(log_level::warn,
        "the open-file limit is below server.max_connections; connections past it wait",
        {{"nofile", lim.rlim_cur}, {"max_connections", max_connections}});
}

/// Waits until the store answers, or a stop signal arrives (false).
bool await_store(const bt::store::store& store, const sigset_t& stop_signals) {
  // The first word after a second, then every five.
  auto said = std::chrono::steady_clock::now() - std::chrono::seconds{4};
  while (!store.ready()) {
    if (std::chrono::steady_clock::now() - said > std::chrono::seconds{5}) {
      log(log_level::warn, "waiting for the store to become reachable; answering 503 meanwhile",
          {{"store", store.kind()}});
      said = std::chrono::steady_clock::now();
    }
    timespec wait{0, 10'000'000};
    if (sigtimedwait(&stop_signals, nullptr, &wait) > 0)
      return false;
  }
  return true;
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
  raise_open_file_limit(cfg.server.max_connections);
  if (cfg.buildkite.token.empty() && cfg.buildkite.signature_secret.empty())
    log(log_level::warn, "no Buildkite token or signature secret configured: every Buildkite "
                         "delivery will be refused");

  // Block the stop signals in every thread; the main thread waits for them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  auto store = open_store(cfg);
  if (!store)
    return 2;
  // Both read schemas at start: one that cannot be read is a configuration error.
  std::unique_ptr<bt::actors::service> service;
  std::unique_ptr<bt::net::api> inputs;
  try {
    service = std::make_unique<bt::actors::service>(cfg, store);
    inputs = std::make_unique<bt::net::api>(cfg, *service, *store);
  } catch (const std::runtime_error& e) {
    std::cerr << "buildtrackd: " << e.what() << '\n';
    return 2;
  }
  auto& api = *inputs;
  // Bound before the store is awaited, so that a taken port is reported at once and
  // probes get an answer (503 until recovered) while Redis is away.
  api.set_serving(false);
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
  if (!await_store(*store, stop_signals))
    return 0;
  // Everything acknowledged before is back in the actors before an input is taken.
  if (auto why = service->recover()) {
    log(log_level::error, "cannot recover", {{"reason", *why}});
    return 1;
  }
  api.set_serving(true);
  log(log_level::info, "buildtrackd serving");
  int signal = 0;
  sigwait(&stop_signals, &signal);
  log(log_level::info, "stopping", {{"signal", signal}});
  // Order matters: no more requests, then the actors (replies still in flight are
  // posted to the stopped io_context and dropped), then the io_context itself.
  server.stop();
  service.reset();
  return 0;
}
