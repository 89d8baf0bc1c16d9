#include "sources/payload.hpp"

#include <algorithm>
#include <string_view>
#include <vector>

namespace bt::sources {
namespace {

using simdjson::dom::element;
using simdjson::dom::element_type;

std::string join(const std::string& path, std::string_view key) {
  return path.empty() ? std::string{key} : path + "." + std::string{key};
}

std::optional<std::string> find_duplicate(const element& e, const std::string& path) {
  switch (e.type()) {
    case element_type::OBJECT: {
      auto obj = e.get_object().value_unsafe();
      std::vector<std::string_view> keys;
      keys.reserve(obj.size());
      for (auto field : obj)
        keys.push_back(field.key);
      // Sorted copy for the check; the original order names the second occurrence.
      auto sorted = keys;
      std::sort(sorted.begin(), sorted.end());
      if (auto dup = std::adjacent_find(sorted.begin(), sorted.end()); dup != sorted.end())
        return join(path, *dup);
      for (auto field : obj)
        if (auto inner = find_duplicate(field.value, join(path, field.key)))
          return inner;
      return std::nullopt;
    }
    case element_type::ARRAY: {
      std::size_t i = 0;
      // A local: iterating the temporary result directly would dangle.
      auto items = e.get_array().value_unsafe();
      for (auto item : items) {
        if (auto inner = find_duplicate(item, path + "[" + std::to_string(i) + "]"))
          return inner;
        ++i;
      }
      return std::nullopt;
    }
    default: return std::nullopt;
  }
}

} // namespace

std::optional<std::string> duplicate_key(const element& doc) {
  return find_duplicate(doc, "");
}

} // namespace bt::sources
