#include "support/json_template.hpp"

#include <algorithm>
#include <mutex>

#include <kainjow/mustache.hpp>
#include <nlohmann/json.hpp>

namespace bt::support {
namespace {

namespace mustache = kainjow::mustache;

/// `s` as the inside of a JSON string.
std::string json_escape(const std::string& s) {
  auto quoted = nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return quoted.substr(1, quoted.size() - 2);
}

mustache::data data_of(const nlohmann::json& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::object: {
      mustache::data d{mustache::data::type::object};
      for (auto& [k, v] : j.items())
        d.set(k, data_of(v));
      return d;
    }
    case nlohmann::json::value_t::array: {
      mustache::data d{mustache::data::type::list};
      for (auto& v : j)
        d.push_back(data_of(v));
      return d;
    }
    case nlohmann::json::value_t::string: return mustache::data{j.get<std::string>()};
    case nlohmann::json::value_t::boolean: return mustache::data{j.get<bool>()};
    case nlohmann::json::value_t::null: return mustache::data{std::string{}};
    default: return mustache::data{j.dump()};
  }
}

} // namespace

struct json_template::impl {
  explicit impl(const std::string& text) : t{text} {
    t.set_custom_escape(json_escape);
  }
  mustache::mustache t;
  std::mutex m; // rendering writes the template's error state
};

std::optional<json_template> json_template::compile(const std::string& text, std::string& error) {
  auto i = std::make_shared<impl>(text);
  if (!i->t.is_valid()) {
    // kainjow says "... at <offset>": name the line instead.
    error = i->t.error_message();
    auto at = error.rfind(" at ");
    if (at != std::string::npos) {
      try {
        auto offset = std::min<std::size_t>(std::stoul(error.substr(at + 4)), text.size());
        auto line = 1 + std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(offset), '\n');
        error = error.substr(0, at) + " on line " + std::to_string(line);
      } catch (const std::exception&) {
      }
    }
    return std::nullopt;
  }
  json_template out;
  out.impl_ = std::move(i);
  return out;
}

std::string json_template::render(const nlohmann::json& variables) const {
  std::lock_guard guard{impl_->m};
  return impl_->t.render(data_of(variables));
}

} // namespace bt::support
