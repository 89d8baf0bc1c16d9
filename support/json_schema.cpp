#include "support/json_schema.hpp"

#include <fstream>
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
};

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
  valijson::Validator validator;
  valijson::ValidationResults results;
  valijson::adapters::NlohmannJsonAdapter adapter{doc};
  std::vector<std::string> out;
  if (validator.validate(impl_->schema, adapter, &results))
    return out;
  valijson::ValidationResults::Error e;
  while (results.popError(e))
    out.push_back(pointer_of(e.context) + ": " + e.description);
  return out;
}

} // namespace bt::support
