// Micro-benchmarks of the per-event hot path pieces (Google Benchmark).
#include <benchmark/benchmark.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>

#include "model/build.hpp"
#include "model/codec.hpp"
#include "sources/buildkite.hpp"
#include "sources/native.hpp"
#include "sources/treeherder.hpp"
#include "support/json_schema.hpp"
#include "tests/taskcluster_fakes.hpp"

namespace {

std::string fixture(const std::string& name) {
  std::ifstream in{std::string{BT_FIXTURES} + "/" + name};
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

const auto now = *bt::model::parse_time("2026-11-21 12:00:00 UTC");

void buildkite_parse_job_finished(benchmark::State& state) {
  auto body = fixture("buildkite/job.finished.json");
  for (auto _ : state)
    benchmark::DoNotOptimize(bt::sources::buildkite_parse("job.finished", body, now));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
}
BENCHMARK(buildkite_parse_job_finished);

void buildkite_token_check(benchmark::State& state) {
  bt::config::buildkite_config cfg;
  cfg.token = "bench-token-0123456789abcdef";
  for (auto _ : state)
    benchmark::DoNotOptimize(
      bt::sources::buildkite_authenticate(cfg, {"job.finished", cfg.token, ""}, "{}", now));
}
BENCHMARK(buildkite_token_check);

void model_apply_job_events(benchmark::State& state) {
  auto body = fixture("buildkite/job.finished.json");
  auto parsed = std::get<bt::sources::buildkite_delivery>(
    bt::sources::buildkite_parse("job.finished", body, now));
  auto env = parsed.envelopes[0];
  auto jobs = state.range(0);
  for (auto _ : state) {
    bt::model::build b;
    for (int64_t i = 0; i < jobs; ++i) {
      auto& job = std::get<bt::model::job_event>(env.body);
      job.report.id = "job-" + std::to_string(i);
      job.group = "step-" + std::to_string(i);
      benchmark::DoNotOptimize(bt::model::apply(b, env, now));
    }
  }
  state.SetItemsProcessed(state.iterations() * jobs);
}
BENCHMARK(model_apply_job_events)->Arg(10)->Arg(100);

/// A batch of `n` native job.finished events, one per line, as the storm sends them.
std::string native_batch(int n) {
  std::string body;
  for (int i = 0; i < n; ++i)
    body += R"({"type":"job.finished","build":{"pipeline":"bench-3","id":")" + std::to_string(i)
            + R"(","number":)" + std::to_string(i)
            + R"(,"branch":"main","commit":"8faa67ad6d0fda3ccf884c90acfd061d37e8558d","url":"https://ci.example.com/bench-3/)"
            + std::to_string(i) + R"("},"job":{"id":"bench-3-)" + std::to_string(i)
            + R"(-4-0","name":"step 4","attempt":0,"state":"passed","exit_status":0}})" + "\n";
  return body;
}

void native_parse_batch_of_100(benchmark::State& state) {
  auto body = native_batch(100);
  for (auto _ : state)
    benchmark::DoNotOptimize(bt::sources::native_parse("application/x-ndjson", body, now));
  state.SetItemsProcessed(state.iterations() * 100);
}
BENCHMARK(native_parse_batch_of_100);

void journal_encode_native_event(benchmark::State& state) {
  auto events = std::get<0>(bt::sources::native_parse("application/x-ndjson", native_batch(1), now));
  for (auto _ : state)
    benchmark::DoNotOptimize(bt::model::codec::encode(events[0]));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(journal_encode_native_event);

/// A task-completed message mapped to its Treeherder job message; with range(0) 1 the
/// task's config and the job are validated against their schemas (valijson).
void treeherder_map_task_completed(benchmark::State& state) {
  namespace th = bt::sources::treeherder;
  auto message = nlohmann::json::parse(bt::test::taskcluster::task_life(bt::test::taskcluster::slug(1),
                                                                          bt::test::taskcluster::slug(2), 0)
                                         .back()
                                         .dump());
  auto task = bt::test::taskcluster::task_definition();
  std::string error;
  auto job = bt::support::json_schema::load(BT_SCHEMAS "/pulse-job.schema.yml", error);
  auto config = bt::support::json_schema::load(BT_SCHEMAS "/task-treeherder-config.schema.yml", error);
  th::settings s{"tc-treeherder", "https://tc.example.com"};
  if (state.range(0) == 1) {
    s.job_schema = &*job;
    s.config_schema = &*config;
  }
  std::map<std::int64_t, std::vector<std::string>> artifacts{{0, {"public/logs/live_backing.log"}}};
  for (auto _ : state) {
    auto mapped = th::map_task_event(th::queue_event::completed, message["payload"], task, artifacts, s);
    if (mapped.jobs.size() != 1)
      state.SkipWithError("not mapped");
    benchmark::DoNotOptimize(mapped);
  }
}
BENCHMARK(treeherder_map_task_completed)->Arg(0)->Arg(1);

} // namespace

BENCHMARK_MAIN();

namespace {
struct null_sax : nlohmann::json_sax<nlohmann::json> {
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override { return true; }
  bool key(string_t&) override { return true; }
  bool end_object() override { return true; }
  bool start_array(std::size_t) override { return true; }
  bool end_array() override { return true; }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override {
    return false;
  }
};
void nlohmann_sax_lex_only(benchmark::State& state) {
  auto body = fixture("buildkite/job.finished.json");
  for (auto _ : state) {
    null_sax sax;
    benchmark::DoNotOptimize(nlohmann::json::sax_parse(body.begin(), body.end(), &sax));
  }
}
BENCHMARK(nlohmann_sax_lex_only);
void nlohmann_dom(benchmark::State& state) {
  auto body = fixture("buildkite/job.finished.json");
  for (auto _ : state)
    benchmark::DoNotOptimize(nlohmann::json::parse(body.begin(), body.end(), nullptr, false));
}
BENCHMARK(nlohmann_dom);
}
