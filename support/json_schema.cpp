#include "support/json_schema.hpp"

#include <fstream>
#include <mutex>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

// Without it valijson aborts the process on a schema it cannot read.
#define VALIJSON_USE_EXCEPTIONS 1
#include <valijson/adapters/nlohmann_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validation_results.hpp>
#include <valijson/validator.hpp>

namespace bt::support {
namespace {

nlohmann::json scalar(const YAML::Node& n) {
  const auto& s = n.Scalar();
  // yaml-cpp tags a plain scalar "?" and a quoted one "!".
  if (n.Tag() != "?")
    return s;
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL")
    return nullptr;
  bool b;
  if (YAML::convert<bool>::decode(n, b))
    return b;
  long long i;
  if (YAML::convert<long long>::decode(n, i))
    return i;
  double d;
  if (YAML::convert<double>::decode(n, d))
    return d;
  return s;
}

nlohmann::json to_json(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return nullptr;
    case YAML::NodeType::Scalar:
      return scalar(n);
    case YAML::NodeType::Sequence: {
      auto out = nlohmann::json::array();
      for (const auto& item : n)
        out.push_back(to_json(item));
      return out;
    }
    case YAML::NodeType::Map: {
      auto out = nlohmann::json::object();
      for (const auto& entry : n)
        out[entry.first.as<std::string>()] = to_json(entry.second);
      return out;
    }
  }
  return nullptr;
}

/// `/a/b/0` from valijson's context (`<root>`, `[a]`, `[0]`).
std::string pointer_of(const std::vector<std::string>& context) {
  std::string out;
  for (auto& part : context) {
    if (part.size() < 2 || part.front() != '[' || part.back() != ']')
      continue;
    out += '/';
    for (char c : std::string_view{part}.substr(1, part.size() - 2))
      out += c == '~' ? "~0" : c == '/' ? "~1" : std::string(1, c);
  }
  return out.empty() ? "/" : out;
}

} // namespace

struct json_schema::impl {
  valijson::Schema schema;
  /// One validator for every document: it keeps the schema's patterns compiled
  /// (valijson compiles a pattern once per validator), which is most of the cost of
  /// a validation otherwise. Validations take turns on it.
  mutable std::mutex mutex;
  mutable valijson::Validator validator;
};

namespace {

/// The date, time and date-time formats as the patterns valijson 1.0 checks them by
/// (its regular expressions, with its month lengths folded in: February up to 29).
const char* pattern_of_format(const std::string& format) {
  static const std::string date =
    "([0-9]+)-((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|(0[469]|11)-(0[1-9]|[12][0-9]|30)"
    "|02-(0[1-9]|[12][0-9]))";
  static const std::string time =
    R"(([01][0-9]|2[0-3]):([0-5][0-9]):([0-5][0-9]|60)(\.[0-9]+)?(([Zz])|([\+|\-]([01][0-9]|2[0-3]):[0-5][0-9])))";
  static const std::string date_pattern = "^" + date + "$";
  static const std::string time_pattern = "^" + time + "$";
  static const std::string date_time_pattern = "^" + date + "[Tt]" + time + "$";
  if (format == "date")
    return date_pattern.c_str();
  if (format == "time")
    return time_pattern.c_str();
  if (format == "date-time")
    return date_time_pattern.c_str();
  return nullptr;
}

/// Turns the date and time formats of `schema` into the same checks as patterns.
/// valijson 1.0 (Debian 12's) compiles a format's regular expression for every value
/// it checks, about 0.7 ms each, while it compiles a pattern once per validator: the
/// three times of a Treeherder job made its validation cost 2 ms.
void formats_as_patterns(nlohmann::json& schema) {
  if (schema.is_array()) {
    for (auto& item : schema)
      formats_as_patterns(item);
    return;
  }
  if (!schema.is_object())
    return;
  for (auto& [key, value] : schema.items())
    formats_as_patterns(value);
  auto format = schema.find("format");
  if (format == schema.end() || !format->is_string())
    return;
  auto* pattern = pattern_of_format(format->get<std::string>());
  if (!pattern)
    return;
  schema.erase(format);
  if (!schema.contains("pattern"))
    schema["pattern"] = pattern;
  else
    schema["allOf"].push_back({{"pattern", pattern}});
}

} // namespace

nlohmann::json yaml_to_json(const std::string& text) {
  return to_json(YAML::Load(text));
}

std::optional<json_schema> json_schema::parse(const std::string& text, std::string& error) {
  try {
    auto doc = yaml_to_json(text);
    if (!doc.is_object()) {
      error = "a schema is an object";
      return std::nullopt;
    }
    formats_as_patterns(doc);
    auto state = std::make_shared<impl>();
    valijson::SchemaParser parser{valijson::SchemaParser::kDraft7};
    valijson::adapters::NlohmannJsonAdapter adapter{doc};
    parser.populateSchema(adapter, state->schema);
    json_schema out;
    out.impl_ = std::move(state);
    return out;
  } catch (const std::exception& e) {
    error = e.what();
    return std::nullopt;
  }
}

std::optional<json_schema> json_schema::load(const std::string& path, std::string& error) {
  std::ifstream in{path};
  if (!in) {
    error = path + ": cannot be read";
    return std::nullopt;
  }
  std::stringstream text;
  text << in.rdbuf();
  auto schema = parse(text.str(), error);
  if (!schema)
    error = path + ": " + error;
  return schema;
}

std::vector<std::string> json_schema::problems(const nlohmann::json& doc) const {
  valijson::ValidationResults results;
  valijson::adapters::NlohmannJsonAdapter adapter{doc};
  std::vector<std::string> out;
  std::unique_lock guard{impl_->mutex};
  if (impl_->validator.validate(impl_->schema, adapter, &results))
    return out;
  guard.unlock();
  valijson::ValidationResults::Error e;
  while (results.popError(e))
    out.push_back(pointer_of(e.context) + ": " + e.description);
  return out;
}

} // namespace bt::support
