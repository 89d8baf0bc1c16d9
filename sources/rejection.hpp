#pragma once

#include <string>
#include <variant>

namespace bt::sources {

/// Why an input was refused: the HTTP status and the JSON error body of SPEC §3.
struct rejection {
  int status = 400;
  std::string code;
  std::string message;
  std::string field; ///< the offending field or header, when there is one

  /// `{"error":{"code","message","field"}}`
  std::string body() const;
};

/// Either a value or the reason it could not be made.
template <class T>
using checked = std::variant<T, rejection>;

} // namespace bt::sources
