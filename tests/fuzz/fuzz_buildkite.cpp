// libFuzzer target: the Buildkite source (authentication headers, then the payload
// parser) on arbitrary bytes. Input: the first line is the X-Buildkite-Event header
// value (also tried as an X-Buildkite-Signature value), the rest the body.
//
// Properties checked beyond "no crash, no sanitizer report": a refusal renders a JSON
// error body; every accepted event survives the journal codec unchanged and renders
// as API JSON.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <nlohmann/json.hpp>

#include "model/codec.hpp"
#include "model/json.hpp"
#include "sources/buildkite.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input{reinterpret_cast<const char*>(data), size};
  auto newline = input.find('\n');
  auto first = newline == std::string_view::npos ? std::string_view{} : input.substr(0, newline);
  auto body = newline == std::string_view::npos ? input : input.substr(newline + 1);
  auto now = bt::model::timestamp{std::chrono::milliseconds{1'764'547'200'000}};

  static const bt::config::buildkite_config cfg = [] {
    bt::config::buildkite_config c;
    c.token = "fuzz-token";
    return c;
  }();
  if (auto denied = bt::sources::buildkite_authenticate(cfg, {first, "", first}, body, now))
    (void)nlohmann::json::parse(denied->body());

  auto parsed = bt::sources::buildkite_parse(first, body, now);
  if (auto* refused = std::get_if<bt::sources::rejection>(&parsed)) {
    (void)nlohmann::json::parse(refused->body()); // must be JSON whatever was quoted
    return 0;
  }
  for (auto& e : std::get<bt::sources::buildkite_delivery>(parsed).envelopes) {
    auto back = bt::model::codec::decode_envelope(
      bt::model::codec::encode(e));
    if (!back || !(*back == e))
      std::abort(); // the journal would not give back what was acknowledged
    bt::model::build b;
    bt::model::apply(b, e, now);
    (void)bt::model::to_text(bt::model::to_json(b));
  }
  return 0;
}
