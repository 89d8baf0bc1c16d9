#include "sources/source.hpp"

#include <algorithm>
#include <cctype>

#include "sources/buildkite.hpp"
#include "sources/cdevents.hpp"
#include "sources/native.hpp"
#include "sources/taskcluster.hpp"
#include "support/crypto.hpp"

namespace bt::sources {

std::vector<std::unique_ptr<source>> make_sources(const config::config& cfg) {
  std::vector<std::unique_ptr<source>> out;
  out.push_back(make_buildkite_source(cfg.buildkite));
  out.push_back(make_native_source(cfg.native));
  out.push_back(make_taskcluster_source(cfg.taskcluster));
  out.push_back(make_cdevents_source(cfg.cdevents));
  return out;
}

namespace {

/// `text` equals `lower` (lower case) but for the case of its letters.
bool equals_ignoring_case(std::string_view text, std::string_view lower) {
  return text.size() == lower.size()
         && std::equal(text.begin(), text.end(), lower.begin(), [](char a, char b) {
              return std::tolower(static_cast<unsigned char>(a)) == b;
            });
}

} // namespace

bool is_media_type(std::string_view value, std::string_view type) {
  auto essence = value.substr(0, value.find(';'));
  auto blank = [](char c) { return c == ' ' || c == '\t'; };
  while (!essence.empty() && blank(essence.front()))
    essence.remove_prefix(1);
  while (!essence.empty() && blank(essence.back()))
    essence.remove_suffix(1);
  return equals_ignoring_case(essence, type);
}

std::optional<rejection> check_bearer(std::string_view authorization, std::string_view token) {
  if (token.empty())
    return rejection{401, "not_configured", "no token is configured for this input",
                     "Authorization"};
  if (authorization.empty())
    return rejection{401, "missing_credentials", "send Authorization: Bearer <token>",
                     "Authorization"};
  // The scheme is case-insensitive (RFC 9110 §11.1); the token is compared exactly.
  constexpr std::string_view scheme = "bearer ";
  bool bearer = authorization.size() > scheme.size()
                && equals_ignoring_case(authorization.substr(0, scheme.size()), scheme);
  if (!bearer || !support::constant_time_equal(authorization.substr(scheme.size()), token))
    return rejection{401, "bad_token", "token does not match", "Authorization"};
  return std::nullopt;
}

} // namespace bt::sources
