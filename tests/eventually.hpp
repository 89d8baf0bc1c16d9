#pragma once

#include <chrono>
#include <thread>

namespace bt::test {

/// Polls `pred` every 10 ms until it holds or `limit` passes; its last answer. For
/// what another process does in its own time (a daemon, a redis-server), where no
/// barrier can be shared. `pred` may be called once more after it first held.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = std::chrono::seconds{10}) {
  for (auto until = std::chrono::steady_clock::now() + limit;
       std::chrono::steady_clock::now() < until;
       std::this_thread::sleep_for(std::chrono::milliseconds{10}))
    if (pred())
      return true;
  return pred();
}

} // namespace bt::test
