#pragma once

#include <cstddef>
#include <string>
#include <variant>

namespace bt::sources {

/// Why an input was refused: the HTTP status and the JSON error body of SPEC §3.
struct rejection {
  int status = 400;
  std::string code;
  std::string message;
  std::string field; ///< the offending field or header, when there is one
  std::size_t line = 0; ///< the offending line of an NDJSON batch (from 1), 0 for none

  /// `{"error":{"code","message","field","line"}}`
  std::string body() const;
};

/// Either a value or the reason it could not be made.
template <class T>
using checked = std::variant<T, rejection>;

} // namespace bt::sources
