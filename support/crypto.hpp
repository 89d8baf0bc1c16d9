#pragma once

#include <string>
#include <string_view>

namespace bt::support {

/// Lower-case hex HMAC-SHA256 of `data` under `key`.
std::string hmac_sha256_hex(std::string_view key, std::string_view data);

/// Lower-case hex SHA-256 of `data`: a stable name for an input.
std::string sha256_hex(std::string_view data);

/// Standard base64 with padding (HTTP Basic credentials).
std::string base64(std::string_view data);

/// Compares secrets in time independent of where they differ.
bool constant_time_equal(std::string_view a, std::string_view b);

} // namespace bt::support
