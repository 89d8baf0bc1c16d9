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
