// CDEvents as POST /webhooks/cdevents reads them (SPEC §3.5): both CloudEvents HTTP
// modes and batches, each CDEvent checked against its 0.4.1 schema and against its
// CloudEvent, then mapped onto builds (pipelineRuns) and jobs (taskRuns).
#include <algorithm>
#include <cctype>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "sources/cdevents.hpp"
#include "storm/cdevents_events.hpp"
#include "tests/fixtures.hpp"

using namespace bt;
using namespace bt::sources::cdevents;
using nlohmann::json;
namespace fake = bt::storm::cdevents;

namespace {

const schemas& loaded() {
  static const schemas s = schemas::load(std::string{BT_SOURCE_DIR} + "/schemas/cdevents-0.4.1");
  return s;
}

/// What parse() makes of `r`: the events, or the rejection.
sources::checked<request> read(const fake::request& r) {
  auto lower = [](std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    return s;
  };
  sources::inbound in{[&](std::string_view name) -> std::string_view {
                        for (auto& [k, v] : r.headers)
                          if (lower(k) == lower(std::string{name}))
                            return v;
                        return {};
                      },
                      r.body, model::timestamp{}};
  return parse(in, loaded());
}

std::vector<cdevent> events(const fake::request& r) {
  auto got = read(r);
  if (auto* bad = std::get_if<sources::rejection>(&got))
    throw std::runtime_error{std::to_string(bad->status) + " " + bad->field + ": " + bad->message};
  return std::get<request>(got).events;
}

/// The status and field a request is refused for; {0, "accepted"} when it is not.
std::pair<int, std::string> refusal(const fake::request& r) {
  auto got = read(r);
  auto* bad = std::get_if<sources::rejection>(&got);
  return bad ? std::pair{bad->status, bad->field} : std::pair{0, std::string{"accepted"}};
}

json conformance(const std::string& name) {
  return json::parse(test::fixture("cdevents/" + name + ".json"));
}

const std::vector<std::pair<std::string, tracked>> examples{
  {"pipelinerun_queued", tracked::pipelinerun_queued},
  {"pipelinerun_started", tracked::pipelinerun_started},
  {"pipelinerun_finished", tracked::pipelinerun_finished},
  {"taskrun_started", tracked::taskrun_started},
  {"taskrun_finished", tracked::taskrun_finished}};

} // namespace

// Every conformance example of the spec is read alike in binary and structured mode,
// and in one batch.
TEST(cdevents_source, conformance_examples_are_accepted_in_both_modes_and_in_a_batch) {
  std::vector<json> all;
  for (auto& [name, type] : examples) {
    auto doc = conformance(name);
    all.push_back(doc);
    for (auto r : {fake::binary(doc), fake::structured(doc)}) {
      auto got = events(r);
      ASSERT_EQ(got.size(), 1u) << name;
      auto& e = got.front();
      EXPECT_EQ(e.type, type) << name;
      EXPECT_EQ(e.id, doc["context"]["id"]) << name;
      EXPECT_EQ(e.subject_id, "mySubject123") << name;
      EXPECT_EQ(e.subject_source, "/event/source/123") << name;
    }
  }
  auto batch = events(fake::batch(all));
  ASSERT_EQ(batch.size(), all.size());
  for (std::size_t i = 0; i < all.size(); ++i)
    EXPECT_EQ(batch[i].type, examples[i].second);
  // The examples' mapping: the pipeline's name keys the build, the taskRun names its
  // pipelineRun by id alone.
  auto env = envelopes(batch, model::timestamp{});
  ASSERT_EQ(env.size(), 5u);
  EXPECT_EQ(env[2].key.str(), "cdevents/myPipeline/mySubject123");
  EXPECT_EQ(env[2].delivery, "271069a8-fc18-44f1-b38f-9d70a1695819");
  EXPECT_EQ(env[2].info->pipeline_name, "myPipeline");
  auto& finished = std::get<model::build_event>(env[2].body);
  EXPECT_EQ(finished.phase, model::build_event::finished);
  EXPECT_EQ(finished.end, model::build_end::failed) << "the example's outcome is failure";
  EXPECT_EQ(env[4].key, (model::build_key{"cdevents", "", "mySubject123"}));
  auto& job = std::get<model::job_event>(env[4].body);
  EXPECT_EQ(job.name, "myTask");
  EXPECT_EQ(job.report.id, "mySubject123");
  EXPECT_TRUE(job.numbered) << "a retried task is a new taskRun: its time orders attempts";
  EXPECT_EQ(job.report.number, 1679322425315) << "2023-03-20T14:27:05.315384Z in ms";
}

// Outcomes: success, failure and error are passed, failed and interrupted for a
// pipelineRun; a taskRun's error is a broken attempt that fails its job. No outcome
// leaves the build to its jobs.
TEST(cdevents_source, outcomes_map_onto_build_ends_and_attempt_states) {
  auto build_end = [](const std::string& outcome) {
    auto e = events(fake::binary(fake::pipeline_run("finished", "e1", "run-1", "deploy", outcome)));
    return std::get<model::build_event>(envelopes(e, {}).front().body).end;
  };
  EXPECT_EQ(build_end("success"), model::build_end::completed);
  EXPECT_EQ(build_end("failure"), model::build_end::failed);
  EXPECT_EQ(build_end("error"), model::build_end::interrupted);
  EXPECT_EQ(build_end(""), model::build_end::completed);
  auto attempt = [](const std::string& outcome) {
    auto e = events(fake::binary(fake::task_run("finished", "e1", "tr-1", "unit", "run-1", outcome)));
    return std::get<model::job_event>(envelopes(e, {}).front().body).report;
  };
  EXPECT_EQ(attempt("success").state, model::job_state::passed);
  EXPECT_FALSE(attempt("success").fails);
  EXPECT_EQ(attempt("failure").state, model::job_state::failed);
  EXPECT_TRUE(attempt("failure").fails);
  EXPECT_EQ(attempt("error").state, model::job_state::broken);
  EXPECT_TRUE(attempt("error").fails);
  EXPECT_EQ(refusal(fake::binary(fake::task_run("finished", "e1", "tr-1", "unit", "run-1", "maybe"))),
            (std::pair{422, std::string{"subject.content.outcome"}}));
}

// The CloudEvent must say what its CDEvent says: id, source, type (and subject when
// given). In structured mode the attribute is named as the envelope spells it.
TEST(cdevents_source, a_cloud_event_that_disagrees_with_its_cdevent_is_422_naming_the_attribute) {
  auto doc = fake::pipeline_run("started", "e1", "run-1", "deploy");
  for (auto [header, value] : {std::pair{"ce-id", "e2"}, {"ce-source", "/elsewhere"},
                               {"ce-type", "dev.cdevents.pipelinerun.queued.0.2.0"},
                               {"ce-subject", "run-2"}, {"ce-specversion", "0.3"}}) {
    auto r = fake::binary(doc);
    r.headers[header] = value;
    EXPECT_EQ(refusal(r), (std::pair{422, std::string{header}})) << header;
  }
  auto missing = fake::binary(doc);
  missing.headers.erase("ce-id");
  EXPECT_EQ(refusal(missing), (std::pair{422, std::string{"ce-id"}}));
  for (auto [attribute, value] : {std::pair{"id", "e2"}, {"source", "/elsewhere"}, {"subject", "run-2"}}) {
    auto ce = fake::cloud_event(doc);
    ce[attribute] = value;
    EXPECT_EQ(refusal({{{"Content-Type", "application/cloudevents+json"}}, ce.dump()}),
              (std::pair{422, std::string{attribute}}))
      << attribute;
  }
}

// An invalid CDEvent is refused naming the field its schema found wrong, under
// `data.` in structured mode and `[i].data.` in a batch, which is all or nothing.
TEST(cdevents_source, an_invalid_cdevent_is_422_naming_the_field) {
  auto no_id = fake::pipeline_run("started", "e1", "run-1", "deploy");
  no_id["subject"].erase("id");
  EXPECT_EQ(refusal(fake::binary(no_id)).first, 422);
  EXPECT_EQ(refusal(fake::structured(no_id)), (std::pair{422, std::string{"data.subject"}}));
  auto wrong_type = fake::pipeline_run("started", "e1", "run-1", "deploy");
  wrong_type["subject"]["content"]["pipelineName"] = 42;
  EXPECT_EQ(refusal(fake::binary(wrong_type)),
            (std::pair{422, std::string{"subject.content.pipelineName"}}));
  auto no_run = fake::task_run("started", "e2", "tr-1", "unit", "run-1");
  no_run["subject"]["content"].erase("pipelineRun");
  EXPECT_EQ(refusal(fake::binary(no_run)),
            (std::pair{422, std::string{"subject.content.pipelineRun"}}));
  auto good = fake::pipeline_run("started", "e1", "run-1", "deploy");
  EXPECT_EQ(refusal(fake::batch({good, wrong_type})),
            (std::pair{422, std::string{"[1].data.subject.content.pipelineName"}}));
  EXPECT_EQ(refusal(fake::batch({})).first, 400);
  EXPECT_EQ(refusal({{{"Content-Type", "application/cloudevents+json"}}, "{not json"}).first, 400);
  EXPECT_EQ(refusal({{{"Content-Type", "text/plain"}}, good.dump()}),
            (std::pair{415, std::string{"Content-Type"}}));
  auto not_cdevents = fake::binary(good);
  auto renamed = good;
  renamed["context"]["type"] = "com.example.build.started";
  not_cdevents = fake::binary(renamed);
  EXPECT_EQ(refusal(not_cdevents), (std::pair{422, std::string{"context.type"}}));
}

// Other CDEvents types are read (their CloudEvent checked) but make no events.
TEST(cdevents_source, other_cdevents_types_are_read_but_not_tracked) {
  auto artifact = fake::event("artifact.published", "e9", "pkg:oci/app", json::object());
  auto got = events(fake::binary(artifact));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_FALSE(got.front().type);
  EXPECT_TRUE(envelopes(got, {}).empty());
}

// Key parts cannot hold '/': a pipeline named by a source URI is encoded, losslessly.
TEST(cdevents_source, key_parts_encode_slashes_and_percent_signs) {
  EXPECT_EQ(key_part("/apis/tekton.dev"), "%2Fapis%2Ftekton.dev");
  EXPECT_EQ(key_part("50%/x"), "50%25%2Fx");
  EXPECT_EQ(key_part("plain-name_1"), "plain-name_1");
  // (pipelinerun.started requires the name; queued and finished do not.)
  auto nameless = fake::pipeline_run("queued", "e1", "run/1", "");
  nameless["subject"]["content"].erase("pipelineName");
  auto got = events(fake::binary(nameless));
  EXPECT_EQ(build_of(got.front()).str(), "cdevents/%2Fapis%2Ftekton.dev%2Fv1%2Fnamespaces%2Fci/run%2F1");
}
