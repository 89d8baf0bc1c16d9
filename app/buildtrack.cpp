// buildtrack: the command-line companion of buildtrackd.
#include <chrono>
#include <cstring>
#include <iostream>
#include <iterator>
#include <string>

#include "config/config.hpp"
#include "sources/buildkite.hpp"

namespace {

int usage() {
  std::cerr << "usage:\n"
               "  buildtrack check-config FILE     validate a configuration file\n"
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
      std::cout << argv[2] << ": ok (listen " << cfg.server.listen << ", store "
                << cfg.store.kind << ")\n";
      return 0;
    } catch (const bt::config::config_error& e) {
      std::cerr << e.what() << '\n';
      return 1;
    }
  }
  if (command == "sign" && (argc == 3 || argc == 4)) {
    std::string body{std::istreambuf_iterator<char>{std::cin}, {}};
    long long now = argc == 4 ? std::stoll(argv[3])
                              : std::chrono::duration_cast<std::chrono::seconds>(
                                  std::chrono::system_clock::now().time_since_epoch())
                                  .count();
    std::cout << bt::sources::buildkite_signature(argv[2], now, body) << '\n';
    return 0;
  }
  return usage();
}
