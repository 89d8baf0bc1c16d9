#include "storm/report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <set>
#include <sstream>
#include <stdexcept>

namespace bt::storm {

namespace {

using nlohmann::json;

double ms(double seconds) { return std::round(seconds * 1e6) / 1e3; }

/// Latency percentiles of `sorted` (seconds) in milliseconds.
json percentiles(const std::vector<double>& sorted) {
  return {{"p50", ms(quantile(sorted, 0.50))}, {"p90", ms(quantile(sorted, 0.90))},
          {"p99", ms(quantile(sorted, 0.99))}, {"p999", ms(quantile(sorted, 0.999))},
          {"max", ms(sorted.empty() ? 0 : sorted.back())}};
}

/// Per time bucket: answers, errors and latency percentiles. Buckets are a second wide,
/// narrower for short runs so that a chart has at least 20 points.
json timeline(const load_result& r, double& width) {
  width = 1;
  while (width > 0.05 && r.seconds / width < 20)
    width /= 2;
  auto buckets = static_cast<std::size_t>(std::ceil(std::max(r.seconds, width) / width));
  std::vector<std::vector<double>> latencies(buckets);
  std::vector<std::size_t> errors(buckets);
  for (auto& s : r.samples) {
    auto b = std::min(buckets - 1, static_cast<std::size_t>(s.done_at / width));
    latencies[b].push_back(s.latency);
    errors[b] += !s.ok;
  }
  json out = json::array();
  for (std::size_t b = 0; b < buckets; ++b) {
    std::sort(latencies[b].begin(), latencies[b].end());
    out.push_back({{"t", static_cast<double>(b) * width},
                   {"requests", latencies[b].size()},
                   {"errors", errors[b]},
                   {"p50_ms", ms(quantile(latencies[b], 0.5))},
                   {"p99_ms", ms(quantile(latencies[b], 0.99))}});
  }
  return out;
}

/// Counts of latencies per bucket, bounds growing by a quarter power of ten from 0.1 ms.
json histogram(const std::vector<double>& sorted) {
  json out = json::array();
  std::size_t i = 0;
  for (double le = 1e-4; i < sorted.size(); le *= std::pow(10.0, 0.25)) {
    std::size_t n = 0;
    while (i < sorted.size() && sorted[i] <= le)
      ++n, ++i;
    out.push_back({{"le_ms", ms(le)}, {"count", n}});
  }
  return out;
}

std::string join(const std::set<std::string>& items) {
  std::string out;
  for (auto& i : items)
    out += (out.empty() ? "" : ",") + i;
  return out;
}

} // namespace

nlohmann::json to_json(const summary& s) {
  auto latencies = sorted_latencies(s.load);
  json statuses = json::object();
  for (auto& [status, n] : s.load.statuses)
    statuses[status == 0 ? "none" : std::to_string(status)] = n;
  double width = 1;
  auto over_time = timeline(s.load, width);
  auto requests = s.load.samples.size();
  json j{{"format", 1},
         {"target", s.target},
         {"run", s.run},
         {"workload", {{"sources", join(s.workload_mix.sources)},
                       {"builds_per_source", s.workload_mix.builds},
                       {"jobs", s.workload_mix.jobs},
                       {"seed", s.workload_mix.seed},
                       {"requests", s.requests},
                       {"events", s.load.events},
                       {"dropped", s.dropped}}},
         {"mode", s.rate > 0 ? "open" : "closed"},
         {"rate", s.rate},
         {"connections", s.connections},
         {"latency_from", s.rate > 0 ? "intended send time" : "send time"},
         {"seconds", std::round(s.load.seconds * 1e3) / 1e3},
         {"requests", requests},
         {"errors", s.load.errors},
         {"error_percent", requests == 0 ? 0.0 : 100.0 * static_cast<double>(s.load.errors) / static_cast<double>(requests)},
         {"statuses", statuses},
         {"first_error", s.load.first_error},
         {"requests_per_s", std::round(s.load.rate())},
         {"events_per_s", std::round(s.load.event_rate())},
         {"latency_ms", percentiles(latencies)},
         {"afterwards", {{"requests", s.afterwards}, {"errors", s.afterwards_errors}}},
         {"bucket_s", width},
         {"timeline", over_time},
         {"histogram", histogram(latencies)},
         {"verification", nullptr},
         {"notify_latency_ms", nullptr},
         {"ramp", nullptr}};
  if (s.verified) {
    auto& v = *s.verified;
    json differences = json::array();
    for (std::size_t i = 0; i < std::min<std::size_t>(100, v.differences.size()); ++i) {
      auto& d = v.differences[i];
      differences.push_back({{"subject", d.subject}, {"field", d.field}, {"want", d.want}, {"got", d.got}});
    }
    j["verification"] = {{"builds", v.builds},
                         {"builds_ok", v.builds_ok},
                         {"streaks", v.streaks},
                         {"streaks_ok", v.streaks_ok},
                         {"notifications", v.notifications},
                         {"notifications_ok", v.notifications_ok},
                         {"job_messages", v.jobs},
                         {"job_messages_ok", v.jobs_ok},
                         {"verified_percent", std::floor(v.verified_percent() * 1000) / 1000},
                         {"differences_total", v.differences.size()},
                         {"differences", differences}};
  }
  if (!s.notify_latencies.empty()) {
    auto p = percentiles(s.notify_latencies);
    p["count"] = s.notify_latencies.size();
    j["notify_latency_ms"] = p;
  }
  if (!s.ramp.empty()) {
    json steps = json::array();
    double best = 0;
    for (auto& step : s.ramp) {
      steps.push_back({{"rate", step.rate}, {"requests_per_s", std::round(step.achieved)},
                       {"p99_ms", ms(step.p99)}, {"errors", step.errors}, {"within_slo", step.within_slo}});
      if (step.within_slo)
        best = std::max(best, step.rate);
    }
    j["ramp"] = {{"slo_p99_ms", ms(s.slo_p99)}, {"steps", steps}, {"max_rate_within_slo", best}};
  }
  return j;
}

const char* const check_metrics_help =
  "p50, p90, p99, p999, max (latency: 250us, 10ms, 1s), errors (count), error_rate (%), "
  "rate (answers/s), events_rate (events/s), verified (%), notify_p99 (latency), "
  "max_rate (the ramp's highest rate within its SLO, /s), ratio (bench/storm: % of the bare floor)";

std::chrono::duration<double> parse_duration(const std::string& text) {
  std::size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    throw std::invalid_argument{"not a duration: " + text};
  }
  auto unit = text.substr(used);
  double scale = unit == "us" ? 1e-6 : unit == "ms" || unit.empty() ? 1e-3 : unit == "s" ? 1 : unit == "m" ? 60 : -1;
  if (scale < 0 || value < 0)
    throw std::invalid_argument{"not a duration: " + text + " (use us, ms, s or m)"};
  return std::chrono::duration<double>{value * scale};
}

namespace {

/// Where a metric is in the JSON summary, and how a threshold's text becomes a number.
struct metric {
  const char* name;
  enum { latency, count, percent, rate } unit;
  json::json_pointer where;
};

const std::vector<metric>& metrics() {
  static const std::vector<metric> all{
    {"p50", metric::latency, json::json_pointer{"/latency_ms/p50"}},
    {"p90", metric::latency, json::json_pointer{"/latency_ms/p90"}},
    {"p99", metric::latency, json::json_pointer{"/latency_ms/p99"}},
    {"p999", metric::latency, json::json_pointer{"/latency_ms/p999"}},
    {"max", metric::latency, json::json_pointer{"/latency_ms/max"}},
    {"errors", metric::count, json::json_pointer{"/errors"}},
    {"error_rate", metric::percent, json::json_pointer{"/error_percent"}},
    {"rate", metric::rate, json::json_pointer{"/requests_per_s"}},
    {"events_rate", metric::rate, json::json_pointer{"/events_per_s"}},
    {"verified", metric::percent, json::json_pointer{"/verification/verified_percent"}},
    {"notify_p99", metric::latency, json::json_pointer{"/notify_latency_ms/p99"}},
    {"max_rate", metric::rate, json::json_pointer{"/ramp/max_rate_within_slo"}},
    {"ratio", metric::percent, json::json_pointer{"/ratio_percent"}},
  };
  return all;
}

const metric& metric_named(const std::string& name) {
  for (auto& m : metrics())
    if (name == m.name)
      return m;
  throw std::invalid_argument{"unknown metric '" + name + "'; known: " + check_metrics_help};
}

} // namespace

std::vector<check> parse_checks(const std::string& text) {
  std::vector<check> out;
  std::stringstream in{text};
  std::string item;
  while (std::getline(in, item, ',')) {
    item.erase(std::remove_if(item.begin(), item.end(), [](char c) { return c == ' '; }), item.end());
    if (item.empty())
      continue;
    auto at = item.find_first_of("<>=");
    if (at == std::string::npos || at == 0)
      throw std::invalid_argument{"check '" + item + "' is not <metric><op><value>, e.g. p99<10ms"};
    check c{item, item.substr(0, at), "", 0};
    auto op_end = item.find_first_not_of("<>=", at);
    c.op = item.substr(at, op_end - at);
    if (c.op != "<" && c.op != "<=" && c.op != ">" && c.op != ">=" && c.op != "=" && c.op != "==")
      throw std::invalid_argument{"check '" + item + "': unknown comparison " + c.op};
    if (c.op == "==")
      c.op = "=";
    auto& m = metric_named(c.metric);
    auto value = op_end == std::string::npos ? std::string{} : item.substr(op_end);
    try {
      if (m.unit == metric::latency) {
        c.value = parse_duration(value).count() * 1e3;
      } else {
        std::size_t used = 0;
        c.value = std::stod(value, &used);
        auto rest = value.substr(used);
        if (m.unit == metric::percent && rest == "%")
          rest.clear();
        if (m.unit == metric::rate && (rest == "k" || rest == "k/s")) {
          c.value *= 1000;
          rest.clear();
        }
        if (m.unit == metric::rate && rest == "/s")
          rest.clear();
        if (!rest.empty())
          throw std::invalid_argument{rest};
      }
    } catch (const std::exception&) {
      throw std::invalid_argument{"check '" + item + "': '" + value + "' is not a value for " + c.metric};
    }
    out.push_back(c);
  }
  return out;
}

std::vector<check_result> evaluate(const std::vector<check>& checks, const nlohmann::json& j) {
  std::vector<check_result> out;
  for (auto& c : checks) {
    auto& m = metric_named(c.metric);
    check_result r{c, std::nan(""), false};
    if (j.contains(m.where) && j.at(m.where).is_number()) {
      r.actual = j.at(m.where).get<double>();
      r.passed = c.op == "<"    ? r.actual < c.value
                 : c.op == "<=" ? r.actual <= c.value
                 : c.op == ">"  ? r.actual > c.value
                 : c.op == ">=" ? r.actual >= c.value
                                : r.actual == c.value;
    }
    out.push_back(r);
  }
  return out;
}

namespace {

std::string escape(const std::string& text) {
  std::string out;
  for (char c : text)
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  return out;
}

std::string number(double v, int decimals = 1) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

constexpr double chart_w = 720, chart_h = 226, left = 56, bottom = 28, top = 18, right = 16;

/// A "nice" upper bound for an axis: 1, 2 or 5 times a power of ten.
double nice_max(double v) {
  if (v <= 0)
    return 1;
  double p = std::pow(10.0, std::floor(std::log10(v)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (v <= m * p)
      return m * p;
  return 10 * p;
}

/// The frame of a chart: axes, four horizontal grid lines labelled up to `ymax`, the
/// x axis labelled from 0 to `xmax` in `xunit`.
std::string frame(double xmax, double ymax, const std::string& xunit, const std::string& yunit) {
  std::ostringstream out;
  double w = chart_w - left - right, h = chart_h - top - bottom;
  for (int i = 0; i <= 4; ++i) {
    double y = top + h - h * i / 4;
    out << "<line class=\"grid\" x1=\"" << left << "\" x2=\"" << left + w << "\" y1=\"" << y << "\" y2=\"" << y
        << "\"/><text class=\"tick\" x=\"" << left - 6 << "\" y=\"" << y + 4 << "\" text-anchor=\"end\">"
        << number(ymax * i / 4, ymax < 10 ? 1 : 0) << "</text>";
  }
  for (int i = 0; i <= 4; ++i) {
    double x = left + w * i / 4;
    out << "<text class=\"tick\" x=\"" << x << "\" y=\"" << chart_h - 8 << "\" text-anchor=\"middle\">"
        << number(xmax * i / 4, xmax < 10 ? 1 : 0) << "</text>";
  }
  out << "<text class=\"unit\" x=\"" << left << "\" y=\"" << top - 2 << "\">" << escape(yunit)
      << "</text><text class=\"unit\" x=\"" << chart_w - right << "\" y=\"" << top - 2
      << "\" text-anchor=\"end\">" << escape(xunit) << " →</text>";
  return out.str();
}

/// A line chart of series over the timeline's buckets.
std::string line_chart(const std::string& name, const std::string& title, const json& timeline,
                       double width, const std::vector<std::pair<std::string, std::function<double(const json&)>>>& series,
                       const std::string& yunit) {
  double xmax = std::max(width, static_cast<double>(timeline.size()) * width);
  double ymax = 0;
  for (auto& point : timeline)
    for (auto& [_, value] : series)
      ymax = std::max(ymax, value(point));
  ymax = nice_max(ymax);
  double w = chart_w - left - right, h = chart_h - top - bottom;
  std::ostringstream out;
  out << "<figure><figcaption>" << escape(title) << "</figcaption><svg data-chart=\"" << name
      << "\" viewBox=\"0 0 " << chart_w << ' ' << chart_h << "\" role=\"img\" aria-label=\"" << escape(title)
      << "\">" << frame(xmax, ymax, "seconds", yunit);
  int index = 0;
  for (auto& [label, value] : series) {
    out << "<polyline class=\"series s" << index++ << "\" data-series=\"" << escape(label) << "\" points=\"";
    for (std::size_t i = 0; i < timeline.size(); ++i) {
      double x = left + w * (static_cast<double>(i) + 0.5) * width / xmax;
      double y = top + h - h * value(timeline[i]) / ymax;
      out << number(x) << ',' << number(y) << ' ';
    }
    out << "\"><title>" << escape(label) << "</title></polyline>";
  }
  out << "</svg>";
  if (series.size() > 1) {
    out << "<p class=\"legend\">";
    index = 0;
    for (auto& [label, _] : series)
      out << "<span class=\"key s" << index++ << "\">" << escape(label) << "</span> ";
    out << "</p>";
  }
  out << "</figure>";
  return out.str();
}

std::string histogram_chart(const json& buckets) {
  double ymax = 0;
  for (auto& b : buckets)
    ymax = std::max(ymax, b["count"].get<double>());
  ymax = nice_max(ymax);
  double w = chart_w - left - right, h = chart_h - top - bottom;
  auto n = std::max<std::size_t>(1, buckets.size());
  double bar = w / static_cast<double>(n);
  std::ostringstream out;
  out << "<figure><figcaption>Latency histogram (answers per bucket; bounds grow by 10^¼)</figcaption>"
      << "<svg data-chart=\"histogram\" viewBox=\"0 0 " << chart_w << ' ' << chart_h
      << "\" role=\"img\" aria-label=\"Latency histogram\">";
  for (int i = 0; i <= 4; ++i) {
    double y = top + h - h * i / 4;
    out << "<line class=\"grid\" x1=\"" << left << "\" x2=\"" << left + w << "\" y1=\"" << y << "\" y2=\"" << y
        << "\"/><text class=\"tick\" x=\"" << left - 6 << "\" y=\"" << y + 4 << "\" text-anchor=\"end\">"
        << number(ymax * i / 4, 0) << "</text>";
  }
  for (std::size_t i = 0; i < buckets.size(); ++i) {
    auto count = buckets[i]["count"].get<double>();
    double bh = h * count / ymax;
    auto le = buckets[i]["le_ms"].get<double>();
    out << "<rect class=\"bar\" x=\"" << number(left + bar * static_cast<double>(i) + 1) << "\" y=\""
        << number(top + h - bh) << "\" width=\"" << number(std::max(1.0, bar - 2)) << "\" height=\""
        << number(bh) << "\"><title>≤ " << number(le, 2) << " ms: " << number(count, 0) << "</title></rect>";
    if (i % std::max<std::size_t>(1, buckets.size() / 8) == 0)
      out << "<text class=\"tick\" x=\"" << number(left + bar * (static_cast<double>(i) + 0.5)) << "\" y=\""
          << chart_h - 8 << "\" text-anchor=\"middle\">" << number(le, le < 1 ? 2 : le < 10 ? 1 : 0) << "</text>";
  }
  out << "<text class=\"unit\" x=\"" << chart_w - right << "\" y=\"" << top - 2
      << "\" text-anchor=\"end\">ms →</text><text class=\"unit\" x=\"" << left << "\" y=\"" << top - 2
      << "\">answers</text></svg></figure>";
  return out.str();
}

} // namespace

std::string render_html(const nlohmann::json& j) {
  auto& latency = j["latency_ms"];
  std::ostringstream out;
  auto row = [&](const std::string& name, const std::string& value) {
    out << "<tr><th>" << escape(name) << "</th><td>" << escape(value) << "</td></tr>";
  };
  out << "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
         "<title>buildtrack storm: "
      << escape(j["target"].get<std::string>()) << "</title><style>"
         "body{font:14px/1.4 system-ui,sans-serif;margin:2em auto;max-width:780px;color:#222;padding:0 1em}"
         "table{border-collapse:collapse;margin:1em 0}th,td{text-align:left;padding:.2em .8em .2em 0}"
         "th{font-weight:600;color:#555}svg{width:100%;height:auto;background:#fafafa;border:1px solid #ddd}"
         ".grid{stroke:#e2e2e2}.tick,.unit{font-size:11px;fill:#666}.series{fill:none;stroke-width:2}"
         ".s0{stroke:#2563eb;color:#2563eb}.s1{stroke:#dc2626;color:#dc2626}.bar{fill:#2563eb}"
         ".key::before{content:'';display:inline-block;width:1em;height:3px;margin-right:.3em;"
         "vertical-align:middle;background:currentColor}figcaption{font-weight:600;margin:1.5em 0 .4em}"
         "figure{margin:0}.bad{color:#b91c1c}.good{color:#15803d}"
         "</style></head><body><h1>buildtrack storm</h1><table>";
  row("Target", j["target"].get<std::string>());
  row("Run", j["run"].get<std::string>());
  auto& w = j["workload"];
  row("Workload", w["sources"].get<std::string>() + ": " + std::to_string(w["builds_per_source"].get<int>())
                    + " builds × " + std::to_string(w["jobs"].get<int>()) + " jobs, "
                    + std::to_string(w["requests"].get<std::size_t>()) + " requests, "
                    + std::to_string(w["events"].get<std::size_t>()) + " events");
  row("Mode", j["mode"] == "open" ? "open-loop at " + number(j["rate"].get<double>(), 0)
                                      + " requests/s (latency from the intended send time)"
                                  : std::string{"closed-loop (latency from the send time)"});
  row("Connections", std::to_string(j["connections"].get<int>()));
  row("Duration", number(j["seconds"].get<double>(), 2) + " s");
  row("Throughput", number(j["requests_per_s"].get<double>(), 0) + " requests/s, "
                      + number(j["events_per_s"].get<double>(), 0) + " events/s");
  row("Latency", "p50 " + number(latency["p50"].get<double>(), 2) + " ms, p90 " + number(latency["p90"].get<double>(), 2)
                   + " ms, p99 " + number(latency["p99"].get<double>(), 2) + " ms, p99.9 "
                   + number(latency["p999"].get<double>(), 2) + " ms, max " + number(latency["max"].get<double>(), 2) + " ms");
  row("Errors", std::to_string(j["errors"].get<std::size_t>()) + " of " + std::to_string(j["requests"].get<std::size_t>())
                  + (j["first_error"].get<std::string>().empty() ? "" : " (first: " + j["first_error"].get<std::string>() + ")"));
  if (!j["verification"].is_null()) {
    auto& v = j["verification"];
    row("Verified", number(v["verified_percent"].get<double>(), 3) + " %: builds " + std::to_string(v["builds_ok"].get<std::size_t>())
                      + "/" + std::to_string(v["builds"].get<std::size_t>()) + ", streaks "
                      + std::to_string(v["streaks_ok"].get<std::size_t>()) + "/" + std::to_string(v["streaks"].get<std::size_t>())
                      + ", notifications " + std::to_string(v["notifications_ok"].get<std::size_t>()) + "/"
                      + std::to_string(v["notifications"].get<std::size_t>()) + ", Taskcluster job messages "
                      + std::to_string(v["job_messages_ok"].get<std::size_t>()) + "/"
                      + std::to_string(v["job_messages"].get<std::size_t>()));
  }
  if (!j["notify_latency_ms"].is_null())
    row("Notification latency", "build.finished accepted → first notification: p50 "
                                  + number(j["notify_latency_ms"]["p50"].get<double>(), 1) + " ms, p99 "
                                  + number(j["notify_latency_ms"]["p99"].get<double>(), 1) + " ms");
  if (!j["ramp"].is_null())
    row("Ramp", "highest rate with p99 under " + number(j["ramp"]["slo_p99_ms"].get<double>(), 1)
                  + " ms: " + number(j["ramp"]["max_rate_within_slo"].get<double>(), 0) + " requests/s");
  out << "</table>";
  if (j.contains("checks")) {
    out << "<h2>Checks</h2><ul>";
    for (auto& c : j["checks"])
      out << "<li class=\"" << (c["passed"].get<bool>() ? "good" : "bad") << "\">" << escape(c["check"].get<std::string>())
          << ": " << (c["actual"].is_number() ? number(c["actual"].get<double>(), 3) : std::string{"not measured"})
          << (c["passed"].get<bool>() ? " — passed" : " — FAILED") << "</li>";
    out << "</ul>";
  }
  double width = j["bucket_s"].get<double>();
  auto& timeline = j["timeline"];
  out << line_chart("throughput", "Throughput over time", timeline, width,
                    {{"answers/s", [width](const json& p) { return p["requests"].get<double>() / width; }}},
                    "answers/s")
      << line_chart("latency", "Latency over time", timeline, width,
                    {{"p50", [](const json& p) { return p["p50_ms"].get<double>(); }},
                     {"p99", [](const json& p) { return p["p99_ms"].get<double>(); }}},
                    "ms")
      << histogram_chart(j["histogram"]);
  if (!j["verification"].is_null() && !j["verification"]["differences"].empty()) {
    out << "<h2>Differences</h2><table><tr><th>What</th><th>Field</th><th>Expected</th><th>Found</th></tr>";
    for (auto& d : j["verification"]["differences"])
      out << "<tr><td>" << escape(d["subject"].get<std::string>()) << "</td><td>" << escape(d["field"].get<std::string>())
          << "</td><td>" << escape(d["want"].get<std::string>()) << "</td><td>" << escape(d["got"].get<std::string>())
          << "</td></tr>";
    out << "</table>";
  }
  out << "</body></html>\n";
  return out.str();
}

} // namespace bt::storm
