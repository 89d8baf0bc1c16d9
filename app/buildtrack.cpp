// buildtrack: the command-line companion of buildtrackd.
#include <chrono>
#include <cstring>
#include <iostream>
#include <iterator>
#include <string>

#include <charconv>

#include "config/config.hpp"
#include "sources/buildkite.hpp"
#include "store/redis_client.hpp"

namespace {

/// Whether the configured Redis answers; when not, says why on stderr.
bool redis_reachable(const bt::config::config& cfg) {
  auto endpoint = bt::store::parse_redis_url(cfg.store.redis.url);
  if (!endpoint) {
    std::cerr << "store.redis.url: malformed Redis URL\n";
    return false;
  }
  bt::store::redis_client client{*endpoint, std::chrono::seconds{2}};
  auto result = client.pipeline({{"PING"}});
  auto where = endpoint->host + ":" + std::to_string(endpoint->port);
  if (auto* why = std::get_if<std::string>(&result)) {
    std::cerr << "store.redis.url: Redis at " << where << " does not answer: " << *why << '\n';
    return false;
  }
  auto& reply = std::get<0>(result).at(0);
  if (reply.kind == bt::store::redis_reply::error) {
    std::cerr << "store.redis.url: Redis at " << where << " refused: " << reply.text << '\n';
    return false;
  }
  return true;
}

int usage() {
  std::cerr << "usage:\n"
               "  buildtrack check-config FILE     validate a configuration file and try its Redis\n"
               "  buildtrack sign SECRET [UNIX]    print the X-Buildkite-Signature of stdin\n";
  return 2;
}

} // namespace

int main(int argc, char** argv) {
  if (argc < 3)
    return usage();
  std::string command = argv[1];
  if (command == "check-config" && argc == 3) {
    try {
      auto cfg = bt::config::load(argv[2]);
      if (cfg.store.kind == "redis" && !redis_reachable(cfg))
        return 1;
      std::cout << argv[2] << ": ok (listen " << cfg.server.listen << ", store "
                << cfg.store.kind << (cfg.store.kind == "redis" ? ", reachable" : "") << ")\n";
      return 0;
    } catch (const bt::config::config_error& e) {
      std::cerr << e.what() << '\n';
      return 1;
    }
  }
  if (command == "sign" && (argc == 3 || argc == 4)) {
    std::string body{std::istreambuf_iterator<char>{std::cin}, {}};
    long long now = std::chrono::duration_cast<std::chrono::seconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
    if (argc == 4) {
      std::string_view text{argv[3]};
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), now);
      if (ec != std::errc{} || end != text.data() + text.size())
        return usage();
    }
    std::cout << bt::sources::buildkite_signature(argv[2], now, body) << '\n';
    return 0;
  }
  return usage();
}
