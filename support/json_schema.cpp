#include "support/json_schema.hpp"

#include <locale>
#include <mutex>
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

#include "support/file.hpp"

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
/// Every other format is checked only on strings, as JSON Schema says: valijson 1.0
/// applies it to any value and throws on one that is not a string (an object where a
/// `uri` is due, found by fuzz_cdevents), so it goes under `if: {type: string}`.
void rewrite_formats(nlohmann::json& schema) {
  if (schema.is_array()) {
    for (auto& item : schema)
      rewrite_formats(item);
    return;
  }
  if (!schema.is_object())
    return;
  for (auto& [key, value] : schema.items())
    rewrite_formats(value);
  auto format = schema.find("format");
  if (format == schema.end() || !format->is_string())
    return;
  auto* pattern = pattern_of_format(format->get<std::string>());
  if (!pattern) {
    nlohmann::json on_strings{{"if", {{"type", "string"}}}, {"then", {{"format", *format}}}};
    schema.erase(format);
    schema["allOf"].push_back(std::move(on_strings));
    return;
  }
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

namespace {

/// Where in `folder` the document `uri` a `$ref` of the schema `root_id` names is:
/// `uri` relative to the folder of `root_id`, or as it is when it is a relative path.
/// Nothing for anything else (the network, `..`, an absolute path).
std::optional<std::string> local_document(const std::string& folder, const std::string& root_id,
                                          const std::string& uri) {
  std::string relative = uri;
  if (uri.find("://") != std::string::npos) {
    auto base = root_id.substr(0, root_id.rfind('/') + 1);
    if (base.empty() || !uri.starts_with(base))
      return std::nullopt;
    relative = uri.substr(base.size());
  }
  if (relative.empty() || relative.front() == '/' || relative.find("..") != std::string::npos)
    return std::nullopt;
  auto name = relative.substr(relative.rfind('/') + 1);
  if (name.find('.') == std::string::npos)
    relative += ".json";
  return folder + "/" + relative;
}

/// Makes the relative `$ref`s of `doc` (a document with `$id` `id`) absolute, as RFC
/// 3986 resolves a relative path against `id`. valijson 1.0 hands a fetched document's
/// relative references on unresolved, and the same name means different files in
/// different folders.
void absolute_refs(nlohmann::json& doc, const std::string& id) {
  auto base = id.substr(0, id.rfind('/') + 1);
  if (base.find("://") == std::string::npos)
    return;
  auto walk = [&](auto& self, nlohmann::json& node) -> void {
    if (node.is_array())
      for (auto& item : node)
        self(self, item);
    if (!node.is_object())
      return;
    for (auto& [key, value] : node.items())
      if (key == "$ref" && value.is_string()) {
        auto ref = value.template get<std::string>();
        if (!ref.empty() && ref.front() != '#' && ref.front() != '/' && ref.find("://") == std::string::npos)
          value = base + ref;
      } else {
        self(self, value);
      }
  };
  walk(walk, doc);
}

} // namespace

namespace {

/// valijson compiles a std::regex for every pattern it checks, and std::regex's scanner
/// calls std::ctype<char>::narrow, which fills a per-locale cache on first use of each
/// character: two threads validating at once write that cache together (GCC PR 77704;
/// ThreadSanitizer reports it). Filling it once, before any schema is used, leaves
/// every later call a read.
void warm_ctype_cache() {
  static std::once_flag once;
  std::call_once(once, [] {
    auto& ctype = std::use_facet<std::ctype<char>>(std::locale{});
    for (int c = 0; c < 256; ++c)
      ctype.narrow(static_cast<char>(c), '\0');
  });
}

} // namespace

std::optional<json_schema> json_schema::parse(const std::string& text, std::string& error,
                                              const std::string& folder) {
  warm_ctype_cache();
  try {
    auto doc = yaml_to_json(text);
    if (!doc.is_object()) {
      error = "a schema is an object";
      return std::nullopt;
    }
    rewrite_formats(doc);
    auto state = std::make_shared<impl>();
    valijson::SchemaParser parser{valijson::SchemaParser::kDraft7};
    valijson::adapters::NlohmannJsonAdapter adapter{doc};
    if (folder.empty()) {
      parser.populateSchema(adapter, state->schema);
    } else {
      auto root_id = doc.value("$id", std::string{});
      absolute_refs(doc, root_id);
      auto fetch = [&](const std::string& uri) -> const nlohmann::json* {
        auto path = local_document(folder, root_id, uri);
        auto found = path ? read_file(*path) : std::nullopt;
        if (!found)
          throw std::runtime_error{"$ref " + uri + ": not a schema in " + folder};
        auto referenced = std::make_unique<nlohmann::json>(yaml_to_json(*found));
        if (!referenced->is_object())
          throw std::runtime_error{"$ref " + uri + ": " + *path + " is not a schema"};
        rewrite_formats(*referenced);
        absolute_refs(*referenced, referenced->value("$id", uri));
        return referenced.release();
      };
      auto release = [](const nlohmann::json* d) { delete d; };
      parser.populateSchema(adapter, state->schema, fetch, release);
    }
    json_schema out;
    out.impl_ = std::move(state);
    return out;
  } catch (const std::exception& e) {
    error = e.what();
    return std::nullopt;
  }
}

std::optional<json_schema> json_schema::load(const std::string& path, std::string& error) {
  auto text = read_file(path);
  if (!text) {
    error = path + ": cannot be read";
    return std::nullopt;
  }
  auto slash = path.rfind('/');
  auto folder = slash == std::string::npos ? std::string{"."} : path.substr(0, slash);
  auto schema = parse(*text, error, folder);
  if (!schema)
    error = path + ": " + error;
  return schema;
}

std::vector<std::string> json_schema::problems(const nlohmann::json& doc) const {
  valijson::ValidationResults results;
  valijson::adapters::NlohmannJsonAdapter adapter{doc};
  std::vector<std::string> out;
  std::unique_lock guard{impl_->mutex};
  try {
    if (impl_->validator.validate(impl_->schema, adapter, &results))
      return out;
  } catch (const std::exception& e) {
    // valijson throws where it meets a value it cannot check; never past this border.
    return {"/: the document could not be checked: " + std::string{e.what()}};
  }
  guard.unlock();
  valijson::ValidationResults::Error e;
  while (results.popError(e))
    out.push_back(pointer_of(e.context) + ": " + e.description);
  return out;
}

} // namespace bt::support
