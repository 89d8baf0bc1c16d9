#include "net/routes.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <map>
#include <tuple>

#include <boost/beast/http.hpp>

#include "model/topic.hpp"
#include "net/ui_files.hpp"
#include "sources/native.hpp"
#include "sources/source.hpp"
#include "support/clock.hpp"
#include "support/crypto.hpp"
#include <nlohmann/json.hpp>

#include "support/log.hpp"
#include "support/metrics.hpp"

namespace bt::net {
namespace {

namespace http = boost::beast::http;
using clock_type = std::chrono::steady_clock;

/// The answer for a refusal: its status and JSON body, `Retry-After` for 429 and 503.
response rejection_response(const sources::rejection& r) {
  auto res = json_response(static_cast<unsigned>(r.status), r.body());
  if (r.status == 503 || r.status == 429)
    res.set(http::field::retry_after, "1");
  return res;
}

void send_rejection(responder& respond, const sources::rejection& r) {
  respond(rejection_response(r));
}

/// A request target's path and query (without the '?').
std::pair<std::string_view, std::string_view> path_and_query(const request& req) {
  std::string_view target{req.target().data(), req.target().size()};
  auto qmark = target.find('?');
  return {target.substr(0, qmark),
          qmark == std::string_view::npos ? std::string_view{} : target.substr(qmark + 1)};
}

sources::rejection error(int status, std::string code, std::string message,
                         std::string field = "") {
  return {status, std::move(code), std::move(message), std::move(field)};
}

std::string_view header(const request& req, std::string_view name) {
  auto it = req.find(boost::beast::string_view{name.data(), name.size()});
  if (it == req.end())
    return {};
  auto v = it->value();
  return {v.data(), v.size()};
}

/// Percent-decodes a URL component ('+' is a space in query strings).
std::optional<std::string> url_decode(std::string_view in, bool plus_is_space) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%') {
      if (i + 2 >= in.size() || !std::isxdigit(static_cast<unsigned char>(in[i + 1]))
          || !std::isxdigit(static_cast<unsigned char>(in[i + 2])))
        return std::nullopt;
      out += static_cast<char>(std::stoi(std::string{in.substr(i + 1, 2)}, nullptr, 16));
      i += 2;
    } else if (in[i] == '+' && plus_is_space) {
      out += ' ';
    } else {
      out += in[i];
    }
  }
  return out;
}

/// The `name=value` pairs of a query string, decoded; nothing when one is malformed.
std::optional<std::vector<std::pair<std::string, std::string>>> query_params(std::string_view query) {
  std::vector<std::pair<std::string, std::string>> out;
  while (!query.empty()) {
    auto amp = query.find('&');
    auto pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    auto eq = pair.find('=');
    auto name = url_decode(pair.substr(0, eq), true);
    auto value = url_decode(eq == std::string_view::npos ? "" : pair.substr(eq + 1), true);
    if (!name || !value)
      return std::nullopt;
    out.emplace_back(std::move(*name), std::move(*value));
  }
  return out;
}

/// A backlog position as subscribers give it back: `<ms>-<seq>` or `<ms>`.
bool is_position(std::string_view s) {
  auto dash = s.find('-');
  auto digits = [](std::string_view d) {
    return !d.empty() && d.size() <= 20 && d.find_first_not_of("0123456789") == std::string_view::npos;
  };
  return digits(s.substr(0, dash)) && (dash == std::string_view::npos || digits(s.substr(dash + 1)));
}

/// Counts events per source, type and outcome. Each thread remembers the counters it
/// used, so the hot path takes no lock and builds no label string.
void count_event(const std::string& source, const std::string& type, const char* outcome) {
  thread_local std::map<std::tuple<std::string, std::string, const char*>, support::counter*> seen;
  auto& slot = seen[{source, type, outcome}];
  if (!slot)
    slot = &support::metrics().get_counter(
      "buildtrack_events_total", "Inbound events by source, type and outcome.",
      "source=\"" + source + "\",type=\"" + support::label_value(type) + "\",outcome=\""
        + outcome + "\"");
  slot->inc();
}

/// The status page's file at `path` (`/` is `index.html`), or a JSON 404. The page
/// holds no data: it reads the API with the admin token the user gives it.
response ui_response(std::string_view path, unsigned version, bool keep_alive) {
  auto name = path == "/" ? std::string_view{"index.html"} : path.substr(4);
  for (auto& [file, content] : ui_files()) {
    if (file != name)
      continue;
    response res{http::status::ok, version};
    res.set(http::field::server, "buildtrack");
    auto type = name.ends_with(".html") ? "text/html; charset=utf-8"
                : name.ends_with(".js") ? "text/javascript; charset=utf-8"
                                        : "text/css; charset=utf-8";
    res.set(http::field::content_type, type);
    res.set(http::field::cache_control, "no-cache");
    res.set("X-Content-Type-Options", "nosniff");
    // Only its own files: no framework, font or script from elsewhere ever runs here.
    res.set("Content-Security-Policy", "default-src 'self'; connect-src 'self'; img-src 'self' data:; "
                                       "frame-ancestors 'none'; base-uri 'none'; form-action 'self'");
    res.keep_alive(keep_alive);
    res.body() = std::string{content};
    res.prepare_payload();
    return res;
  }
  return json_response(404, error(404, "not_found", "no such file of the status page").body(), version,
                       keep_alive);
}

/// Completes `respond` with an actor's answer: its status and JSON body.
actors::service::reply_fn json_reply(responder& respond) {
  return [respond](int status, std::string body) {
    respond(json_response(static_cast<unsigned>(status), std::move(body)));
  };
}

} // namespace

api::api(const config::config& cfg, actors::service& svc, store::store& st)
  : cfg_{cfg}, service_{svc}, store_{st} {
  for (auto& source : sources::make_sources(cfg)) {
    auto& latency = support::metrics().get_histogram(
      "buildtrack_ack_latency_seconds", "Time from request read to 202 Accepted.",
      "source=\"" + std::string{source->name()} + "\"");
    inputs_.push_back({std::move(source), &latency});
  }
}

bool api::admin_allowed(const request& req) const {
  if (cfg_.server.admin_token.empty())
    return true;
  auto auth = header(req, "Authorization");
  return auth.starts_with("Bearer ")
         && support::constant_time_equal(auth.substr(7), cfg_.server.admin_token);
}

void api::handle(request&& req, responder respond) {
  auto [path, query] = path_and_query(req);
  auto method = req.method();
  auto wrong_method = [&](const char* allowed) {
    auto res = json_response(405, error(405, "method_not_allowed",
                                        std::string{"use "} + allowed).body());
    res.set(http::field::allow, allowed);
    respond(std::move(res));
  };
  auto require_admin = [&] {
    if (admin_allowed(req))
      return true;
    send_rejection(respond, error(401, "unauthorized", "read endpoints need the admin token",
                                  "Authorization"));
    return false;
  };

  if (path == "/" || path.starts_with("/ui/")) {
    if (method != http::verb::get)
      return wrong_method("GET");
    return respond(ui_response(path, req.version(), req.keep_alive()));
  }
  bool serving = serving_.load(std::memory_order_acquire);
  if (path == "/healthz")
    return respond(json_response(200, R"({"status":"ok"})"));
  if (path == "/readyz") {
    if (!serving)
      return respond(json_response(503, R"({"status":"starting: recovering from the store"})"));
    bool ready = store_.ready();
    return respond(json_response(ready ? 200 : 503, ready ? R"({"status":"ready"})"
                                                          : R"({"status":"store unavailable"})"));
  }
  if (path == "/metrics") {
    auto res = json_response(200, support::metrics().render());
    res.set(http::field::content_type, "text/plain; version=0.0.4");
    return respond(std::move(res));
  }
  if (!serving)
    return send_rejection(respond, error(503, "starting",
                                         "recovering from the store; retry later"));
  for (auto& input : inputs_)
    if (path == input.source->path()) {
      if (method != http::verb::post)
        return wrong_method("POST");
      return ingest(input, req, respond);
    }
  // The reads that take the admin token.
  if (path == "/api/v1/streaks" || path == "/api/v1/builds" || path == "/api/v1/overview") {
    if (method != http::verb::get)
      return wrong_method("GET");
    if (!require_admin())
      return;
    if (path == "/api/v1/streaks")
      return service_.streaks(json_reply(respond));
    if (path == "/api/v1/builds")
      return list_builds(query, respond);
    return overview(query, respond);
  }
  if (path.starts_with("/api/v1/builds/")) {
    bool read = method == http::verb::get;
    if (!read && method != http::verb::post)
      return wrong_method("GET, POST");
    return builds_path(path.substr(15), req, respond);
  }
  send_rejection(respond, error(404, "not_found", "no such endpoint"));
}

void api::ingest(const input& input, request& req, responder& respond) {
  auto started = clock_type::now();
  auto& source = *input.source;
  auto name = std::string{source.name()};
  sources::inbound in{[&req](std::string_view h) { return header(req, h); }, req.body(),
                      support::wall_clock()};
  // Credentials before anything else about the request: an unauthenticated client
  // learns nothing from the answer but that.
  if (auto denied = source.authenticate(in)) {
    count_event(name, "", "unauthorized");
    support::log(support::log_level::warn, "delivery refused",
                 {{"source", name}, {"code", denied->code}, {"field", denied->field}});
    return send_rejection(respond, *denied);
  }
  auto parsed = source.parse(in);
  if (auto* r = std::get_if<sources::rejection>(&parsed)) {
    auto label = source.label(in);
    count_event(name, label, "rejected");
    support::log(support::log_level::warn, "delivery rejected",
                 {{"source", name}, {"event", label}, {"code", r->code}, {"field", r->field},
                  {"line", r->line}, {"message", r->message}});
    return send_rejection(respond, *r);
  }
  auto& delivery = std::get<sources::delivery>(parsed);
  if (delivery.kind != sources::delivery::events) {
    bool ping = delivery.kind == sources::delivery::ping;
    count_event(name, delivery.label, ping ? "ping" : "ignored");
    return respond(json_response(200, ping ? R"({"status":"pong"})" : R"({"status":"ignored"})"));
  }
  accept(input, std::move(delivery.label), std::move(delivery.envelopes), respond, started);
}

void api::accept(const input& input, std::string label, std::vector<model::envelope> events_in,
                 responder& respond, clock_type::time_point started) {
  auto name = std::string{input.source->name()};
  auto count = events_in.size();
  // Shared, not moved into the callback: append reads them while the callback is
  // being built, and argument evaluation order is unspecified.
  auto events = std::make_shared<std::vector<model::envelope>>(std::move(events_in));
  auto* latency = input.latency;
  bool tally = input.source->reports_duplicates();
  // Acknowledge only what the journal holds (one write for the whole request); route
  // in the same order.
  store_.append(*events, [this, respond, name, label = std::move(label), count, started,
                          events, tally, latency](bool durable, store::commit& c) mutable {
    if (!durable) {
      count_event(name, label, "unavailable");
      return send_rejection(respond, error(503, "store_unavailable",
                                           "the journal is unavailable; retry later"));
    }
    count_event(name, label, "accepted");
    auto observe = [started, latency] {
      latency->observe(std::chrono::duration<double>(clock_type::now() - started).count());
    };
    if (!tally) {
      for (auto& e : *events)
        service_.route(std::move(e), c);
      // Written with the commit's other answers: one hand-off per I/O thread.
      observe();
      return c.gather<answer_batch>().add(
        respond, json_response(202, R"({"accepted":)" + std::to_string(count) + "}"));
    }
    auto answer = [respond, observe](std::string body) mutable {
      observe();
      respond(json_response(202, std::move(body)));
    };
    // Answered once every event was applied, to say which were duplicates.
    service_.route(
      std::move(*events),
      [answer, count](std::size_t duplicates) mutable {
        answer(R"({"accepted":)" + std::to_string(count) + R"(,"duplicates":)"
               + std::to_string(duplicates) + "}");
      },
      c);
  });
}

void api::builds_path(std::string_view rest, request& req, responder& respond) {
  // Each part URL-encoded.
  std::vector<std::string> parts;
  size_t pos = 0;
  while (pos <= rest.size()) {
    auto slash = rest.find('/', pos);
    auto piece = rest.substr(pos, slash == std::string_view::npos ? std::string_view::npos
                                                                  : slash - pos);
    auto decoded = url_decode(piece, false);
    if (!decoded || decoded->empty())
      break;
    parts.push_back(std::move(*decoded));
    if (slash == std::string_view::npos) {
      pos = rest.size() + 1;
      break;
    }
    pos = slash + 1;
  }
  bool whole = pos > rest.size();
  auto n = parts.size();
  bool get = req.method() == http::verb::get;
  bool read = whole && get && (n == 3 || (n == 4 && parts[3] == "notifications"));
  if (read && !admin_allowed(req))
    return send_rejection(respond, error(401, "unauthorized", "read endpoints need the admin token",
                                         "Authorization"));
  if (read && n == 3)
    return read_build({parts[0], parts[1], parts[2]}, respond);
  if (read)
    return service_.notifications({parts[0], parts[1], parts[2]}, json_reply(respond));
  if (whole && !get && n == 4 && parts[3] == "commands")
    return post_command({parts[0], parts[1], parts[2]}, req, respond);
  if (whole && !get && n == 6 && parts[3] == "targets" && parts[5] == "messages")
    return post_message({parts[0], parts[1], parts[2]}, std::move(parts[4]), req, respond);
  send_rejection(respond, error(404, "not_found",
                                "expected GET /api/v1/builds/{source}/{pipeline}/{id}, GET "
                                ".../notifications, POST .../commands or POST "
                                ".../targets/{job}/messages"));
}

api::checked_native api::parse_native(request& req, responder& respond, const char* label,
                                 const parse_fn& parse) {
  auto it = std::find_if(inputs_.begin(), inputs_.end(),
                         [](auto& in) { return in.source->name() == "native"; });
  sources::inbound in{[&req](std::string_view h) { return header(req, h); }, req.body(),
                      support::wall_clock()};
  // Credentials before anything else, as on every input.
  if (auto denied = it->source->authenticate(in)) {
    count_event("native", label, "unauthorized");
    send_rejection(respond, *denied);
    return {};
  }
  auto parsed = parse(header(req, "Content-Type"), req.body(), in.now);
  if (auto* r = std::get_if<sources::rejection>(&parsed)) {
    count_event("native", label, "rejected");
    support::log(support::log_level::warn, "delivery rejected",
                 {{"source", "native"}, {"event", label}, {"code", r->code}, {"field", r->field},
                  {"message", r->message}});
    send_rejection(respond, *r);
    return {};
  }
  return {&*it, std::move(std::get<model::envelope>(parsed))};
}

void api::post_message(model::build_key key, std::string target, request& req,
                       responder& respond) {
  auto started = clock_type::now();
  auto [native, e] = parse_native(req, respond, "message", [&](auto type, auto body, auto now) {
    return sources::native_message(key, target, type, body, now);
  });
  if (!native)
    return;
  std::vector<model::envelope> events;
  events.push_back(std::move(*e));
  accept(*native, "message", std::move(events), respond, started);
}

void api::post_command(model::build_key key, request& req, responder& respond) {
  auto [native, parsed] = parse_native(req, respond, "command", [&](auto type, auto body, auto now) {
    return sources::native_command(key, type, body, now);
  });
  if (!native)
    return;
  // Journaled first, like every event; then the build's actor decides, in order with
  // the events before it, and its word is the answer (a refused command changes
  // nothing, also when replayed).
  auto e = std::make_shared<model::envelope>(std::move(*parsed));
  store_.append({*e}, [this, respond, e](bool durable, store::commit& c) mutable {
    if (!durable) {
      count_event("native", "command", "unavailable");
      return send_rejection(respond, error(503, "store_unavailable",
                                           "the journal is unavailable; retry later"));
    }
    count_event("native", "command", "accepted");
    service_.command(
      std::move(*e),
      [respond](int status, std::string body) mutable {
        respond(json_response(static_cast<unsigned>(status), std::move(body)));
      },
      c);
  });
}

void api::read_build(const model::build_key& key, responder& respond) {
  service_.get_build(key, json_reply(respond));
}

namespace {

/// Parses a positive count parameter; none when it is not a whole number in [1, max].
std::optional<std::size_t> count_param(const std::string& value, long max) {
  char* end = nullptr;
  long n = std::strtol(value.c_str(), &end, 10);
  if (value.empty() || *end != '\0' || n < 1 || n > max)
    return std::nullopt;
  return static_cast<std::size_t>(n);
}

} // namespace

std::optional<model::build_query> api::build_filters(std::string_view query, bool with_state,
                                                     const char* count_name, long max_count,
                                                     std::size_t& count, responder& respond) const {
  model::build_query q;
  auto params = query_params(query);
  if (!params) {
    send_rejection(respond, error(400, "bad_query", "malformed URL encoding"));
    return std::nullopt;
  }
  for (auto& [name, value] : *params) {
    if (name == "source")
      q.source = value;
    else if (name == "pipeline")
      q.pipeline = value;
    else if (name == "branch")
      q.branch = value;
    else if (name == "state" && with_state) {
      q.state = model::parse_build_state(value);
      if (!q.state) {
        send_rejection(respond, error(400, "bad_query", "unknown build state", "state"));
        return std::nullopt;
      }
    } else if (name == count_name) {
      auto n = count_param(value, max_count);
      if (!n) {
        send_rejection(respond, error(400, "bad_query",
                                      name + " must be 1 to " + std::to_string(max_count), name));
        return std::nullopt;
      }
      count = *n;
    } else {
      send_rejection(respond, error(400, "bad_query", "unknown parameter", name));
      return std::nullopt;
    }
  }
  return q;
}

void api::list_builds(std::string_view query, responder& respond) {
  std::size_t limit = 50;
  auto q = build_filters(query, true, "limit", 1000, limit, respond);
  if (!q)
    return;
  q->limit = limit;
  service_.list_builds(*q, json_reply(respond));
}

void api::overview(std::string_view query, responder& respond) {
  std::size_t per_branch = 20;
  auto q = build_filters(query, false, "builds", 100, per_branch, respond);
  if (!q)
    return;
  service_.overview(*q, per_branch, json_reply(respond));
}

upgrade_plan api::upgrade(const request& req) {
  upgrade_plan plan;
  auto refuse = [&](const sources::rejection& r) {
    plan.refusal = rejection_response(r);
    return plan;
  };
  auto [path, query] = path_and_query(req);
  constexpr std::string_view prefix = "/api/v1/exchanges/", suffix = "/subscribe";
  if (!path.starts_with(prefix) || !path.ends_with(suffix) || path.size() <= prefix.size() + suffix.size())
    return refuse(error(404, "not_found", "no such endpoint"));
  if (!serving_.load(std::memory_order_acquire))
    return refuse(error(503, "starting", "recovering from the store; retry later"));
  auto params = query_params(query);
  if (!params)
    return refuse(error(400, "bad_query", "malformed URL encoding"));
  // Credentials first. A browser cannot set headers on a WebSocket: the admin token
  // may come as `access_token` too.
  bool allowed = admin_allowed(req);
  for (auto& [name, value] : *params)
    if (name == "access_token" && !cfg_.server.admin_token.empty())
      allowed = allowed || support::constant_time_equal(value, cfg_.server.admin_token);
  if (!allowed)
    return refuse(error(401, "unauthorized", "subscribing needs the admin token", "Authorization"));
  auto name = url_decode(path.substr(prefix.size(), path.size() - prefix.size() - suffix.size()), false);
  auto known = config::exchange_names(cfg_);
  if (!name || std::find(known.begin(), known.end(), *name) == known.end())
    return refuse(error(404, "not_found", "no such exchange"));
  std::vector<std::string> bindings;
  std::string since;
  for (auto& [key, value] : *params) {
    if (key == "bind") {
      if (auto problem = model::binding_problem(value))
        return refuse(error(400, "bad_binding", *problem, "bind"));
      bindings.push_back(value);
    } else if (key == "since") {
      if (!is_position(value))
        return refuse(error(400, "bad_query", "since is a position a message gave (its id)", "since"));
      since = value;
    } else if (key != "access_token") {
      return refuse(error(400, "bad_query", "unknown parameter", key));
    }
  }
  if (bindings.empty())
    return refuse(error(400, "bad_binding", "at least one bind=<pattern> ('#' for everything)", "bind"));
  auto& missed = support::metrics().get_counter(
    "buildtrack_exchange_missed_total",
    "Messages a subscriber's queue could not take (told to it in a missed notice), by exchange.",
    "exchange=\"" + support::label_value(*name) + "\"");
  plan.queue_limit = static_cast<std::size_t>(cfg_.exchanges.subscriber_queue);
  plan.idle_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(cfg_.exchanges.idle_timeout);
  plan.position = since;
  plan.gap_note = [&missed](std::uint64_t n, const std::string& resume) {
    missed.inc(n);
    return nlohmann::json{{"missed", n}, {"resume", resume}}.dump();
  };
  auto id = std::make_shared<std::uint64_t>(0);
  plan.opened = [this, id, exchange = *name, bindings = std::move(bindings),
                 since](std::shared_ptr<support::push_channel> channel) {
    *id = service_.subscribe(exchange, bindings, since, std::move(channel));
  };
  plan.closed = [this, id] { service_.unsubscribe(*id); };
  return plan;
}

} // namespace bt::net
