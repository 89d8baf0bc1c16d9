#include <nlohmann/json.hpp>

#include "sources/rejection.hpp"

namespace bt::sources {

std::string rejection::body() const {
  nlohmann::json err = {{"code", code}, {"message", message}};
  if (!field.empty())
    err["field"] = field;
  return nlohmann::json{{"error", err}}.dump();
}

} // namespace bt::sources
