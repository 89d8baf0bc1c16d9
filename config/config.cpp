#include "config/config.hpp"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <limits>
#include <functional>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <string_view>
#include <sstream>

#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include "model/collation.hpp"
#include "model/json.hpp"
#include "model/notice.hpp"
#include "support/file.hpp"
#include "support/json_template.hpp"
#include "net/client.hpp"

namespace bt::config {
namespace {

using namespace std::chrono_literals;
using days = std::chrono::duration<std::int64_t, std::ratio<86400>>;

[[noreturn]] void fail(const std::string& path, const YAML::Node& node, const std::string& what) {
  std::ostringstream msg;
  msg << path << ": " << what;
  if (node.Mark().line >= 0)
    msg << " (line " << node.Mark().line + 1 << ")";
  throw config_error{msg.str()};
}

/// Replaces `${VAR}` and `${VAR:-default}` from the environment.
std::string expand(const std::string& path, const YAML::Node& node, const std::string& in) {
  std::string out;
  size_t pos = 0;
  while (true) {
    auto start = in.find("${", pos);
    if (start == std::string::npos) {
      out.append(in, pos);
      return out;
    }
    auto end = in.find('}', start);
    if (end == std::string::npos)
      fail(path, node, "unterminated ${ in value");
    out.append(in, pos, start - pos);
    auto expr = in.substr(start + 2, end - start - 2);
    std::string name = expr, fallback;
    bool has_fallback = false;
    if (auto sep = expr.find(":-"); sep != std::string::npos) {
      name = expr.substr(0, sep);
      fallback = expr.substr(sep + 2);
      has_fallback = true;
    }
    if (const char* v = std::getenv(name.c_str()); v && *v)
      out += v;
    else if (has_fallback)
      out += fallback;
    else
      fail(path, node, "environment variable " + name + " is not set");
    pos = end + 1;
  }
}

std::string scalar(const std::string& path, const YAML::Node& node) {
  if (!node.IsScalar())
    fail(path, node, "expected a single value");
  return expand(path, node, node.Scalar());
}

/// yaml-cpp keeps every entry of a mapping, repeated keys too, and a lookup finds the
/// first: a key written twice would be half-taken silently. Refuse it.
void refuse_duplicate_keys(const std::string& path, const YAML::Node& map) {
  std::set<std::string> seen;
  for (auto it = map.begin(); it != map.end(); ++it) {
    if (!it->first.IsScalar())
      fail(path, it->first, "expected a plain key");
    auto key = it->first.Scalar();
    if (!seen.insert(key).second)
      fail(path.empty() ? key : path + "." + key, it->first, "duplicate key");
  }
}

/// Walks one mapping, calling the handler of each key; unknown and repeated keys are errors.
using handlers = std::map<std::string, std::function<void(const std::string&, const YAML::Node&)>>;

void walk(const std::string& path, const YAML::Node& node, const handlers& hs) {
  if (node.IsNull())
    return;
  if (!node.IsMap())
    fail(path, node, "expected a mapping");
  refuse_duplicate_keys(path, node);
  for (auto it = node.begin(); it != node.end(); ++it) {
    auto key = it->first.Scalar();
    auto child = path.empty() ? key : path + "." + key;
    auto h = hs.find(key);
    if (h == hs.end())
      fail(child, it->first, "unknown key");
    h->second(child, it->second);
  }
}

auto string_into(std::string& dst) {
  return [&dst](const std::string& p, const YAML::Node& n) { dst = scalar(p, n); };
}

/// Duration units and their length in milliseconds, longest first.
constexpr std::pair<std::string_view, std::uint64_t> duration_units[] = {
  {"d", 86'400'000}, {"h", 3'600'000}, {"m", 60'000}, {"s", 1000}, {"ms", 1}};

/// Writes a duration the way the configuration accepts it back: the largest exact unit.
std::string show(duration d) {
  auto ms = static_cast<std::uint64_t>(d.count());
  // Milliseconds, last, always divide: zero is written "0ms".
  auto u = std::find_if(std::begin(duration_units), std::end(duration_units),
                        [&](auto& unit) { return ms % unit.second == 0 && (ms != 0 || unit.second == 1); });
  return std::to_string(ms / u->second) + std::string{u->first};
}

/// A number written in decimal digits only, or nothing when it overflows 64 bits.
std::optional<std::uint64_t> whole_number(const std::string& digits) {
  std::uint64_t n = 0;
  auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
  if (ec != std::errc{} || ptr != digits.data() + digits.size())
    return std::nullopt;
  return n;
}

/// A duration within [lo, hi]: outside it, an error naming the key and line.
auto duration_into(duration& dst, duration lo, duration hi) {
  return [&dst, lo, hi](const std::string& p, const YAML::Node& n) {
    duration d;
    try {
      d = parse_duration(scalar(p, n));
    } catch (const config_error& e) {
      fail(p, n, e.what());
    }
    if (d < lo || d > hi)
      fail(p, n, "must be between " + show(lo) + " and " + show(hi));
    dst = d;
  };
}

/// A size in bytes within [lo, hi].
auto size_into(std::size_t& dst, std::uint64_t lo, std::uint64_t hi) {
  return [&dst, lo, hi](const std::string& p, const YAML::Node& n) {
    std::uint64_t v = 0;
    try {
      v = parse_size(scalar(p, n));
    } catch (const config_error& e) {
      fail(p, n, e.what());
    }
    if (v < lo || v > hi)
      fail(p, n, "must be between " + std::to_string(lo) + " and " + std::to_string(hi)
                   + " bytes");
    dst = static_cast<std::size_t>(v);
  };
}

auto int_into(int& dst, int lo, int hi) {
  return [&dst, lo, hi](const std::string& p, const YAML::Node& n) {
    auto text = scalar(p, n);
    try {
      size_t used = 0;
      long v = std::stol(text, &used);
      if (used != text.size())
        throw std::invalid_argument{"trailing"};
      if (v < lo || v > hi)
        fail(p, n, "must be between " + std::to_string(lo) + " and " + std::to_string(hi));
      dst = static_cast<int>(v);
    } catch (const std::logic_error&) {
      fail(p, n, "expected a whole number, got '" + text + "'");
    }
  };
}

auto list_into(std::vector<std::string>& dst) {
  return [&dst](const std::string& p, const YAML::Node& n) {
    if (!n.IsSequence())
      fail(p, n, "expected a list");
    dst.clear();
    for (size_t i = 0; i < n.size(); ++i)
      dst.push_back(scalar(p + "[" + std::to_string(i) + "]", n[i]));
  };
}

/// Calls `each(path, node)` for every item of a list.
void each_item(const std::string& p, const YAML::Node& n,
               const std::function<void(const std::string&, const YAML::Node&)>& each) {
  if (n.IsNull())
    return;
  if (!n.IsSequence())
    fail(p, n, "expected a list");
  for (size_t i = 0; i < n.size(); ++i)
    each(p + "[" + std::to_string(i) + "]", n[i]);
}

/// http(s) URL as the outbound client reads it; plain http only to this machine
/// (tests, local relays).
void check_url(const std::string& p, const YAML::Node& n, const std::string& url) {
  auto parts = net::parse_url(url);
  if (!parts)
    fail(p, n, "expected an https://host[:port]/path URL, got '" + url + "'");
  if (!parts->tls && !net::is_loopback_host(parts->host))
    fail(p, n, "plain http is only allowed to loopback hosts; use https");
}

/// The node of `key` for error positions, or the mapping itself when the key is absent.
YAML::Node key_or_map(const YAML::Node& map, const char* key) {
  auto child = map[key];
  return child.IsDefined() ? child : map;
}

/// A sink's body template must parse, and a JSON one must render JSON, whatever the
/// build holds: it is tried on a build whose texts need escaping.
void check_template(const std::string& path, const YAML::Node& node, const sink_config& s) {
  std::string error;
  auto t = support::json_template::compile(s.body_template, error);
  if (!t)
    fail(path, node, "the template does not parse: " + error);
  if (s.content_type.find("json") == std::string::npos)
    return;
  model::build b;
  b.key = {"buildkite", "web-app", "42"};
  b.info.number = 42;
  b.info.branch = "main";
  b.info.commit = "8faa67ad6d0fda3ccf884c90acfd061d37e8558d";
  b.info.message = "Say \"hello\"\n\tand \\ goodbye";
  b.info.author = {"Ada \"A\" Lovelace", "ada@example.com", "ada"};
  b.state = model::build_state::failed;
  b.end = model::build_end::completed;
  b.revision = 1;
  b.statistics["BuildDuration"] = 12.5;
  auto body = t->render(model::notice_variables({b, model::notice_kind::failed}, s.name,
                                                s.name + ":buildkite/web-app/42:1"));
  auto parsed = nlohmann::json::parse(body, nullptr, false);
  if (parsed.is_discarded())
    fail(path, node, "the template renders invalid JSON (content_type " + s.content_type
                       + "): " + body.substr(0, 200));
}

sink_config parse_sink(const std::string& p, const YAML::Node& n, const config& c) {
  sink_config s;
  bool on_set = false, branches_set = false;
  walk(p, n,
       {{"name", string_into(s.name)},
        {"kind", string_into(s.kind)},
        {"on", [&](auto& p2, auto& n2) {
           list_into(s.on)(p2, n2);
           on_set = true;
           for (size_t i = 0; i < s.on.size(); ++i)
             if (!model::parse_notice_kind(s.on[i]))
               fail(p2 + "[" + std::to_string(i) + "]", n2[i],
                    "expected failed, broken, still_failing, fixed, passed, recovered or "
                    "job_finished, got '"
                      + s.on[i] + "'");
         }},
        {"branches", [&](auto& p2, auto& n2) {
           list_into(s.branches)(p2, n2);
           branches_set = true;
         }},
        {"pipelines", list_into(s.pipelines)},
        {"retry", [&](auto& p2, auto& n2) {
           walk(p2, n2, {{"max_attempts", int_into(s.retry.max_attempts, 1, 1000)},
                         {"initial_backoff", duration_into(s.retry.initial_backoff, 1ms, 1h)},
                         {"max_backoff", duration_into(s.retry.max_backoff, 1ms, 24h)}});
           if (s.retry.max_backoff < s.retry.initial_backoff)
             fail(p2, n2, "need initial_backoff <= max_backoff");
         }},
        {"concurrency", int_into(s.concurrency, 1, 256)},
        {"timeout", duration_into(s.timeout, 100ms, 10min)},
        {"token", string_into(s.token)},
        {"channel", string_into(s.channel)},
        {"api_url", string_into(s.api_url)},
        {"url", string_into(s.url)},
        {"headers", [&](auto& p2, auto& n2) {
           if (!n2.IsMap())
             fail(p2, n2, "expected a mapping of header names to values");
           refuse_duplicate_keys(p2, n2);
           for (auto it = n2.begin(); it != n2.end(); ++it)
             s.headers.emplace_back(it->first.Scalar(),
                                    scalar(p2 + "." + it->first.Scalar(), it->second));
         }},
        {"auth", [&](auto& p2, auto& n2) {
           walk(p2, n2, {{"bearer", string_into(s.bearer_token)},
                         {"basic", [&](auto& p3, auto& n3) {
                            walk(p3, n3, {{"user", string_into(s.basic_user)},
                                          {"password", string_into(s.basic_password)}});
                          }}});
           if (!s.bearer_token.empty() && !s.basic_user.empty())
             fail(p2, n2, "choose one of bearer and basic");
         }},
        {"secret", string_into(s.secret)},
        {"template", string_into(s.body_template)},
        {"template_file", [&](auto& p2, auto& n2) {
           auto path = scalar(p2, n2);
           auto text = support::read_file(path);
           if (!text)
             fail(p2, n2, "cannot read '" + path + "'");
           s.body_template = std::move(*text);
         }},
        {"content_type", string_into(s.content_type)},
        {"exchange", string_into(s.exchange)},
        {"mode", string_into(s.mode)},
        {"source", string_into(s.event_source)},
        {"wait_for", [&](auto& p2, auto& n2) {
           wait_for_config w{{}, c.collator.build_completed_timeout, c.collator.failure_timeout};
           walk(p2, n2, {{"statistics", list_into(w.statistics)},
                         {"build_completed_timeout", duration_into(w.build_completed_timeout, 100ms, days{7})},
                         {"failure_timeout", duration_into(w.failure_timeout, 100ms, days{30})}});
           // " BuildDuration" is the statistic BuildDuration (tcWebHooks never matched it).
           std::vector<std::string> names;
           for (size_t i = 0; i < w.statistics.size(); ++i) {
             auto name = model::trim_statistic(w.statistics[i]);
             if (name.empty())
               fail(p2 + ".statistics[" + std::to_string(i) + "]", n2["statistics"][i],
                    "a statistic name, not blank");
             if (std::find(names.begin(), names.end(), name) == names.end())
               names.push_back(std::move(name));
           }
           w.statistics = std::move(names);
           s.wait_for = std::move(w);
         }}});
  if (s.name.empty() || s.name.find('|') != std::string::npos)
    fail(p + ".name", key_or_map(n, "name"), "required, without '|'");
  if (!branches_set)
    s.branches = c.tracking.branches;
  auto kind_only = [&](const char* key, const char* kind) {
    if (n[key].IsDefined() && s.kind != kind)
      fail(p + "." + key, n[key], std::string{"only for kind "} + kind);
  };
  if (n["template"].IsDefined() && n["template_file"].IsDefined())
    fail(p + ".template", n["template"], "choose one of template and template_file");
  if (!s.body_template.empty())
    check_template(p + (n["template"].IsDefined() ? ".template" : ".template_file"),
                   n["template"].IsDefined() ? n["template"] : n["template_file"], s);
  if (s.kind != "exchange" && n["exchange"].IsDefined())
    fail(p + ".exchange", n["exchange"], "only for kind exchange");
  for (auto key : {"mode", "source"})
    kind_only(key, "cdevents");
  if (s.kind == "slack") {
    if (std::find(s.on.begin(), s.on.end(), "job_finished") != s.on.end())
      fail(p + ".on", n["on"], "job_finished is for webhook sinks");
    for (auto key : {"url", "headers", "auth", "secret", "template", "template_file",
                     "content_type"})
      kind_only(key, "webhook");
    if (s.token.empty())
      fail(p + ".token", key_or_map(n, "token"), "required for a Slack sink");
    if (s.channel.empty())
      fail(p + ".channel", key_or_map(n, "channel"), "required for a Slack sink");
    check_url(p + ".api_url", key_or_map(n, "api_url"), s.api_url);
    if (!on_set)
      s.on = {"failed", "fixed"};
  } else if (s.kind == "webhook") {
    for (auto key : {"token", "channel", "api_url"})
      kind_only(key, "slack");
    if (s.url.empty())
      fail(p + ".url", key_or_map(n, "url"), "required for a webhook sink");
    check_url(p + ".url", key_or_map(n, "url"), s.url);
    if (!on_set)
      s.on = {"failed", "broken", "still_failing", "fixed", "passed", "recovered"};
  } else if (s.kind == "exchange") {
    for (auto key : {"url", "headers", "auth", "secret", "template", "template_file",
                     "content_type"})
      kind_only(key, "webhook");
    for (auto key : {"token", "channel", "api_url"})
      kind_only(key, "slack");
    if (s.exchange.empty())
      fail(p + ".exchange", key_or_map(n, "exchange"), "required for an exchange sink");
    if (s.exchange == builds_exchange)
      fail(p + ".exchange", n["exchange"], "'builds' is buildtrack's own feed of build changes");
    if (!on_set)
      s.on = {"failed", "broken", "still_failing", "fixed", "passed", "recovered"};
  } else if (s.kind == "cdevents") {
    for (auto key : {"token", "channel", "api_url"})
      kind_only(key, "slack");
    for (auto key : {"template", "template_file", "content_type"})
      kind_only(key, "webhook");
    if (s.url.empty())
      fail(p + ".url", key_or_map(n, "url"), "required for a cdevents sink");
    check_url(p + ".url", key_or_map(n, "url"), s.url);
    if (s.mode != "binary" && s.mode != "structured")
      fail(p + ".mode", n["mode"], "expected binary or structured, got '" + s.mode + "'");
    if (s.event_source.empty())
      fail(p + ".source", n["source"], "a URI reference, not empty");
    if (!on_set)
      s.on = {"failed", "broken", "still_failing", "fixed", "passed", "recovered"};
  } else {
    fail(p + ".kind", key_or_map(n, "kind"),
         "expected slack, webhook, exchange or cdevents, got '" + s.kind + "'");
  }
  return s;
}

} // namespace

duration parse_duration(const std::string& text) {
  static const std::regex re{R"(^\s*(\d+)\s*(ms|s|m|h|d)\s*$)"};
  std::smatch m;
  if (!std::regex_match(text, m, re))
    throw config_error{"expected a duration like 200ms, 30s, 5m, 4h or 1d, got '" + text + "'"};
  auto n = whole_number(m[1].str());
  auto unit = m[2].str();
  auto per_unit = std::find_if(std::begin(duration_units), std::end(duration_units),
                               [&](auto& u) { return u.first == unit; })
                    ->second; // the pattern admits only these units
  // Beyond a century nothing is meaningful; refusing it keeps every sum of times finite.
  constexpr std::uint64_t century = 100ull * 366 * 86'400'000;
  if (!n || *n > century / per_unit)
    throw config_error{"duration '" + text + "' is too long"};
  return duration{static_cast<duration::rep>(*n * per_unit)};
}

std::uint64_t parse_size(const std::string& text) {
  static const std::regex re{R"(^\s*(\d+)\s*(B|KiB|MiB|GiB|KB|MB|GB)?\s*$)"};
  std::smatch m;
  if (!std::regex_match(text, m, re))
    throw config_error{"expected a size like 1MiB, 512KiB or 1000, got '" + text + "'"};
  static const std::map<std::string, std::uint64_t> units{
    {"", 1},          {"B", 1},           {"KiB", 1ull << 10}, {"MiB", 1ull << 20},
    {"GiB", 1ull << 30}, {"KB", 1000},    {"MB", 1000000},     {"GB", 1000000000}};
  auto n = whole_number(m[1].str());
  auto unit = units.at(m[2].str());
  if (!n || *n > std::numeric_limits<std::uint64_t>::max() / unit)
    throw config_error{"size '" + text + "' is too large"};
  return *n * unit;
}

config parse(const std::string& text) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw config_error{std::string{"invalid YAML: "} + e.what()};
  }
  config c;
  std::optional<YAML::Node> sinks; // copies share the node, unlike operator=
  std::string sinks_path;
  walk("", root,
       {{"server", [&](auto& p, auto& n) {
           walk(p, n, {{"listen", string_into(c.server.listen)},
                       {"io_threads", int_into(c.server.io_threads, 1, 64)},
                       {"body_limit", size_into(c.server.body_limit, 1024, 1ull << 30)},
                       {"read_timeout", duration_into(c.server.read_timeout, 100ms, 1h)},
                       {"admin_token", string_into(c.server.admin_token)},
                       {"max_connections", int_into(c.server.max_connections, 1, 1'000'000)}});
           auto colon = c.server.listen.rfind(':');
           auto port = colon == std::string::npos ? "" : c.server.listen.substr(colon + 1);
           if (port.empty() || port.size() > 5
               || port.find_first_not_of("0123456789") != std::string::npos
               || std::stoul(port) > 65535 || colon == 0)
             fail(p + ".listen", n["listen"], "expected host:port, got '" + c.server.listen + "'");
         }},
        {"store", [&](auto& p, auto& n) {
           walk(p, n,
                {{"kind", string_into(c.store.kind)},
                 {"redis", [&](auto& p2, auto& n2) {
                    walk(p2, n2, {{"url", string_into(c.store.redis.url)},
                                  {"key_prefix", string_into(c.store.redis.key_prefix)}});
                    if (!c.store.redis.url.starts_with("redis://"))
                      fail(p2 + ".url", n2["url"], "expected redis://host:port/db");
                  }},
                 {"snapshot_interval", duration_into(c.store.snapshot_interval, 10ms, 1h)},
                 {"snapshot_max_builds", int_into(c.store.snapshot_max_builds, 1, 1000000)},
                 {"snapshot_delay", duration_into(c.store.snapshot_delay, 0ms, 1h)},
                 {"retention", duration_into(c.store.retention, 1s, days{3650})},
                 {"abandoned_after", duration_into(c.store.abandoned_after, 1s, days{3650})}});
           if (c.store.kind != "memory" && c.store.kind != "redis")
             fail(p + ".kind", n["kind"], "expected memory or redis, got '" + c.store.kind + "'");
         }},
        {"sources", [&](auto& p, auto& n) {
           walk(p, n, {{"buildkite", [&](auto& p2, auto& n2) {
                          walk(p2, n2,
                               {{"token", string_into(c.buildkite.token)},
                                {"signature_secret", string_into(c.buildkite.signature_secret)},
                                {"replay_window", duration_into(c.buildkite.replay_window, 1s, 24h)}});
                        }},
                       {"native", [&](auto& p2, auto& n2) {
                          walk(p2, n2, {{"token", string_into(c.native.token)}});
                        }},
                       {"taskcluster", [&](auto& p2, auto& n2) {
                          walk(p2, n2, {{"token", string_into(c.taskcluster.token)},
                                        {"root_url", string_into(c.taskcluster.root_url)},
                                        {"route_prefix", string_into(c.taskcluster.route_prefix)},
                                        {"exchange", string_into(c.taskcluster.exchange)},
                                        {"schemas", string_into(c.taskcluster.schemas)},
                                        {"task_cache", int_into(c.taskcluster.task_cache, 1, 10'000'000)}});
                          while (c.taskcluster.root_url.ends_with('/'))
                            c.taskcluster.root_url.pop_back();
                          if (!c.taskcluster.root_url.empty()
                              && !c.taskcluster.root_url.starts_with("http://")
                              && !c.taskcluster.root_url.starts_with("https://"))
                            fail(p2 + ".root_url", n2["root_url"], "expected an http(s) URL");
                          auto& prefix = c.taskcluster.route_prefix;
                          if (prefix.empty() || prefix.find('.') != std::string::npos
                              || prefix.size() > 25)
                            fail(p2 + ".route_prefix", n2["route_prefix"],
                                 "a route's first word: 1 to 25 characters, no dot");
                          if (c.taskcluster.exchange.empty())
                            fail(p2 + ".exchange", n2["exchange"], "required: a name");
                          if (c.taskcluster.exchange == builds_exchange)
                            fail(p2 + ".exchange", n2["exchange"],
                                 "'builds' is buildtrack's own feed of build changes");
                        }},
                       {"cdevents", [&](auto& p2, auto& n2) {
                          walk(p2, n2, {{"token", string_into(c.cdevents.token)},
                                        {"schemas", string_into(c.cdevents.schemas)}});
                        }}});
         }},
        {"exchanges", [&](auto& p, auto& n) {
           walk(p, n, {{"backlog", int_into(c.exchanges.backlog, 1, 100'000'000)},
                       {"subscriber_queue", int_into(c.exchanges.subscriber_queue, 1, 1'000'000)},
                       {"idle_timeout", duration_into(c.exchanges.idle_timeout, 1s, 1h)}});
         }},
        {"collator", [&](auto& p, auto& n) {
           walk(p, n, {{"check_interval", duration_into(c.collator.check_interval, 100ms, 1h)},
                       {"build_completed_timeout",
                        duration_into(c.collator.build_completed_timeout, 100ms, days{7})},
                       {"failure_timeout", duration_into(c.collator.failure_timeout, 100ms, days{30})}});
         }},
        {"tracking", [&](auto& p, auto& n) {
           walk(p, n, {{"branches", list_into(c.tracking.branches)},
                       {"actor_idle_timeout", duration_into(c.tracking.actor_idle_timeout, 1ms, 24h)},
                       {"max_jobs_per_build", int_into(c.tracking.max_jobs_per_build, 1, 1'000'000)},
                       {"max_attempts_per_job", int_into(c.tracking.max_attempts_per_job, 2, 10'000)},
                       {"max_statistics_per_build",
                        int_into(c.tracking.max_statistics_per_build, 1, 1'000'000)},
                       {"max_messages_per_build",
                        int_into(c.tracking.max_messages_per_build, 1, 1'000'000)}});
         }},
        {"actors", [&](auto& p, auto& n) {
           walk(p, n, {{"threads", int_into(c.actors.threads, 1, 64)},
                       {"max_throughput", int_into(c.actors.max_throughput, 1, 1000000)},
                       {"policy", [&](auto& p2, auto& n2) {
                          c.actors.policy = scalar(p2, n2);
                          if (c.actors.policy != "sharing" && c.actors.policy != "stealing")
                            fail(p2, n2, "expected sharing or stealing");
                        }}});
         }},
        {"notifications", [&](auto& p, auto& n) {
           // After tracking: a sink's branches default to the tracked ones.
           sinks.emplace(n);
           sinks_path = p;
         }},
        {"people", [&](auto& p, auto& n) {
           each_item(p, n, [&](auto& p2, auto& n2) {
             person_config who;
             walk(p2, n2, {{"email", string_into(who.email)},
                           {"github", string_into(who.github)},
                           {"slack", string_into(who.slack)}});
             if (who.slack.empty())
               fail(p2 + ".slack", n2, "required: the Slack member id to mention");
             if (who.email.empty() && who.github.empty())
               fail(p2, n2, "needs an email or a github login to match authors by");
             c.people.push_back(who);
           });
         }},
        {"log", [&](auto& p, auto& n) {
           walk(p, n, {{"level", [&](auto& p2, auto& n2) {
                          c.log_level = scalar(p2, n2);
                          if (c.log_level != "debug" && c.log_level != "info"
                              && c.log_level != "warn" && c.log_level != "error")
                            fail(p2, n2, "expected debug, info, warn or error");
                        }}});
         }}});
  if (sinks)
    each_item(sinks_path, *sinks, [&](auto& p, auto& n) {
      auto sink = parse_sink(p, n, c);
      for (auto& other : c.notifications)
        if (other.name == sink.name)
          fail(p + ".name", key_or_map(n, "name"), "another sink is called '" + sink.name + "'");
      c.notifications.push_back(std::move(sink));
    });
  return c;
}

std::vector<std::string> exchange_names(const config& c) {
  std::vector<std::string> names{builds_exchange, c.taskcluster.exchange};
  for (auto& sink : c.notifications)
    if (sink.kind == "exchange" && std::find(names.begin(), names.end(), sink.exchange) == names.end())
      names.push_back(sink.exchange);
  return names;
}

config load(const std::string& path) {
  auto text = support::read_file(path);
  if (!text)
    throw config_error{path + ": cannot read file"};
  try {
    return parse(*text);
  } catch (const config_error& e) {
    throw config_error{path + ": " + e.what()};
  }
}

} // namespace bt::config
