// libFuzzer target: CDEvents requests on arbitrary bytes, as the body of a structured
// CloudEvent, of a batch, and of a binary-mode request whose ce-* headers name the
// conformance examples' context.
//
// Properties checked beyond "no crash, no sanitizer report": a refusal renders a JSON
// error body; an accepted request's envelopes are one per tracked event, a taskRun's
// naming its build by id alone (no pipeline) and a pipelineRun's a valid build key,
// and each applies to a build.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "model/build.hpp"
#include "sources/cdevents.hpp"

namespace {

namespace cd = bt::sources::cdevents;

const cd::schemas& schemas() {
  static const cd::schemas s = cd::schemas::load(std::string{BT_SCHEMA_DIR} + "/cdevents-0.4.1");
  return s;
}

void check(std::string_view body, const std::map<std::string, std::string, std::less<>>& headers) {
  bt::sources::inbound in{[&](std::string_view name) -> std::string_view {
                            auto it = headers.find(name);
                            return it == headers.end() ? std::string_view{} : it->second;
                          },
                          body, bt::model::timestamp{}};
  auto parsed = cd::parse(in, schemas());
  if (auto* refused = std::get_if<bt::sources::rejection>(&parsed)) {
    (void)nlohmann::json::parse(refused->body()); // must be JSON whatever was quoted
    return;
  }
  auto& events = std::get<cd::request>(parsed).events;
  auto envelopes = cd::envelopes(events, {});
  std::size_t tracked = 0;
  for (auto& e : events)
    tracked += e.type.has_value();
  if (envelopes.size() != tracked)
    std::abort();
  for (auto& e : envelopes) {
    bool task = std::holds_alternative<bt::model::job_event>(e.body);
    if (task != e.key.pipeline.empty())
      std::abort();
    auto key = e.key;
    if (task)
      key.pipeline = "p";
    if (!bt::model::parse_build_key(key.str()))
      std::abort();
    bt::model::build b;
    bt::model::apply(b, e, {});
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input{reinterpret_cast<const char*>(data), size};
  check(input, {{"Content-Type", "application/cloudevents+json"}});
  check(input, {{"Content-Type", "application/cloudevents-batch+json"}});
  check(input, {{"Content-Type", "application/json"},
                {"ce-specversion", "1.0"},
                {"ce-id", "271069a8-fc18-44f1-b38f-9d70a1695819"},
                {"ce-source", "/event/source/123"},
                {"ce-type", "dev.cdevents.pipelinerun.finished.0.2.0"}});
  return 0;
}
