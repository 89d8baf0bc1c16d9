#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <exception>
#include <memory>
#include <thread>
#include <vector>

#include "tests/http_client.hpp"

namespace bt::test {

/// Lanes of requests for a buildtrackd that may be killed, or lose its store, while
/// they are sent: each lane's requests go in order from a thread of its own, each
/// again (on a fresh connection, 5 ms later) until the daemon took it. What was taken
/// is kept, per lane, in order.
template <class Request>
struct lane_storm {
  std::vector<std::vector<Request>> lanes;
  std::vector<std::vector<const Request*>> taken;
  std::atomic<int> unavailable{0}; ///< 503 answers seen
  std::atomic<int> unexpected{0};  ///< answers that neither took a request nor were 503
  std::atomic<int> lanes_done{0};
  std::atomic<std::size_t> acknowledged{0}; ///< requests taken so far, readable while it runs

  std::size_t total() const {
    std::size_t n = 0;
    for (auto& lane : lanes)
      n += lane.size();
    return n;
  }
  std::size_t taken_count() const {
    std::size_t n = 0;
    for (auto& lane : taken)
      n += lane.size();
    return n;
  }

  /// Sends every lane; returns once all were taken. `post(client, request)` sends one
  /// and returns the answer's status; `takes(request, status)` says whether that
  /// answer means the daemon took it.
  template <class Post, class Takes>
  void send(unsigned short port, Post post, Takes takes) {
    using namespace std::chrono_literals;
    taken.resize(lanes.size());
    std::vector<std::thread> threads;
    for (std::size_t l = 0; l < lanes.size(); ++l)
      threads.emplace_back([this, l, port, &post, &takes] {
        std::unique_ptr<http_client> client;
        for (auto& r : lanes[l]) {
          while (true) {
            try {
              if (!client)
                client = std::make_unique<http_client>(port);
              auto status = post(*client, r);
              if (takes(r, status))
                break;
              ++(status == 503 ? unavailable : unexpected);
            } catch (const std::exception&) {
              client.reset(); // killed mid-request: it may or may not have been journaled
            }
            std::this_thread::sleep_for(5ms);
          }
          taken[l].push_back(&r);
          ++acknowledged;
        }
        ++lanes_done;
      });
    for (auto& t : threads)
      t.join();
  }
};

} // namespace bt::test
