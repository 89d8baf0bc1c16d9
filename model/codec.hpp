#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "model/build.hpp"
#include "model/recovery.hpp"
#include "model/streak.hpp"

/// Lossless encodings of model state and events, for the journal and snapshots.
/// Unlike model/json.hpp (the API's documents), decode(encode(x)) == x.
namespace bt::model::codec {

/// JSON text.
std::string encode(const envelope& e);
std::string encode(const build& b);
std::string encode(const streak_book& book);
/// Without its key (stored under it).
std::string encode(const recovery_record& r);

/// Every document carries its format version ("v"; absent in version 1, which stored
/// enumerations by number) and stores enumerations by name. Documents of every
/// earlier version still decode.

/// Decodes a document's JSON text. Nothing when it is not JSON or not a valid
/// encoding, with the reason in `error` when given (a missing field, an unknown
/// enumeration name, a format version this code does not read). Never throws.
std::optional<envelope> decode_envelope(std::string_view document, std::string* error = nullptr);
std::optional<build> decode_build(std::string_view document, std::string* error = nullptr);
std::optional<streak_book> decode_streaks(std::string_view document, std::string* error = nullptr);
/// A recovery record stored under `key`.
std::optional<recovery_record> decode_record(std::string_view document, const build_key& key,
                                             std::string* error = nullptr);

} // namespace bt::model::codec
