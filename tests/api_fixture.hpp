#pragma once

#include <chrono>
#include <memory>

#include <gtest/gtest.h>

#include "actors/service.hpp"
#include "config/config.hpp"
#include "net/routes.hpp"
#include "net/server.hpp"
#include "store/memory_store.hpp"
#include "store/redis_store.hpp"
#include "tests/http_client.hpp"
#include "tests/redis_server.hpp"

namespace bt::test {

/// The whole service behind a real Beast server on a free loopback port, over a
/// memory store unless the test sets another `store` before SetUp() runs. Tests set
/// `cfg` in their fixture's initialiser.
struct api_fixture : ::testing::Test {
  config::config cfg;
  std::shared_ptr<store::store> store = std::make_shared<store::memory_store>();
  std::unique_ptr<actors::service> service;
  std::unique_ptr<net::api> api;
  std::unique_ptr<net::server> server;
  unsigned short port = 0;

  explicit api_fixture(config::config c) : cfg{std::move(c)} {
    cfg.server.listen = "127.0.0.1:0";
  }

  void start() {
    service = std::make_unique<actors::service>(cfg, store);
    // As buildtrackd does: what the store holds is back before requests come.
    if (auto why = service->recover())
      FAIL() << *why;
    api = std::make_unique<net::api>(cfg, *service, *store);
    server = std::make_unique<net::server>(cfg.server, *api);
    port = server->start();
  }

  void SetUp() override { start(); }

  /// A Redis store on `server`, for a fixture's SetUp() to set before it starts.
  static std::shared_ptr<store::store> redis_store_on(const redis_server& server) {
    store::redis_store_config rc;
    rc.endpoint = *store::parse_redis_url(server.url());
    return std::make_shared<store::redis_store>(rc);
  }

  void TearDown() override {
    server->stop();
    service.reset();
  }

  http_client client() { return http_client{port}; }
};

} // namespace bt::test
