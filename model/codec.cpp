#include "model/codec.hpp"

#include <nlohmann/json.hpp>

namespace bt::model::codec {
namespace {

using nlohmann::json;

std::int64_t ms(timestamp t) {
  return t.time_since_epoch().count();
}

timestamp at(std::int64_t v) {
  return timestamp{std::chrono::milliseconds{v}};
}

json opt(const std::optional<timestamp>& t) {
  return t ? json(ms(*t)) : json(nullptr);
}

std::optional<timestamp> opt_time(const json& j) {
  if (j.is_null())
    return std::nullopt;
  return at(j.get<std::int64_t>());
}

json key(const build_key& k) {
  return json::array({k.source, k.pipeline, k.id});
}

build_key key(const json& j) {
  return {j.at(0).get<std::string>(), j.at(1).get<std::string>(), j.at(2).get<std::string>()};
}

json encode(const person& p) {
  return json::array({p.name, p.email, p.login});
}

person decode_person(const json& j) {
  return {j.at(0).get<std::string>(), j.at(1).get<std::string>(), j.at(2).get<std::string>()};
}

json encode(const build_info& i) {
  return {{"number", i.number ? json(*i.number) : json(nullptr)},
          {"branch", i.branch},
          {"commit", i.commit},
          {"message", i.message},
          {"url", i.url},
          {"pipeline_name", i.pipeline_name},
          {"author", encode(i.author)},
          {"personal", i.personal},
          {"parent", i.parent ? key(*i.parent) : json(nullptr)}};
}

build_info decode_info(const json& j) {
  build_info i;
  if (!j.at("number").is_null())
    i.number = j.at("number").get<std::int64_t>();
  i.branch = j.at("branch").get<std::string>();
  i.commit = j.at("commit").get<std::string>();
  i.message = j.at("message").get<std::string>();
  i.url = j.at("url").get<std::string>();
  i.pipeline_name = j.at("pipeline_name").get<std::string>();
  i.author = decode_person(j.at("author"));
  i.personal = j.at("personal").get<bool>();
  if (!j.at("parent").is_null())
    i.parent = key(j.at("parent"));
  return i;
}

json encode(const attempt& a) {
  return {{"id", a.id},
          {"number", a.number},
          {"state", static_cast<int>(a.state)},
          {"source_state", a.source_state},
          {"exit_status", a.exit_status ? json(*a.exit_status) : json(nullptr)},
          {"soft_failed", a.soft_failed},
          {"url", a.url},
          {"started", opt(a.started)},
          {"finished", opt(a.finished)}};
}

/// Enumerations are stored by value; a value out of range is a corrupt document.
template <class Enum>
Enum enum_of(const json& j, Enum last) {
  auto v = j.get<int>();
  if (v < 0 || v > static_cast<int>(last))
    throw std::out_of_range{"enumeration value out of range"};
  return static_cast<Enum>(v);
}

attempt decode_attempt(const json& j) {
  attempt a;
  a.id = j.at("id").get<std::string>();
  a.number = j.at("number").get<std::int64_t>();
  a.state = enum_of(j.at("state"), job_state::blocked);
  a.source_state = j.at("source_state").get<std::string>();
  if (!j.at("exit_status").is_null())
    a.exit_status = j.at("exit_status").get<std::int64_t>();
  a.soft_failed = j.at("soft_failed").get<bool>();
  a.url = j.at("url").get<std::string>();
  a.started = opt_time(j.at("started"));
  a.finished = opt_time(j.at("finished"));
  return a;
}

json encode(const streak_result& r) {
  return json::array({static_cast<int>(r.kind), r.failures, r.revision});
}

streak_result decode_result(const json& j) {
  return {enum_of(j.at(0), verdict::fixed), j.at(1).get<std::int64_t>(),
          j.at(2).get<std::uint64_t>()};
}

struct body_encoder {
  json operator()(const build_event& e) const {
    return {{"type", "build"},
            {"phase", static_cast<int>(e.phase)},
            {"end", static_cast<int>(e.end)},
            {"source_state", e.source_state}};
  }
  json operator()(const job_event& e) const {
    return {{"type", "job"}, {"group", e.group}, {"name", e.name}, {"report", encode(e.report)}};
  }
  json operator()(const statistic_event& e) const {
    return {{"type", "statistic"}, {"key", e.key}, {"value", e.value}};
  }
  json operator()(const streak_result& r) const {
    return {{"type", "verdict"}, {"result", encode(r)}};
  }
};

event_body decode_body(const json& j) {
  auto type = j.at("type").get<std::string>();
  if (type == "build")
    return build_event{enum_of(j.at("phase"), build_event::finished),
                       enum_of(j.at("end"), build_end::interrupted),
                       j.at("source_state").get<std::string>()};
  if (type == "job")
    return job_event{j.at("group").get<std::string>(), j.at("name").get<std::string>(),
                     decode_attempt(j.at("report"))};
  if (type == "statistic")
    return statistic_event{j.at("key").get<std::string>(), j.at("value").get<double>()};
  if (type == "verdict")
    return decode_result(j.at("result"));
  throw std::invalid_argument{"unknown event type"};
}

/// Runs a decoder, turning any exception from a malformed document into nothing.
template <class F>
auto guarded(F decode) -> std::optional<decltype(decode())> {
  try {
    return decode();
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

} // namespace

json encode(const envelope& e) {
  return {{"key", key(e.key)},
          {"delivery", e.delivery},
          {"received", ms(e.received)},
          {"info", e.info ? encode(*e.info) : json(nullptr)},
          {"body", std::visit(body_encoder{}, e.body)}};
}

json encode(const build& b) {
  auto jobs = json::array();
  for (auto& [group, j] : b.jobs) {
    auto attempts = json::array();
    for (auto& a : j.attempts)
      attempts.push_back(encode(a));
    jobs.push_back({{"group", group}, {"name", j.name}, {"attempts", std::move(attempts)}});
  }
  return {{"key", key(b.key)},
          {"info", encode(b.info)},
          {"source_state", b.source_state},
          {"state", static_cast<int>(b.state)},
          {"end", b.end ? json(static_cast<int>(*b.end)) : json(nullptr)},
          {"jobs", std::move(jobs)},
          {"statistics", b.statistics},
          {"recent_deliveries", b.recent_deliveries},
          {"created", opt(b.created)},
          {"started", opt(b.started)},
          {"finished", opt(b.finished)},
          {"updated", opt(b.updated)},
          {"revision", b.revision},
          {"streak", b.streak ? encode(*b.streak) : json(nullptr)}};
}

json encode(const streak_book& book) {
  auto streaks = json::array();
  for (auto& [k, history] : book.streaks()) {
    auto entries = json::array();
    for (auto& [number, e] : history)
      entries.push_back(json::array({number, e.failed, encode(e.result)}));
    streaks.push_back({{"source", k.source},
                       {"pipeline", k.pipeline},
                       {"branch", k.branch},
                       {"builds", std::move(entries)}});
  }
  return {{"history_limit", book.history_limit()}, {"streaks", std::move(streaks)}};
}

std::optional<envelope> decode_envelope(const json& j) {
  return guarded([&] {
    envelope e;
    e.key = key(j.at("key"));
    e.delivery = j.at("delivery").get<std::string>();
    e.received = at(j.at("received").get<std::int64_t>());
    if (!j.at("info").is_null())
      e.info = decode_info(j.at("info"));
    e.body = decode_body(j.at("body"));
    return e;
  });
}

std::optional<build> decode_build(const json& j) {
  return guarded([&] {
    build b;
    b.key = key(j.at("key"));
    b.info = decode_info(j.at("info"));
    b.source_state = j.at("source_state").get<std::string>();
    b.state = enum_of(j.at("state"), build_state::interrupted);
    if (!j.at("end").is_null())
      b.end = enum_of(j.at("end"), build_end::interrupted);
    for (auto& jj : j.at("jobs")) {
      job jb{jj.at("group").get<std::string>(), jj.at("name").get<std::string>(), {}};
      for (auto& a : jj.at("attempts"))
        jb.attempts.push_back(decode_attempt(a));
      if (jb.attempts.empty())
        throw std::invalid_argument{"job without attempts"};
      b.jobs.emplace(jb.group, std::move(jb));
    }
    b.statistics = j.at("statistics").get<std::map<std::string, double>>();
    b.recent_deliveries = j.at("recent_deliveries").get<std::vector<std::string>>();
    b.created = opt_time(j.at("created"));
    b.started = opt_time(j.at("started"));
    b.finished = opt_time(j.at("finished"));
    b.updated = opt_time(j.at("updated"));
    b.revision = j.at("revision").get<std::uint64_t>();
    if (!j.at("streak").is_null())
      b.streak = decode_result(j.at("streak"));
    return b;
  });
}

std::optional<streak_book> decode_streaks(const json& j) {
  return guarded([&] {
    streak_book book{j.at("history_limit").get<std::size_t>()};
    for (auto& s : j.at("streaks")) {
      streak_key k{s.at("source").get<std::string>(), s.at("pipeline").get<std::string>(),
                   s.at("branch").get<std::string>()};
      for (auto& e : s.at("builds"))
        book.restore(k, e.at(0).get<std::int64_t>(),
                     {e.at(1).get<bool>(), decode_result(e.at(2))});
    }
    return book;
  });
}

} // namespace bt::model::codec
