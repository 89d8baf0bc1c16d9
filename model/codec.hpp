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

/// Every document carries its format version ("v"; absent in version 1, which stored
/// enumerations by number) and stores enumerations by name. Documents of every
/// earlier version still decode.

/// Nothing when the document is not a valid encoding, with the reason in `error` when
/// given (a missing field, an unknown enumeration name, a format version this code
/// does not read). Never throws.
std::optional<envelope> decode_envelope(const nlohmann::json& doc, std::string* error = nullptr);
std::optional<build> decode_build(const nlohmann::json& doc, std::string* error = nullptr);
std::optional<streak_book> decode_streaks(const nlohmann::json& doc,
                                          std::string* error = nullptr);

} // namespace bt::model::codec
