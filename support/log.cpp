#include "support/log.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <nlohmann/json.hpp>

#include "support/clock.hpp"

namespace bt::support {
namespace {

std::atomic<log_level> threshold{log_level::info};
std::mutex out_mutex;

/// At most `burst` lines of one message per second: a fault that repeats (accept
/// failing for want of descriptors, a peer refusing every request) must not turn
/// into a flood of identical lines that costs more than the fault. What is held
/// back is counted and reported on the next line of that message that is written.
class repeat_limiter {
public:
  /// Whether a line of `message` may be written now; `suppressed` gets how many were
  /// held back since the last one written.
  bool admit(std::string_view message, std::chrono::steady_clock::time_point now,
             std::uint64_t& suppressed) {
    auto it = windows_.find(message);
    if (it == windows_.end()) {
      if (windows_.size() >= max_messages)
        windows_.clear(); // messages are fixed strings: this only bounds a pathological case
      it = windows_.emplace(std::string{message}, window{}).first;
    }
    auto& w = it->second;
    if (now - w.start >= std::chrono::seconds{1}) {
      w.start = now;
      w.written = 0;
    }
    if (w.written >= burst) {
      ++w.held_back;
      return false;
    }
    ++w.written;
    suppressed = std::exchange(w.held_back, 0);
    return true;
  }

private:
  static constexpr std::uint64_t burst = 20;
  static constexpr std::size_t max_messages = 4096;
  struct window {
    std::chrono::steady_clock::time_point start{};
    std::uint64_t written = 0;
    std::uint64_t held_back = 0;
  };
  std::map<std::string, window, std::less<>> windows_;
};

repeat_limiter limiter; // guarded by out_mutex

const char* name(log_level l) {
  switch (l) {
    case log_level::debug: return "debug";
    case log_level::info: return "info";
    case log_level::warn: return "warn";
    case log_level::error: return "error";
  }
  return "info";
}

} // namespace

bool set_log_level(std::string_view level) {
  for (auto l : {log_level::debug, log_level::info, log_level::warn, log_level::error})
    if (level == name(l)) {
      threshold = l;
      return true;
    }
  return false;
}

bool log_enabled(log_level level) {
  return level >= threshold.load(std::memory_order_relaxed);
}

void log(log_level level, std::string_view message, const nlohmann::json& fields) {
  if (!log_enabled(level))
    return;
  std::uint64_t suppressed = 0;
  {
    std::lock_guard guard{out_mutex};
    if (!limiter.admit(message, std::chrono::steady_clock::now(), suppressed))
      return;
  }
  nlohmann::json line = {{"ts", model::format_time(wall_clock())}, {"level", name(level)},
                         {"msg", message}};
  if (fields.is_object())
    for (auto& [k, v] : fields.items())
      line[k] = v;
  if (suppressed != 0)
    line["suppressed"] = suppressed; // lines of this message held back before this one
  auto text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::lock_guard guard{out_mutex};
  std::fprintf(stderr, "%s\n", text.c_str());
}

void log(log_level level, std::string_view message) {
  log(level, message, nlohmann::json::object());
}

} // namespace bt::support
