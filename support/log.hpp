#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string_view>

namespace bt::support {

enum class log_level { debug, info, warn, error };

/// Sets the lowest level written; "debug", "info", "warn" or "error".
bool set_log_level(std::string_view name);

/// Whether a line of `level` would be written: callers on a hot path ask before they
/// build the fields of a line that is usually not written.
bool log_enabled(log_level level);

/// Writes one JSON line `{"ts","level","msg",...fields}` to stderr. Never pass secrets.
/// At most 20 lines of one message a second; the next line written says how many
/// were held back (`"suppressed"`).
void log(log_level level, std::string_view message, const nlohmann::json& fields);
void log(log_level level, std::string_view message);

} // namespace bt::support
