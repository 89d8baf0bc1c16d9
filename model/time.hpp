#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace bt::model {

/// Wall-clock instants, millisecond precision, always UTC.
using timestamp = std::chrono::sys_time<std::chrono::milliseconds>;

/// Parses `2024-05-10 12:34:56 UTC` (Buildkite webhooks) and RFC 3339
/// (`2024-05-10T12:34:56.789Z`, `+02:00` offsets).
std::optional<timestamp> parse_time(std::string_view text);

/// Formats as RFC 3339 UTC with milliseconds: `2024-05-10T12:34:56.789Z`.
std::string format_time(timestamp t);

} // namespace bt::model
