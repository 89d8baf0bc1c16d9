#pragma once

#include <optional>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "model/build.hpp"
#include "model/streak.hpp"

/// Lossless encodings of model state and events, for the journal and snapshots.
/// Unlike model/json.hpp (the API's documents), decode(encode(x)) == x.
namespace bt::model::codec {

/// JSON text.
std::string encode(const envelope& e);
std::string encode(const build& b);
std::string encode(const streak_book& book);

/// Nothing when the document is not a valid encoding (never throws).
std::optional<envelope> decode_envelope(const nlohmann::json& doc);
std::optional<build> decode_build(const nlohmann::json& doc);
std::optional<streak_book> decode_streaks(const nlohmann::json& doc);

} // namespace bt::model::codec
