#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace bt::support {

/// A JSON Schema (draft 6 and 7 keywords, formats such as `date-time` checked),
/// validated with valijson (Debian's libvalijson-dev), loaded from YAML or JSON text:
/// the published Treeherder schemas are YAML.
class json_schema {
public:
  /// Loads `text`; nothing, with `error` saying why, when it is not YAML or not a
  /// schema valijson can read. `folder`, when given, is where the schemas its `$ref`s
  /// name are read from (see load()); without it a reference to another document is
  /// an error.
  static std::optional<json_schema> parse(const std::string& text, std::string& error,
                                          const std::string& folder = {});
  /// Loads the file at `path`, as parse() does; `error` names the file. A `$ref` to
  /// another document is read from `path`'s folder: relative to the schema's `$id`
  /// (`"$ref": "links/x"` of `https://host/schema/a` is `<folder>/links/x`), `.json`
  /// added when the name has no extension. Nothing outside that folder is read, and
  /// nothing from the network.
  static std::optional<json_schema> load(const std::string& path, std::string& error);

  /// Every way `doc` fails the schema, each as `<JSON pointer>: <reason>`; empty
  /// when it validates.
  std::vector<std::string> problems(const nlohmann::json& doc) const;
  bool accepts(const nlohmann::json& doc) const { return problems(doc).empty(); }

private:
  struct impl;
  std::shared_ptr<const impl> impl_;
};

/// A YAML document as JSON: plain scalars that read as null, booleans or numbers
/// become those, quoted ones stay strings.
nlohmann::json yaml_to_json(const std::string& text);

} // namespace bt::support
