// libFuzzer target: Taskcluster queue messages and task definitions on arbitrary bytes.
// The input is read twice: as a queue message (checked, read as job events and, when
// accepted, mapped with a valid task definition), and as a task definition mapped with
// a valid completed-task message.
//
// Properties checked beyond "no crash, no sanitizer report": a refusal renders a JSON
// error body; an accepted message yields one job event per run, each applying to a
// build; its kept payload is JSON; every job message the mapping makes has an id, a
// routing key of three words and the fields the pulse-job schema requires.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <nlohmann/json.hpp>

#include "model/build.hpp"
#include "sources/taskcluster.hpp"
#include "sources/treeherder.hpp"

namespace {

using nlohmann::json;
namespace th = bt::sources::treeherder;

const json& valid_task() {
  static const json task = {
    {"created", "2019-06-26T19:26:00.000Z"},
    {"workerType", "w"},
    {"routes", {"tc-treeherder.v2.try.918d7c84da371bda26460fb4b50f161d32107880.1"}},
    {"metadata", {{"name", "n"}, {"owner", "o@example.com"}, {"description", "d"}}},
    {"extra", {{"treeherder", {{"symbol", "s"}}}}}};
  return task;
}

const json& valid_payload() {
  static const json payload = json::parse(R"({"runId":0,"status":{"taskId":"B3EheQ-IQ5aPzw34KS_a6g",
    "taskGroupId":"EJAo7mQyRqS-jmzebhceFA","schedulerId":"s","runs":[{"runId":0,"state":"completed",
    "reasonCreated":"scheduled","reasonResolved":"completed","started":"2019-06-26T19:27:48.307Z",
    "resolved":"2019-06-26T19:36:10.521Z","workerId":"w-1"}]}})");
  return payload;
}

void check(const th::mapping& m) {
  for (auto& job : m.jobs) {
    if (job.id.empty())
      std::abort();
    if (std::count(job.routing_key.begin(), job.routing_key.end(), '.') != 2)
      std::abort();
    for (auto key : {"taskId", "origin", "buildSystem", "display", "state", "jobKind", "version"})
      if (!job.payload.contains(key))
        std::abort();
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input{reinterpret_cast<const char*>(data), size};
  th::settings s{"tc-treeherder", "https://tc.example.com", nullptr, nullptr};
  auto parsed = bt::sources::taskcluster::parse_message(input);
  if (auto* refused = std::get_if<bt::sources::rejection>(&parsed)) {
    (void)json::parse(refused->body()); // must be JSON whatever was quoted
  } else {
    auto& m = std::get<bt::sources::taskcluster::task_message>(parsed);
    auto events = bt::sources::taskcluster::job_events(m);
    if (events.size() != m.runs.size())
      std::abort();
    bt::model::build b;
    for (auto& e : events)
      bt::model::apply(b, bt::model::envelope{bt::sources::taskcluster::build_of(m), "", {}, std::nullopt, e}, {});
    auto payload = json::parse(m.payload); // throws (and fails) unless it is JSON
    check(th::map_task_event(m.event, payload, valid_task(), {{m.run_id, {"public/a b", "x/"}}}, s));
  }
  auto task = json::parse(input, nullptr, false);
  if (!task.is_discarded())
    for (auto e : {th::queue_event::pending, th::queue_event::completed, th::queue_event::exception})
      check(th::map_task_event(e, valid_payload(), task, {{0, {"public/log"}}}, s));
  return 0;
}
