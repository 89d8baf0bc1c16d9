#include "sources/buildkite.hpp"

#include <charconv>
#include <map>
#include <simdjson.h>

#include "sources/payload.hpp"
#include "support/crypto.hpp"

namespace bt::sources {
namespace {

using model::job_state;

rejection unauthorized(std::string code, std::string message, std::string field) {
  return {401, std::move(code), std::move(message), std::move(field)};
}

checked<model::person> person_of(const fields& parent, std::string_view key) {
  BT_TRY(p, parent.child(key, false));
  if (!p)
    return model::person{};
  fields f{*p, parent.at(key)};
  BT_TRY(name, f.string("name"));
  BT_TRY(email, f.string("email"));
  BT_TRY(login, f.string("username"));
  return model::person{std::move(name), std::move(email), std::move(login)};
}

struct build_part {
  model::build_key key;
  model::build_info info;
  std::string state;
};

checked<build_part> build_of(const fields& top) {
  BT_TRY(b, top.child("build", true));
  BT_TRY(p, top.child("pipeline", true));
  fields build{*b, "build"}, pipeline{*p, "pipeline"};
  build_part out;
  BT_TRY(slug, pipeline.string("slug"));
  if (slug.empty() || slug.find('/') != std::string::npos)
    return invalid("pipeline.slug", "required, a pipeline slug without '/'");
  BT_TRY(number, build.integer("number"));
  if (!number || *number < 0)
    return invalid("build.number", "required, a non-negative integer");
  out.key = {"buildkite", slug, std::to_string(*number)};
  out.info.number = *number;
  BT_TRY(pname, pipeline.string("name"));
  out.info.pipeline_name = std::move(pname);
  BT_TRY(repository, pipeline.string("repository"));
  out.info.repository = std::move(repository);
  BT_TRY(state, build.string("state"));
  out.state = std::move(state);
  BT_TRY(branch, build.string("branch"));
  BT_TRY(commit, build.string("commit"));
  BT_TRY(message, build.string("message"));
  BT_TRY(url, build.string("web_url"));
  out.info.branch = std::move(branch);
  out.info.commit = std::move(commit);
  out.info.message = std::move(message);
  out.info.url = std::move(url);
  // Release builds are attributed to whoever created them, others to the commit
  // author; a build without an author (started from the UI) falls back to its creator.
  BT_TRY(author, person_of(build, "author"));
  BT_TRY(creator, person_of(build, "creator"));
  bool release = false;
  if (auto env = build.get("env"); env && env->is_object())
    for (const char* k : {"RELEASE_PUBLIC", "RELEASE_INTERNAL"}) {
      std::string_view flag;
      if ((*env)[k].get(flag) == simdjson::SUCCESS && flag == "true")
        release = true;
    }
  bool no_author = author.name.empty() && author.email.empty() && author.login.empty();
  out.info.author = release || no_author ? std::move(creator) : std::move(author);
  BT_TRY(trigger, build.child("triggered_from", false));
  if (trigger) {
    fields t{*trigger, "build.triggered_from"};
    BT_TRY(parent_slug, t.string("build_pipeline_slug"));
    BT_TRY(parent_number, t.integer("build_number"));
    if (!parent_slug.empty() && parent_number)
      out.info.parent = model::build_key{"buildkite", parent_slug, std::to_string(*parent_number)};
  }
  return out;
}

job_state job_state_of(const std::string& s) {
  static const std::map<std::string, job_state, std::less<>> states{
    {"pending", job_state::scheduled},      {"waiting", job_state::scheduled},
    {"limiting", job_state::scheduled},     {"limited", job_state::scheduled},
    {"scheduled", job_state::scheduled},    {"assigned", job_state::scheduled},
    {"accepted", job_state::scheduled},     {"running", job_state::running},
    {"canceling", job_state::running},      {"timing_out", job_state::running},
    {"passed", job_state::passed},          {"failed", job_state::failed},
    {"timed_out", job_state::timed_out},    {"canceled", job_state::canceled},
    {"expired", job_state::expired},        {"broken", job_state::broken},
    {"skipped", job_state::skipped},        {"blocked", job_state::blocked},
    {"blocked_failed", job_state::broken},  {"unblocked", job_state::passed},
    {"unblocked_failed", job_state::broken}, {"waiting_failed", job_state::broken},
    {"platform_limiting", job_state::scheduled}, {"platform_limited", job_state::scheduled}};
  auto it = states.find(s);
  return it == states.end() ? job_state::broken : it->second;
}

checked<std::optional<model::job_event>> job_of(const fields& top) {
  BT_TRY(j, top.child("job", true));
  fields job{*j, "job"};
  BT_TRY(type, job.string("type"));
  if (type == "waiter")
    return std::optional<model::job_event>{}; // wait steps carry no outcome
  model::job_event e;
  auto& r = e.report;
  BT_TRY(id, job.string("id"));
  if (id.empty())
    return invalid("job.id", "required");
  r.id = id; // a copy: the group may fall back to it below
  BT_TRY(state, job.string("state"));
  if (state.empty())
    return invalid("job.state", "required");
  r.state = job_state_of(state);
  r.source_state = std::move(state);
  BT_TRY(name, job.string("name"));
  BT_TRY(label, job.string("label"));
  BT_TRY(step_key, job.string("step_key"));
  auto& shown = !name.empty() ? name : !label.empty() ? label : step_key;
  // Retries of a step share its key (else its name); parallel copies do not.
  e.group = !step_key.empty() ? step_key : !shown.empty() ? shown : id;
  e.name = std::move(shown);
  BT_TRY(parallel, job.integer("parallel_group_index"));
  if (parallel)
    e.group += "#" + std::to_string(*parallel);
  BT_TRY(retries, job.integer("retries_count"));
  r.number = retries.value_or(0);
  BT_TRY(exit_status, job.integer("exit_status"));
  r.exit_status = exit_status;
  BT_TRY(soft, job.boolean("soft_failed"));
  r.soft_failed = soft;
  r.fails = buildkite_fails(r.state, r.exit_status, r.soft_failed);
  BT_TRY(url, job.string("web_url"));
  r.url = std::move(url);
  BT_TRY(started, job.time("started_at"));
  BT_TRY(finished, job.time("finished_at"));
  r.started = started;
  r.finished = finished;
  return std::optional<model::job_event>{std::move(e)};
}

const std::map<std::string, model::build_event::phase_t, std::less<>> build_events{
  {"build.scheduled", model::build_event::scheduled},
  {"build.running", model::build_event::started},
  {"build.failing", model::build_event::started},
  {"build.finished", model::build_event::finished},
  {"build.skipped", model::build_event::finished}};

bool is_job_event(std::string_view ev) {
  return ev == "job.scheduled" || ev == "job.started" || ev == "job.finished"
         || ev == "job.activated";
}

model::build_end end_of(const std::string& state) {
  if (state == "canceled" || state == "canceling" || state == "skipped" || state == "not_run")
    return model::build_end::canceled;
  return model::build_end::completed;
}

} // namespace

std::optional<rejection> buildkite_authenticate(const config::buildkite_config& cfg,
                                                const buildkite_headers& h,
                                                std::string_view body, model::timestamp now) {
  const auto& secret = cfg.signature_secret.empty() ? cfg.token : cfg.signature_secret;
  if (!h.signature.empty()) {
    if (secret.empty())
      return unauthorized("not_configured", "no Buildkite signature secret is configured",
                          "X-Buildkite-Signature");
    std::string_view ts, sig;
    std::string_view rest = h.signature;
    while (!rest.empty()) {
      auto comma = rest.find(',');
      auto part = rest.substr(0, comma);
      rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
      if (part.starts_with("timestamp="))
        ts = part.substr(10);
      else if (part.starts_with("signature="))
        sig = part.substr(10);
    }
    long long unix_seconds = 0;
    auto [ptr, ec] = std::from_chars(ts.data(), ts.data() + ts.size(), unix_seconds);
    if (ts.empty() || sig.empty() || ec != std::errc{} || ptr != ts.data() + ts.size())
      return unauthorized("bad_signature", "expected timestamp=<unix>,signature=<hex>",
                          "X-Buildkite-Signature");
    // In whole seconds, so that no timestamp a sender writes can overflow the
    // comparison (a time_point of -9223372036854775 s would wrap).
    using std::chrono::duration_cast;
    auto now_s = duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
    auto window_s = duration_cast<std::chrono::seconds>(cfg.replay_window).count();
    if (unix_seconds < now_s - window_s || unix_seconds > now_s + window_s)
      return unauthorized("stale_signature", "signature timestamp is outside the replay window",
                          "X-Buildkite-Signature");
    std::string signed_text{ts};
    signed_text += '.';
    signed_text += body;
    if (!support::constant_time_equal(support::hmac_sha256_hex(secret, signed_text), sig))
      return unauthorized("bad_signature", "signature does not match the body",
                          "X-Buildkite-Signature");
    return std::nullopt;
  }
  if (!h.token.empty()) {
    if (cfg.token.empty() || !support::constant_time_equal(h.token, cfg.token))
      return unauthorized("bad_token", "token does not match", "X-Buildkite-Token");
    return std::nullopt;
  }
  return unauthorized("missing_credentials",
                      "send X-Buildkite-Token or X-Buildkite-Signature", "X-Buildkite-Token");
}

bool buildkite_fails(model::job_state state, std::optional<std::int64_t> exit_status,
                     bool soft_failed) {
  if (soft_failed)
    return false;
  return state == job_state::timed_out
         || (state == job_state::failed && exit_status.value_or(0) > 0);
}

std::string_view buildkite_event_label(std::string_view event) {
  if (event == "ping" || is_job_event(event) || build_events.contains(event))
    return event;
  if (event.starts_with("agent."))
    return "agent";
  return event.empty() ? "" : "unsupported";
}

namespace {

class buildkite_source final : public source {
public:
  explicit buildkite_source(const config::buildkite_config& cfg) : cfg_{cfg} {}
  std::string_view name() const override { return "buildkite"; }
  std::string_view path() const override { return "/webhooks/buildkite"; }

  std::optional<rejection> authenticate(const inbound& in) const override {
    return buildkite_authenticate(cfg_, headers(in), in.body, in.now);
  }

  std::string label(const inbound& in) const override {
    return std::string{buildkite_event_label(in.header("X-Buildkite-Event"))};
  }

  checked<delivery> parse(const inbound& in) const override {
    auto content_type = in.header("Content-Type");
    if (!content_type.empty() && !is_media_type(content_type, "application/json"))
      return rejection{415, "unsupported_media_type", "send application/json", "Content-Type"};
    auto parsed = buildkite_parse(in.header("X-Buildkite-Event"), in.body, in.now);
    if (auto* r = std::get_if<rejection>(&parsed))
      return *r;
    auto& d = std::get<buildkite_delivery>(parsed);
    auto kind = d.kind == buildkite_delivery::ping      ? delivery::ping
                : d.kind == buildkite_delivery::ignored ? delivery::ignored
                                                        : delivery::events;
    return delivery{kind, std::string{buildkite_event_label(d.event)}, std::move(d.envelopes)};
  }

private:
  static buildkite_headers headers(const inbound& in) {
    return {in.header("X-Buildkite-Event"), in.header("X-Buildkite-Token"),
            in.header("X-Buildkite-Signature")};
  }

  const config::buildkite_config& cfg_;
};

} // namespace

std::unique_ptr<source> make_buildkite_source(const config::buildkite_config& cfg) {
  return std::make_unique<buildkite_source>(cfg);
}

std::string buildkite_signature(std::string_view secret, long long unix_seconds,
                                std::string_view body) {
  auto ts = std::to_string(unix_seconds);
  std::string text = ts + "." + std::string{body};
  return "timestamp=" + ts + ",signature=" + support::hmac_sha256_hex(secret, text);
}

checked<buildkite_delivery> buildkite_parse(std::string_view event_name, std::string_view body,
                                            model::timestamp now) {
  BT_TRY(top, parse_object(body, "body"));
  buildkite_delivery out;
  out.event = std::string{event_name};
  if (out.event.empty()) {
    std::string_view event;
    if (top.obj["event"].get(event) == simdjson::SUCCESS)
      out.event = std::string{event};
    else
      return rejection{400, "missing_event", "X-Buildkite-Event header is required",
                       "X-Buildkite-Event"};
  }
  const auto& ev = out.event;
  if (ev == "ping") {
    out.kind = buildkite_delivery::ping;
    return out;
  }
  if (ev.starts_with("agent.")) {
    out.kind = buildkite_delivery::ignored;
    return out;
  }
  bool job_event = is_job_event(ev);
  auto phase = build_events.find(ev);
  if (phase == build_events.end() && !job_event)
    return rejection{422, "unsupported_event", "unsupported Buildkite event '" + ev + "'",
                     "X-Buildkite-Event"};
  BT_TRY(build, build_of(top));
  model::envelope env{std::move(build.key), "", now, std::move(build.info), model::statistic_event{}};
  if (job_event) {
    BT_TRY(job, job_of(top));
    if (!job) {
      out.kind = buildkite_delivery::ignored;
      return out;
    }
    env.body = std::move(*job);
  } else {
    model::build_event b;
    b.phase = phase->second;
    b.source_state = ev == "build.skipped" ? "skipped" : build.state;
    if (b.phase == model::build_event::finished)
      b.end = end_of(b.source_state);
    env.body = b;
  }
  out.envelopes.push_back(std::move(env));
  return out;
}

} // namespace bt::sources
