// buildtrack: the command-line companion of buildtrackd.
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <future>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "net/client.hpp"
#include "sources/buildkite.hpp"
#include "store/redis_client.hpp"
#include "storm/cli.hpp"

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
               "  buildtrack sign SECRET [UNIX]    print the X-Buildkite-Signature of stdin\n"
               "  buildtrack send FILE [--url URL] [--token TOKEN]\n"
               "                                   post native events (one JSON event, or NDJSON\n"
               "                                   with one per line) to URL/api/v1/events; FILE -\n"
               "                                   reads stdin; URL defaults to\n"
               "                                   http://127.0.0.1:8080, TOKEN to\n"
               "                                   $BUILDTRACK_NATIVE_TOKEN\n"
               "  buildtrack storm [options]       storm a running buildtrackd with CI events and\n"
               "                                   verify what it made of them (--help)\n";
  return 2;
}

/// Whether `text` holds more than one JSON text, one per line (NDJSON), rather than
/// one event (which may span lines).
bool is_ndjson(const std::string& text) {
  std::size_t lines = 0;
  for (std::size_t pos = 0; pos < text.size();) {
    auto end = text.find('\n', pos);
    auto line = text.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    if (auto first = line.find_first_not_of(" \t\r"); first != std::string::npos) {
      if (line[first] != '{')
        return false; // a line that does not start an object: one event over several lines
      ++lines;
    }
    if (end == std::string::npos)
      break;
    pos = end + 1;
  }
  return lines > 1;
}

/// `buildtrack send`: posts a file of native events and prints the answer. Exit
/// status 0 on 202, 1 when refused or unreachable, 2 on bad usage.
int send(int argc, char** argv) {
  std::string file = argv[2];
  std::string url = "http://127.0.0.1:8080";
  const char* env_token = std::getenv("BUILDTRACK_NATIVE_TOKEN");
  std::string token = env_token ? env_token : "";
  for (int i = 3; i < argc; i += 2) {
    if (i + 1 >= argc)
      return usage();
    std::string_view flag = argv[i];
    if (flag == "--url")
      url = argv[i + 1];
    else if (flag == "--token")
      token = argv[i + 1];
    else
      return usage();
  }
  std::string body;
  if (file == "-") {
    body.assign(std::istreambuf_iterator<char>{std::cin}, {});
  } else {
    std::ifstream in{file, std::ios::binary};
    if (!in) {
      std::cerr << file << ": cannot be read\n";
      return 1;
    }
    body.assign(std::istreambuf_iterator<char>{in}, {});
  }
  while (!url.empty() && url.back() == '/')
    url.pop_back();
  bt::net::outbound_request req;
  req.url = url + "/api/v1/events";
  req.headers = {{"Content-Type", is_ndjson(body) ? "application/x-ndjson" : "application/json"},
                 {"Authorization", "Bearer " + token}};
  req.body = std::move(body);
  std::promise<bt::net::inbound_response> answered;
  {
    bt::net::http_client client;
    client.send(std::move(req), std::chrono::seconds{30},
                [&](bt::net::inbound_response r) { answered.set_value(std::move(r)); });
    auto r = answered.get_future().get();
    if (r.status == 0) {
      std::cerr << url << ": " << r.error << '\n';
      return 1;
    }
    (r.status == 202 ? std::cout : std::cerr) << r.status << ' ' << r.body << '\n';
    return r.status == 202 ? 0 : 1;
  }
}

} // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::string_view{argv[1]} == "storm")
    return bt::storm::command(argc - 1, argv + 1);
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
  if (command == "send" && argc >= 3)
    return send(argc, argv);
  return usage();
}
