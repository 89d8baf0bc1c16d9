#pragma once

#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace bt::support {

/// A webhook body template: mustache (kainjow's, Debian's libkainjow-mustache-dev),
/// with `{{value}}` escaped for the inside of a JSON string (quotes, backslashes,
/// control characters) and `{{{value}}}` as is. Sections walk objects and lists;
/// numbers and booleans render as JSON writes them.
class json_template {
public:
  /// Compiles `text`; nothing, with `error` saying what and on which line, when it
  /// does not parse.
  static std::optional<json_template> compile(const std::string& text, std::string& error);

  /// The body for `variables` (a JSON object).
  std::string render(const nlohmann::json& variables) const;

private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

} // namespace bt::support
