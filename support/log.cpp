#include "support/log.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <nlohmann/json.hpp>

#include "support/clock.hpp"

namespace bt::support {
namespace {

std::atomic<log_level> threshold{log_level::info};
std::mutex out_mutex;

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

void log(log_level level, std::string_view message, const nlohmann::json& fields) {
  if (level < threshold.load(std::memory_order_relaxed))
    return;
  nlohmann::json line = {{"ts", model::format_time(wall_clock())}, {"level", name(level)},
                         {"msg", message}};
  if (fields.is_object())
    for (auto& [k, v] : fields.items())
      line[k] = v;
  auto text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::lock_guard guard{out_mutex};
  std::fprintf(stderr, "%s\n", text.c_str());
}

void log(log_level level, std::string_view message) {
  log(level, message, nlohmann::json::object());
}

} // namespace bt::support
