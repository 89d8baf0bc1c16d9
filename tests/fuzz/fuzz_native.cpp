// libFuzzer target: the native event API's parser on arbitrary bytes. Input: the first
// line is the Content-Type (empty: one JSON event), the rest the body.
//
// Properties checked beyond "no crash, no sanitizer report": a refusal renders a JSON
// error body; a batch is all or nothing; every accepted event survives the journal
// codec unchanged and applies to a build that renders as API JSON and survives the
// snapshot codec unchanged.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <nlohmann/json.hpp>

#include "model/codec.hpp"
#include "model/json.hpp"
#include "sources/native.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input{reinterpret_cast<const char*>(data), size};
  auto newline = input.find('\n');
  auto content_type = newline == std::string_view::npos ? std::string_view{}
                                                        : input.substr(0, newline);
  auto body = newline == std::string_view::npos ? input : input.substr(newline + 1);
  auto now = bt::model::timestamp{std::chrono::milliseconds{1'764'547'200'000}};

  auto parsed = bt::sources::native_parse(content_type, body, now);
  if (auto* refused = std::get_if<bt::sources::rejection>(&parsed)) {
    (void)nlohmann::json::parse(refused->body()); // must be JSON whatever was quoted
    return 0;
  }
  auto& events = std::get<0>(parsed);
  if (events.empty())
    std::abort(); // an accepted request always holds an event
  bt::model::build b;
  for (auto& e : events) {
    auto back = bt::model::codec::decode_envelope(
      bt::model::codec::encode(e));
    if (!back || !(*back == e))
      std::abort(); // the journal would not give back what was acknowledged
    if (e.key.source.empty() || e.key.pipeline.empty() || e.key.id.empty())
      std::abort(); // every event is addressed to one build
    if (b.key.id.empty() || b.key == e.key)
      bt::model::apply(b, e, now);
  }
  (void)bt::model::to_text(bt::model::to_json(b));
  auto stored = bt::model::codec::decode_build(bt::model::codec::encode(b));
  if (!stored || !(*stored == b))
    std::abort(); // a snapshot would not give back the build
  auto record = bt::model::record_of(b);
  auto kept = bt::model::codec::decode_record(bt::model::codec::encode(record), b.key);
  if (!kept || !(*kept == record))
    std::abort(); // a restart would not list the build as it is
  return 0;
}
