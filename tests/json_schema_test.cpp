// JSON Schemas that refer to other documents: the CDEvents 0.4.1 schemas (copied into
// schemas/cdevents-0.4.1 with their licence) and their conformance examples.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/json_schema.hpp"
#include "tests/fixtures.hpp"

using nlohmann::json;
using bt::support::json_schema;

namespace {

const std::string cdevents = std::string{BT_SOURCE_DIR} + "/schemas/cdevents-0.4.1/";

json_schema schema(const std::string& name) {
  std::string error;
  auto s = json_schema::load(cdevents + name + ".json", error);
  if (!s)
    throw std::runtime_error{error};
  return std::move(*s);
}

} // namespace

// Each event schema names `links/embeddedlinksarray` relative to its `$id`: it is read
// from the schema's folder, and each conformance example validates against its schema.
TEST(json_schema, cdevents_schemas_load_their_references_and_accept_the_conformance_examples) {
  for (auto [event, example] : {std::pair{"pipelinerunqueued", "pipelinerun_queued"},
                                {"pipelinerunstarted", "pipelinerun_started"},
                                {"pipelinerunfinished", "pipelinerun_finished"},
                                {"taskrunstarted", "taskrun_started"},
                                {"taskrunfinished", "taskrun_finished"}}) {
    auto s = schema(event);
    auto doc = json::parse(bt::test::fixture(std::string{"cdevents/"} + example + ".json"));
    EXPECT_TRUE(s.accepts(doc)) << event << ": " << (s.problems(doc).empty() ? "" : s.problems(doc).front());
    auto no_id = doc;
    no_id["context"].erase("id");
    auto problems = s.problems(no_id);
    ASSERT_FALSE(problems.empty()) << event;
    EXPECT_NE(problems.front().find("/context"), std::string::npos) << problems.front();
    // The referenced document is checked too: a link that is not an object.
    auto bad_link = doc;
    bad_link["links"] = json::array({42});
    EXPECT_FALSE(s.accepts(bad_link)) << event;
  }
}

// References are read from the schema's own folder only: not from the network, not
// from outside it.
TEST(json_schema, references_outside_the_schemas_folder_are_refused) {
  auto dir = std::filesystem::temp_directory_path() / ("bt-schema-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir / "inner");
  std::ofstream{dir / "secret.json"} << R"({"type":"string"})";
  std::ofstream{dir / "inner" / "word.json"} << R"({"type":"string","pattern":"^[a-z]+$"})";
  auto write = [&](const std::string& name, const std::string& ref) {
    std::ofstream{dir / "inner" / name}
      << R"({"$id":"https://example.com/s/)" << name << R"(","properties":{"w":{"$ref":")" << ref << R"("}}})";
    return (dir / "inner" / name).string();
  };
  std::string error;
  auto ok = json_schema::load(write("ok.json", "word"), error);
  ASSERT_TRUE(ok) << error;
  EXPECT_TRUE(ok->accepts(json{{"w", "abc"}}));
  EXPECT_FALSE(ok->accepts(json{{"w", "ABC"}}));
  EXPECT_FALSE(json_schema::load(write("up.json", "../secret"), error));
  EXPECT_NE(error.find("not a schema in"), std::string::npos) << error;
  EXPECT_FALSE(json_schema::load(write("net.json", "https://elsewhere.example/x"), error));
  EXPECT_FALSE(json_schema::load(write("missing.json", "nothing"), error));
  EXPECT_FALSE(json_schema::parse(R"({"properties":{"w":{"$ref":"https://example.com/word"}}})", error))
    << "no folder: no references";
  std::filesystem::remove_all(dir);
}

// A format applies to strings only: a value of another type where a `uri` is due is a
// type error at its path, not an exception (valijson 1.0 threw from its format check;
// fuzz_cdevents found it with an object as `context.schemaUri`).
TEST(json_schema, a_format_on_a_value_that_is_not_a_string_is_a_problem_at_its_path) {
  std::string error;
  auto s = json_schema::parse(
    R"({"type":"object","properties":{"u":{"type":"string","format":"uri"},"d":{"type":"string","format":"date-time"}}})",
    error);
  ASSERT_TRUE(s) << error;
  EXPECT_TRUE(s->accepts(json{{"u", "https://example.com/x"}, {"d", "2023-03-20T14:27:05Z"}}));
  for (auto& bad : {json{{"u", {{"not", "a string"}}}}, json{{"u", 42}}, json{{"d", json::array()}}}) {
    std::vector<std::string> problems;
    ASSERT_NO_THROW(problems = s->problems(bad)) << bad;
    ASSERT_FALSE(problems.empty()) << bad;
    EXPECT_EQ(problems.front().rfind(bad.begin().key() == "u" ? "/u" : "/d", 0), 0u) << problems.front();
  }
  // The CDEvents document the fuzzer found: refused with the field named.
  auto queued = schema("pipelinerunqueued");
  auto doc = json::parse(bt::test::fixture("cdevents/pipelinerun_queued.json"));
  doc["context"]["schemaUri"] = {{"pipelineName", "myPipeline"}};
  std::vector<std::string> problems;
  ASSERT_NO_THROW(problems = queued.problems(doc));
  ASSERT_FALSE(problems.empty());
  EXPECT_NE(problems.front().find("/context"), std::string::npos) << problems.front();
}
