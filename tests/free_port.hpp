#pragma once

#include <fstream>
#include <random>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace bt::test {

/// A loopback TCP port nobody listens on right now, for a server a test starts later.
///
/// It is drawn below the kernel's ephemeral range: a port from that range (what
/// binding to port 0 gives) is also handed to outgoing connections, and the tests
/// make thousands of those, so one of them could take the port before the server
/// binds it (seen in CI as a redis-server that never came up).
inline unsigned short free_port() {
  int ephemeral_low = 32768;
  if (std::ifstream range{"/proc/sys/net/ipv4/ip_local_port_range"}; range)
    range >> ephemeral_low;
  int low = 10000;
  int high = ephemeral_low > low + 1000 ? ephemeral_low - 1 : 30000;
  static thread_local std::mt19937 random{std::random_device{}()};
  std::uniform_int_distribution<int> pick{low, high};
  for (;;) {
    auto port = static_cast<unsigned short>(pick(random));
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    bool bindable = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    close(fd);
    if (bindable)
      return port;
  }
}

} // namespace bt::test
