#include "sources/payload.hpp"

#include <algorithm>
#include <array>
#include <string_view>
#include <vector>

namespace bt::sources {
namespace {

using simdjson::dom::element;
using simdjson::dom::element_type;
using simdjson::dom::object;

std::string join(const std::string& path, std::string_view key) {
  return path.empty() ? std::string{key} : path + "." + std::string{key};
}

bool any_repeated_key(const element& e);
bool any_nested_repeated_key(const object& obj);

/// A key of `obj` that appears twice, if any. Webhook objects are small: pairwise
/// comparison on the stack up to `small` keys, a sorted copy beyond.
std::optional<std::string_view> repeated_key(const object& obj) {
  constexpr std::size_t small = 24;
  std::array<std::string_view, small> few;
  std::vector<std::string_view> many;
  std::size_t n = 0;
  for (auto field : obj) {
    if (n < small) {
      for (std::size_t i = 0; i < n; ++i)
        if (few[i] == field.key)
          return field.key;
      few[n] = field.key;
    } else {
      if (many.empty())
        many.assign(few.begin(), few.end());
      many.push_back(field.key);
    }
    ++n;
  }
  if (many.empty())
    return std::nullopt;
  std::sort(many.begin(), many.end());
  if (auto dup = std::adjacent_find(many.begin(), many.end()); dup != many.end())
    return *dup;
  return std::nullopt;
}

/// Whether any object in `e` repeats a key. One pass, no paths built: a valid payload
/// (almost every one) costs only the comparisons.
bool any_repeated_key(const element& e) {
  switch (e.type()) {
    case element_type::OBJECT: {
      constexpr std::size_t small = 24;
      std::array<std::string_view, small> seen;
      std::size_t n = 0;
      auto obj = e.get_object().value_unsafe();
      for (auto field : obj) {
        if (n == small)
          return repeated_key(obj).has_value() || any_nested_repeated_key(obj);
        for (std::size_t i = 0; i < n; ++i)
          if (seen[i] == field.key)
            return true;
        seen[n++] = field.key;
        if (any_repeated_key(field.value))
          return true;
      }
      return false;
    }
    case element_type::ARRAY: {
      // A local: iterating the temporary result directly would dangle.
      auto items = e.get_array().value_unsafe();
      for (auto item : items)
        if (any_repeated_key(item))
          return true;
      return false;
    }
    default: return false;
  }
}

bool any_nested_repeated_key(const object& obj) {
  for (auto field : obj)
    if (any_repeated_key(field.value))
      return true;
  return false;
}

/// The path of the first repeated key, for the error; only called when there is one.
std::optional<std::string> path_of_repeated_key(const element& e, const std::string& path) {
  switch (e.type()) {
    case element_type::OBJECT: {
      auto obj = e.get_object().value_unsafe();
      if (auto key = repeated_key(obj))
        return join(path, *key);
      for (auto field : obj)
        if (auto inner = path_of_repeated_key(field.value, join(path, field.key)))
          return inner;
      return std::nullopt;
    }
    case element_type::ARRAY: {
      std::size_t i = 0;
      auto items = e.get_array().value_unsafe();
      for (auto item : items) {
        if (auto inner = path_of_repeated_key(item, path + "[" + std::to_string(i) + "]"))
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
  if (!any_repeated_key(doc))
    return std::nullopt;
  return path_of_repeated_key(doc, "");
}

} // namespace bt::sources
