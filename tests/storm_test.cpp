// The storm's pure parts: the generator, fault injection, thresholds, the JSON summary
// and the HTML report. The tool against real daemons is in storm_cli_test.cpp.
#include <algorithm>
#include <cmath>
#include <regex>
#include <set>

#include <gtest/gtest.h>

#include "storm/report.hpp"
#include "storm/workload.hpp"

using namespace bt::storm;
using nlohmann::json;

namespace {

mix small(std::set<std::string> sources, std::string prefix = "storm-t-") {
  mix m;
  m.builds = 40;
  m.jobs = 4;
  m.sources = std::move(sources);
  m.pipeline_prefix = std::move(prefix);
  m.targets = m.statistics = true;
  m.secrets = {"bk", "nt", "ce", "tc"};
  return m;
}

} // namespace

TEST(storm_workload, the_same_mix_makes_the_same_storm_and_another_run_other_builds) {
  auto m = small({"buildkite", "native", "cdevents"});
  auto a = generate(m), b = generate(m);
  EXPECT_EQ(a.requests, b.requests);
  EXPECT_EQ(a.expected, b.expected);
  EXPECT_EQ(a.expected.size(), 3u * 40);
  auto other = generate(small({"buildkite", "native", "cdevents"}, "storm-u-"));
  for (auto& [path, _] : other.expected)
    EXPECT_FALSE(a.expected.contains(path)) << path;
}

TEST(storm_workload, every_build_finishes_in_exactly_one_request_that_says_so) {
  auto w = generate(small({"buildkite", "native", "cdevents"}));
  std::multiset<std::string> finished;
  for (auto& [index, keys] : w.finish_of) {
    ASSERT_LT(index, w.requests.size());
    auto& r = w.requests[index];
    EXPECT_TRUE(r.find("build.finished") != std::string::npos
                || r.find("pipelinerun.finished") != std::string::npos)
      << r.substr(0, 200);
    finished.insert(keys.begin(), keys.end());
  }
  EXPECT_EQ(finished.size(), w.expected.size());
  for (auto& [path, _] : w.expected)
    EXPECT_EQ(finished.count(path.substr(std::string{"/api/v1/builds/"}.size())), 1u) << path;
}

TEST(storm_workload, requests_carry_each_sources_secret_and_the_targets_host) {
  auto m = small({"buildkite", "native", "cdevents"});
  m.host = "ci.example.com";
  auto w = generate(m);
  for (auto& r : w.requests) {
    EXPECT_NE(r.find("\r\nHost: ci.example.com\r\n"), std::string::npos);
    if (r.starts_with("POST /webhooks/buildkite"))
      EXPECT_NE(r.find("X-Buildkite-Token: bk\r\n"), std::string::npos);
    else if (r.starts_with("POST /webhooks/cdevents"))
      EXPECT_NE(r.find("Authorization: Bearer ce\r\n"), std::string::npos);
    else
      EXPECT_NE(r.find("Authorization: Bearer nt\r\n"), std::string::npos) << r.substr(0, 100);
  }
}

TEST(storm_workload, drop_leaves_out_exactly_the_finishes_it_names) {
  auto w = generate(small({"buildkite"}));
  auto before = w.requests.size();
  auto dropped = drop_finishes(w, 3, 7);
  ASSERT_EQ(dropped.size(), 3u);
  EXPECT_EQ(w.requests.size(), before - 3);
  EXPECT_EQ(w.finish_of.size(), 40u - 3);
  std::set<std::string> still;
  for (auto& [index, keys] : w.finish_of) {
    EXPECT_NE(w.requests[index].find("build.finished"), std::string::npos);
    still.insert(keys.begin(), keys.end());
  }
  for (auto& key : dropped)
    EXPECT_FALSE(still.contains(key)) << key;
}

TEST(storm_workload, requests_per_build_matches_what_the_generator_makes) {
  auto m = small({"buildkite"});
  auto w = generate(m);
  EXPECT_NEAR(requests_per_build(m), static_cast<double>(w.requests.size()) / 40, 1e-9);
}

TEST(storm_checks, parse_units_and_operators) {
  auto checks = parse_checks("p99<10ms, errors=0,verified=100%,rate>=1.5k,max<=2s,p50>250us");
  ASSERT_EQ(checks.size(), 6u);
  EXPECT_EQ(checks[0].metric, "p99");
  EXPECT_EQ(checks[0].op, "<");
  EXPECT_DOUBLE_EQ(checks[0].value, 10);
  EXPECT_DOUBLE_EQ(checks[2].value, 100);
  EXPECT_DOUBLE_EQ(checks[3].value, 1500);
  EXPECT_EQ(checks[3].op, ">=");
  EXPECT_DOUBLE_EQ(checks[4].value, 2000);
  EXPECT_DOUBLE_EQ(checks[5].value, 0.25);
}

TEST(storm_checks, refuse_what_they_do_not_understand_naming_it) {
  auto refusal = [](const std::string& text) {
    try {
      parse_checks(text);
    } catch (const std::invalid_argument& e) {
      return std::string{e.what()};
    }
    return std::string{"accepted"};
  };
  EXPECT_NE(refusal("latency<10ms").find("unknown metric 'latency'"), std::string::npos);
  EXPECT_NE(refusal("p99<10parsecs").find("p99<10parsecs"), std::string::npos);
  EXPECT_NE(refusal("p99").find("is not <metric><op><value>"), std::string::npos);
  EXPECT_NE(refusal("p99=>3ms").find("unknown comparison"), std::string::npos);
  EXPECT_NE(refusal("errors=lots").find("errors=lots"), std::string::npos);
}

TEST(storm_checks, evaluate_against_the_summary_and_fail_what_was_not_measured) {
  json j{{"latency_ms", {{"p99", 12.5}}}, {"errors", 0}, {"verification", nullptr}};
  auto results = evaluate(parse_checks("p99<10ms,p99<=12.5ms,errors=0,verified=100%"), j);
  ASSERT_EQ(results.size(), 4u);
  EXPECT_FALSE(results[0].passed);
  EXPECT_DOUBLE_EQ(results[0].actual, 12.5);
  EXPECT_TRUE(results[1].passed);
  EXPECT_TRUE(results[2].passed);
  EXPECT_FALSE(results[3].passed); // --no-verify: nothing to say 100 % of
  EXPECT_TRUE(std::isnan(results[3].actual));
}

namespace {

summary two_second_run() {
  summary s;
  s.target = "http://127.0.0.1:8080";
  s.run = "abc";
  s.connections = 4;
  s.rate = 1000;
  s.workload_mix = small({"buildkite"});
  s.requests = 2000;
  s.load.seconds = 2;
  s.load.events = 2000;
  for (int i = 0; i < 2000; ++i) {
    // A stall of 200 ms at one second: answers due in it wait until it ends.
    double due = i / 1000.0;
    double done = due >= 1.0 && due < 1.2 ? 1.2 : due + 0.001;
    s.load.samples.push_back({done, done - due, i != 7});
  }
  s.load.errors = 1;
  s.load.statuses = {{202, 1999}, {500, 1}};
  verification v;
  v.builds = 40;
  v.builds_ok = 39;
  v.differences.push_back({"buildkite/storm-t-1/1", "state", "passed", "running"});
  s.verified = v;
  return s;
}

} // namespace

TEST(storm_summary, json_has_timeline_histogram_and_percentiles_from_the_samples) {
  auto j = to_json(two_second_run());
  EXPECT_EQ(j["format"], 1);
  EXPECT_EQ(j["mode"], "open");
  EXPECT_EQ(j["requests"], 2000);
  EXPECT_EQ(j["errors"], 1);
  EXPECT_EQ(j["statuses"]["500"], 1);
  EXPECT_EQ(j["requests_per_s"], 1000);
  // 200 answers waited between 0 and 200 ms: p90 is 1 ms, p99 inside the stall.
  EXPECT_NEAR(j["latency_ms"]["p50"].get<double>(), 1, 1e-6);
  EXPECT_GT(j["latency_ms"]["p99"].get<double>(), 150);
  EXPECT_NEAR(j["latency_ms"]["max"].get<double>(), 200, 1e-6);
  std::size_t in_timeline = 0, in_histogram = 0;
  for (auto& b : j["timeline"])
    in_timeline += b["requests"].get<std::size_t>();
  for (auto& b : j["histogram"])
    in_histogram += b["count"].get<std::size_t>();
  EXPECT_EQ(in_timeline, 2000u);
  EXPECT_EQ(in_histogram, 2000u);
  EXPECT_GE(j["timeline"].size(), 20u);
  EXPECT_DOUBLE_EQ(j["verification"]["verified_percent"].get<double>(), 97.5);
  EXPECT_EQ(j["verification"]["differences"][0]["got"], "running");
}

TEST(storm_report, html_is_self_contained_with_three_charts_and_the_differences) {
  auto j = to_json(two_second_run());
  j["checks"] = json::array({{{"check", "p99<10ms"}, {"actual", 190.0}, {"passed", false}}});
  auto html = render_html(j);
  for (auto chart : {"throughput", "latency", "histogram"})
    EXPECT_NE(html.find(std::string{"data-chart=\""} + chart + "\""), std::string::npos) << chart;
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("src="), std::string::npos);
  EXPECT_EQ(html.find("href="), std::string::npos);
  EXPECT_EQ(html.find("url("), std::string::npos);
  EXPECT_NE(html.find("buildkite/storm-t-1/1"), std::string::npos);
  EXPECT_NE(html.find("FAILED"), std::string::npos);
  // The latency series has a point per bucket.
  std::regex polyline{"data-series=\"p99\" points=\"([^\"]*)\""};
  std::smatch m;
  ASSERT_TRUE(std::regex_search(html, m, polyline));
  auto points = m[1].str();
  EXPECT_EQ(static_cast<std::size_t>(std::count(points.begin(), points.end(), ' ')), j["timeline"].size());
}

TEST(storm_report, escapes_what_it_shows) {
  auto s = two_second_run();
  s.verified->differences[0].got = "<img onerror=x>";
  auto html = render_html(to_json(s));
  EXPECT_EQ(html.find("<img"), std::string::npos);
  EXPECT_NE(html.find("&lt;img onerror=x&gt;"), std::string::npos);
}
