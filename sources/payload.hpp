#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

#include <simdjson.h>

#include "model/time.hpp"
#include "sources/rejection.hpp"

namespace bt::sources {

/// What is wrong with `value` as a part of a build key or a target name: it must be
/// non-empty, at most 256 bytes, without '/' or control characters.
std::optional<std::string> key_part_problem(const std::string& value);

/// 422 `invalid_field`: valid JSON, but `field` is not what the source expects.
rejection invalid(std::string field, std::string message);

/// Typed access to the optional fields of one payload object; a present field of
/// the wrong type is a rejection naming its path. `null` counts as absent.
struct fields {
  simdjson::dom::object obj;
  std::string path; ///< of `obj` in the payload, "" for the top level

  std::optional<simdjson::dom::element> get(std::string_view name) const;
  /// `path.name`
  std::string at(std::string_view name) const;
  checked<std::string> string(std::string_view name) const;
  checked<std::optional<std::int64_t>> integer(std::string_view name) const;
  checked<std::optional<double>> number(std::string_view name) const;
  checked<bool> boolean(std::string_view name) const;
  /// A time as '2024-05-10 12:34:56 UTC' or RFC 3339.
  checked<std::optional<model::timestamp>> time(std::string_view name) const;
  checked<std::optional<simdjson::dom::object>> child(std::string_view name, bool required) const;
  /// The first key not in `known`, as a rejection: a misspelt field is an error, not
  /// silently ignored.
  std::optional<rejection> only(std::initializer_list<std::string_view> known) const;
};

/// Parses `text` as one JSON document with the calling thread's parser (which keeps
/// its buffers between calls), valid until the thread parses again. 400
/// `malformed_json` when it is not JSON (`what` names it in the message),
/// `duplicate_key` when one object holds a key twice.
checked<simdjson::dom::element> parse_document(std::string_view text, std::string_view what);

/// Parses `text` as one JSON object with the calling thread's parser (which keeps its
/// buffers between calls): its fields, valid until the thread parses again. 400
/// `malformed_json` when it is not a JSON object (`what` names it in the message),
/// `duplicate_key` when one object holds a key twice.
checked<fields> parse_object(std::string_view text, std::string_view what);

/// Unwraps a checked value or returns its rejection from the enclosing function.
#define BT_TRY(var, expr)                                                                      \
  auto var##_checked = (expr);                                                                 \
  if (auto* r = std::get_if<rejection>(&var##_checked))                                        \
    return *r;                                                                                 \
  auto var = std::move(std::get<0>(var##_checked))

/// The path of the first key that appears twice in one object of `doc` (`build.env.CI`,
/// `jobs[2].name`), or nothing. JSON parsers disagree on which of two equal keys wins
/// (simdjson finds the first, most others keep the last), so a payload that has one
/// could mean one thing to its sender and another here: sources refuse it.
std::optional<std::string> duplicate_key(const simdjson::dom::element& doc);

} // namespace bt::sources
