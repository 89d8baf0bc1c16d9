#pragma once

#include <charconv>
#include <string>
#include <string_view>
#include <type_traits>

namespace bt::model {

/// Appends `s` to `out` as a JSON string: quoted, `"` and `\` escaped, control
/// characters as `\u00XX`, and each byte that is not valid UTF-8 replaced by U+FFFD
/// (as `to_text` does), so that the text is always valid JSON. For the documents
/// written directly, without building a DOM first: the journal, snapshots and the
/// build summaries of lists and the `builds` feed.
void append_json_string(std::string& out, std::string_view s);

/// Appends the integer `v` to `out` as JSON.
template <class Int>
  requires std::is_integral_v<Int>
void append_json_integer(std::string& out, Int v) {
  char buf[24];
  out.append(buf, std::to_chars(buf, buf + sizeof buf, v).ptr);
}

} // namespace bt::model
