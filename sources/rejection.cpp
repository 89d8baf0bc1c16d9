#include <nlohmann/json.hpp>

#include "sources/rejection.hpp"

namespace bt::sources {

std::string rejection::body() const {
  nlohmann::json err = {{"code", code}, {"message", message}};
  if (!field.empty())
    err["field"] = field;
  if (line != 0)
    err["line"] = line;
  // Messages and fields may quote what a client sent: bytes that are not UTF-8 are
  // replaced, never echoed (and never thrown over).
  return nlohmann::json{{"error", err}}.dump(-1, ' ', false,
                                             nlohmann::json::error_handler_t::replace);
}

} // namespace bt::sources
