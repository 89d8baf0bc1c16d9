#include "sources/payload.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <string_view>
#include <vector>

namespace bt::sources {

rejection invalid(std::string field, std::string message) {
  return {422, "invalid_field", std::move(message), std::move(field)};
}

std::optional<simdjson::dom::element> fields::get(std::string_view name) const {
  simdjson::dom::element e;
  if (obj[name].get(e) != simdjson::SUCCESS || e.is_null())
    return std::nullopt;
  return e;
}

/// What is wrong with `value` as a part of a build key or a target name: it must be
/// non-empty, at most 256 bytes, without '/' or control characters.
std::optional<std::string> key_part_problem(const std::string& value) {
  if (value.empty())
    return "required, a non-empty string";
  if (value.size() > 256)
    return "at most 256 bytes";
  if (std::any_of(value.begin(), value.end(),
                  [](char c) { return c == '/' || static_cast<unsigned char>(c) < 0x20; }))
    return "may not hold '/' or control characters";
  return std::nullopt;
}

std::string fields::at(std::string_view name) const {
  return path.empty() ? std::string{name} : path + "." + std::string{name};
}

checked<std::string> fields::string(std::string_view name) const {
  auto v = get(name);
  if (!v)
    return std::string{};
  if (!v->is_string())
    return invalid(at(name), "expected a string");
  return std::string{v->get_string().value_unsafe()};
}

checked<std::optional<std::int64_t>> fields::integer(std::string_view name) const {
  auto v = get(name);
  if (!v)
    return std::optional<std::int64_t>{};
  if (!v->is_int64())
    return invalid(at(name), "expected an integer");
  return std::optional<std::int64_t>{v->get_int64().value_unsafe()};
}

checked<std::optional<double>> fields::number(std::string_view name) const {
  auto v = get(name);
  if (!v)
    return std::optional<double>{};
  if (!v->is_number())
    return invalid(at(name), "expected a number");
  auto d = v->get_double().value_unsafe();
  if (!std::isfinite(d))
    return invalid(at(name), "expected a finite number");
  return std::optional<double>{d};
}

checked<bool> fields::boolean(std::string_view name) const {
  auto v = get(name);
  if (!v)
    return false;
  if (!v->is_bool())
    return invalid(at(name), "expected true or false");
  return v->get_bool().value_unsafe();
}

checked<std::optional<model::timestamp>> fields::time(std::string_view name) const {
  auto v = get(name);
  if (!v)
    return std::optional<model::timestamp>{};
  if (v->is_string())
    if (auto t = model::parse_time(v->get_string().value_unsafe()))
      return std::optional<model::timestamp>{*t};
  return invalid(at(name), "expected a time like '2024-05-10 12:34:56 UTC' or RFC 3339");
}

checked<std::optional<simdjson::dom::object>> fields::child(std::string_view name,
                                                             bool required) const {
  auto v = get(name);
  if (!v && !required)
    return std::optional<simdjson::dom::object>{};
  if (!v || !v->is_object())
    return invalid(at(name), required ? "required object is missing" : "expected an object");
  return std::optional<simdjson::dom::object>{v->get_object().value_unsafe()};
}

checked<simdjson::dom::element> parse_document(std::string_view text, std::string_view what) {
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(text.data(), text.size()).get(doc) != simdjson::SUCCESS)
    return rejection{400, "malformed_json", std::string{what} + " is not valid JSON", ""};
  if (auto dup = duplicate_key(doc))
    return rejection{400, "duplicate_key", "a key appears twice in one object", *dup};
  return doc;
}

checked<fields> parse_object(std::string_view text, std::string_view what) {
  BT_TRY(doc, parse_document(text, what));
  if (!doc.is_object())
    return rejection{400, "malformed_json", std::string{what} + " must be a JSON object", ""};
  return fields{doc.get_object().value_unsafe(), ""};
}

std::optional<rejection> fields::only(std::initializer_list<std::string_view> known) const {
  for (auto field : obj)
    if (std::find(known.begin(), known.end(), field.key) == known.end())
      return invalid(at(field.key), "unknown field");
  return std::nullopt;
}

namespace {

using simdjson::dom::element;
using simdjson::dom::element_type;
using simdjson::dom::object;

std::string join(const std::string& path, std::string_view key) {
  return path.empty() ? std::string{key} : path + "." + std::string{key};
}

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

bool find_repeated_key(const element& e, std::string* path);

/// find_repeated_key() on a child of the element at `path`; `child_path` names the
/// child and is called only when a path is wanted. On a find, `path` becomes the
/// child's.
template <class ChildPath>
bool descend(const element& child, std::string* path, ChildPath child_path) {
  if (!path)
    return find_repeated_key(child, nullptr);
  auto inner = child_path();
  if (!find_repeated_key(child, &inner))
    return false;
  *path = std::move(inner);
  return true;
}

/// Whether any object in `e` repeats a key. With `path` (the path of `e` on entry), it
/// also says where; without, no path is built, so a valid payload (almost every one)
/// costs only the comparisons.
bool find_repeated_key(const element& e, std::string* path) {
  switch (e.type()) {
    case element_type::OBJECT: {
      auto obj = e.get_object().value_unsafe();
      if (auto key = repeated_key(obj)) {
        if (path)
          *path = join(*path, *key);
        return true;
      }
      for (auto field : obj)
        if (descend(field.value, path, [&] { return join(*path, field.key); }))
          return true;
      return false;
    }
    case element_type::ARRAY: {
      std::size_t i = 0;
      // A local: iterating the temporary result directly would dangle.
      auto items = e.get_array().value_unsafe();
      for (auto item : items) {
        if (descend(item, path, [&] { return *path + "[" + std::to_string(i) + "]"; }))
          return true;
        ++i;
      }
      return false;
    }
    default: return false;
  }
}

} // namespace

std::optional<std::string> duplicate_key(const element& doc) {
  // First without paths; only a payload that has a repeat is walked again for where.
  if (!find_repeated_key(doc, nullptr))
    return std::nullopt;
  std::string path;
  find_repeated_key(doc, &path);
  return path;
}

} // namespace bt::sources
