#include "config/config.hpp"

#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <regex>
#include <sstream>
#include <yaml-cpp/yaml.h>

namespace bt::config {
namespace {

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

/// Walks one mapping, calling the handler of each key; unknown keys are errors.
using handlers = std::map<std::string, std::function<void(const std::string&, const YAML::Node&)>>;

void walk(const std::string& path, const YAML::Node& node, const handlers& hs) {
  if (node.IsNull())
    return;
  if (!node.IsMap())
    fail(path, node, "expected a mapping");
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

auto duration_into(duration& dst) {
  return [&dst](const std::string& p, const YAML::Node& n) {
    try {
      dst = parse_duration(scalar(p, n));
    } catch (const config_error& e) {
      fail(p, n, e.what());
    }
  };
}

auto size_into(std::size_t& dst) {
  return [&dst](const std::string& p, const YAML::Node& n) {
    try {
      dst = parse_size(scalar(p, n));
    } catch (const config_error& e) {
      fail(p, n, e.what());
    }
    if (dst == 0)
      fail(p, n, "must be positive");
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

} // namespace

duration parse_duration(const std::string& text) {
  static const std::regex re{R"(^\s*(\d+)\s*(ms|s|m|h|d)\s*$)"};
  std::smatch m;
  if (!std::regex_match(text, m, re))
    throw config_error{"expected a duration like 200ms, 30s, 5m, 4h or 1d, got '" + text + "'"};
  auto n = std::stoll(m[1]);
  auto unit = m[2].str();
  if (unit == "ms")
    return duration{n};
  if (unit == "s")
    return std::chrono::seconds{n};
  if (unit == "m")
    return std::chrono::minutes{n};
  if (unit == "h")
    return std::chrono::hours{n};
  return std::chrono::hours{24 * n};
}

std::uint64_t parse_size(const std::string& text) {
  static const std::regex re{R"(^\s*(\d+)\s*(B|KiB|MiB|GiB|KB|MB|GB)?\s*$)"};
  std::smatch m;
  if (!std::regex_match(text, m, re))
    throw config_error{"expected a size like 1MiB, 512KiB or 1000, got '" + text + "'"};
  std::uint64_t n = std::stoull(m[1]);
  static const std::map<std::string, std::uint64_t> units{
    {"", 1},          {"B", 1},           {"KiB", 1ull << 10}, {"MiB", 1ull << 20},
    {"GiB", 1ull << 30}, {"KB", 1000},    {"MB", 1000000},     {"GB", 1000000000}};
  return n * units.at(m[2].str());
}

config parse(const std::string& text) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw config_error{std::string{"invalid YAML: "} + e.what()};
  }
  config c;
  walk("", root,
       {{"server", [&](auto& p, auto& n) {
           walk(p, n, {{"listen", string_into(c.server.listen)},
                       {"io_threads", int_into(c.server.io_threads, 1, 64)},
                       {"body_limit", size_into(c.server.body_limit)},
                       {"read_timeout", duration_into(c.server.read_timeout)},
                       {"admin_token", string_into(c.server.admin_token)}});
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
                 {"snapshot_interval", duration_into(c.store.snapshot_interval)},
                 {"snapshot_max_builds", int_into(c.store.snapshot_max_builds, 1, 1000000)},
                 {"retention", duration_into(c.store.retention)},
                 {"abandoned_after", duration_into(c.store.abandoned_after)}});
           if (c.store.kind != "memory" && c.store.kind != "redis")
             fail(p + ".kind", n["kind"], "expected memory or redis, got '" + c.store.kind + "'");
           for (auto [key, value] : {std::pair{"snapshot_interval", c.store.snapshot_interval},
                                     std::pair{"retention", c.store.retention},
                                     std::pair{"abandoned_after", c.store.abandoned_after}})
             if (value.count() <= 0)
               fail(p + "." + key, n[key], "must be positive");
         }},
        {"sources", [&](auto& p, auto& n) {
           walk(p, n, {{"buildkite", [&](auto& p2, auto& n2) {
                          walk(p2, n2,
                               {{"token", string_into(c.buildkite.token)},
                                {"signature_secret", string_into(c.buildkite.signature_secret)},
                                {"replay_window", duration_into(c.buildkite.replay_window)}});
                        }}});
         }},
        {"tracking", [&](auto& p, auto& n) {
           walk(p, n, {{"branches", list_into(c.tracking.branches)},
                       {"actor_idle_timeout", duration_into(c.tracking.actor_idle_timeout)}});
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
        {"log", [&](auto& p, auto& n) {
           walk(p, n, {{"level", [&](auto& p2, auto& n2) {
                          c.log_level = scalar(p2, n2);
                          if (c.log_level != "debug" && c.log_level != "info"
                              && c.log_level != "warn" && c.log_level != "error")
                            fail(p2, n2, "expected debug, info, warn or error");
                        }}});
         }}});
  return c;
}

config load(const std::string& path) {
  std::ifstream in{path};
  if (!in)
    throw config_error{path + ": cannot read file"};
  std::stringstream buf;
  buf << in.rdbuf();
  try {
    return parse(buf.str());
  } catch (const config_error& e) {
    throw config_error{path + ": " + e.what()};
  }
}

} // namespace bt::config
