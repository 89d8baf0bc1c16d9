#include "notify/slack.hpp"

#include <algorithm>
#include <cctype>

#include <nlohmann/json.hpp>

namespace bt::notify {
namespace {

using nlohmann::json;

/// Slack mrkdwn treats &, < and > as markup.
std::string escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      default: out += c;
    }
  }
  return out;
}

/// `<url|text>`; a '|' in the text would end it early.
std::string link(std::string_view url, std::string_view text) {
  auto label = escape(text);
  std::replace(label.begin(), label.end(), '|', '/');
  if (url.empty())
    return label;
  return "<" + std::string{url} + "|" + label + ">";
}

std::string lower(std::string_view s) {
  std::string out{s};
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

/// `<@U123>` when the author is in `people`, else their name.
std::string author_of(const model::build& b, const std::vector<config::person_config>& people) {
  auto& a = b.info.author;
  for (auto& p : people) {
    bool by_email = !p.email.empty() && lower(p.email) == lower(a.email);
    bool by_login = !p.github.empty() && lower(p.github) == lower(a.login);
    if (by_email || by_login)
      return "<@" + p.slack + ">";
  }
  if (!a.name.empty())
    return escape(a.name);
  return escape(!a.login.empty() ? a.login : a.email.empty() ? "unknown" : a.email);
}

std::string number_of(const model::build& b) {
  return b.info.number ? std::to_string(*b.info.number) : b.key.id;
}

/// A job list capped at slack_job_limit, saying how many there are.
std::string job_list(const char* title, const std::vector<const model::job*>& jobs) {
  std::string out = std::string{"*"} + title + "*";
  for (size_t i = 0; i < jobs.size() && i < slack_job_limit; ++i) {
    auto& j = *jobs[i];
    out += "\n• " + link(j.attempts.empty() ? "" : j.latest().url, j.name.empty() ? j.group : j.name);
  }
  if (jobs.size() > slack_job_limit)
    out += "\n_showing " + std::to_string(slack_job_limit) + " of " + std::to_string(jobs.size())
           + "_";
  return out;
}

json section(std::string text) {
  return {{"type", "section"}, {"text", {{"type", "mrkdwn"}, {"text", std::move(text)}}}};
}

} // namespace

std::string ordinal(std::int64_t n) {
  auto tens = n % 100;
  const char* suffix = "th";
  if (tens < 11 || tens > 13) {
    switch (n % 10) {
      case 1: suffix = "st"; break;
      case 2: suffix = "nd"; break;
      case 3: suffix = "rd"; break;
      default: break;
    }
  }
  return std::to_string(n) + suffix;
}

std::string commit_url(std::string_view repo, std::string_view sha) {
  if (repo.empty() || sha.empty())
    return "";
  std::string host, path;
  if (auto scheme = repo.find("://"); scheme != std::string_view::npos) {
    auto rest = repo.substr(scheme + 3);
    if (auto at = rest.find('@'); at != std::string_view::npos && at < rest.find('/'))
      rest.remove_prefix(at + 1);
    auto slash = rest.find('/');
    if (slash == std::string_view::npos)
      return "";
    host = std::string{rest.substr(0, slash)};
    if (auto colon = host.find(':'); colon != std::string::npos)
      host.resize(colon); // an ssh port, not the web one
    path = std::string{rest.substr(slash + 1)};
  } else if (auto colon = repo.find(':'); colon != std::string_view::npos) { // scp-like
    auto user_host = repo.substr(0, colon);
    if (auto at = user_host.find('@'); at != std::string_view::npos)
      user_host.remove_prefix(at + 1);
    host = std::string{user_host};
    path = std::string{repo.substr(colon + 1)};
  } else {
    return "";
  }
  if (path.ends_with(".git"))
    path.resize(path.size() - 4);
  while (!path.empty() && path.back() == '/')
    path.pop_back();
  if (host.empty() || path.empty())
    return "";
  return "https://" + host + "/" + path + "/commit/" + std::string{sha};
}

std::string slack_headline(const model::notice& n) {
  auto& b = n.subject;
  auto head = "Build " + number_of(b);
  using model::notice_kind;
  switch (n.kind) {
    case notice_kind::fixed: return ":large_green_circle: " + head + " fixed";
    case notice_kind::passed: return ":large_green_circle: " + head + " passed";
    case notice_kind::recovered: return ":large_green_circle: " + head + " passed after a retry";
    default: break;
  }
  std::int64_t failures = n.kind == notice_kind::still_failing && b.streak ? b.streak->failures : 1;
  auto text = ":red_circle: " + head + " failed";
  if (failures == 2)
    text += " (2nd failure)";
  else if (failures == 3)
    text += " (:exclamation: 3rd failure)";
  else if (failures > 3)
    text += " (:bangbang: " + ordinal(failures) + " failure)";
  return text;
}

json slack_message(const model::notice& n, const std::vector<config::person_config>& people) {
  auto& b = n.subject;
  auto headline = slack_headline(n);
  auto blocks = json::array();
  blocks.push_back(section("*" + escape(headline) + "*"));
  auto first_line = b.info.message.substr(0, b.info.message.find('\n'));
  auto sha = b.info.commit.substr(0, 7);
  std::string commit = first_line.empty() ? sha : first_line + " (" + sha + ")";
  auto fields = json::array({
    {{"type", "mrkdwn"},
     {"text", "*Pipeline*\n" + escape(b.info.pipeline_name.empty() ? b.key.pipeline
                                                                    : b.info.pipeline_name)}},
    {{"type", "mrkdwn"}, {"text", "*Author*\n" + author_of(b, people)}},
    {{"type", "mrkdwn"}, {"text", "*Branch*\n" + escape(b.info.branch)}},
    {{"type", "mrkdwn"},
     {"text", "*Commit*\n" + link(commit_url(b.info.repository, b.info.commit), commit)}},
  });
  blocks.push_back({{"type", "section"}, {"fields", std::move(fields)}});
  if (auto failed = b.failed_jobs(); !failed.empty())
    blocks.push_back(section(job_list("Failed jobs", failed)));
  if (auto fixed = b.fixed_jobs(); !fixed.empty())
    blocks.push_back(section(job_list("Fixed jobs", fixed)));
  if (!b.info.url.empty())
    blocks.push_back({{"type", "actions"},
                      {"elements", json::array({{{"type", "button"},
                                                 {"text", {{"type", "plain_text"},
                                                           {"text", "Go to build"}}},
                                                 {"url", b.info.url}}})}});
  return {{"text", headline}, {"blocks", std::move(blocks)}};
}

slack_sink::slack_sink(const config::sink_config& cfg, std::vector<config::person_config> people)
  : sink{cfg}, people_{std::move(people)} {
}

net::outbound_request slack_sink::request(const outbox_entry& e,
                                          const std::optional<std::string>& message_ref) const {
  auto body = slack_message(e.notice, people_);
  std::string method = "chat.postMessage";
  body["channel"] = config().channel;
  if (message_ref) {
    auto ref = json::parse(*message_ref, nullptr, false);
    if (ref.is_object() && ref.contains("channel") && ref.contains("ts")) {
      method = "chat.update";
      body["channel"] = ref["channel"];
      body["ts"] = ref["ts"];
    }
  }
  auto base = config().api_url;
  while (!base.empty() && base.back() == '/')
    base.pop_back();
  return {"POST",
          base + "/" + method,
          {{"Content-Type", "application/json; charset=utf-8"},
           {"Authorization", "Bearer " + config().token}},
          body.dump(-1, ' ', false, json::error_handler_t::replace)};
}

outcome slack_sink::judge(const net::inbound_response& r,
                          const std::optional<std::string>& message_ref) const {
  auto out = judge_status(r);
  if (out.kind != outcome::delivered)
    return out;
  // Slack answers 200 for most failures: the verdict is in the body.
  auto doc = json::parse(r.body, nullptr, false);
  if (!doc.is_object() || !doc.contains("ok") || !doc["ok"].is_boolean()) {
    out.kind = outcome::retry;
    out.detail = "Slack answered without \"ok\"";
    return out;
  }
  if (doc["ok"].get<bool>()) {
    if (doc.contains("channel") && doc["channel"].is_string() && doc.contains("ts")
        && doc["ts"].is_string())
      out.message_ref = json{{"channel", doc["channel"]}, {"ts", doc["ts"]}}.dump();
    else
      out.message_ref = message_ref;
    return out;
  }
  auto error = doc.contains("error") && doc["error"].is_string() ? doc["error"].get<std::string>()
                                                                 : std::string{"unknown"};
  out.detail = "Slack error: " + error;
  if (error == "message_not_found" || error == "cant_update_message"
      || error == "edit_window_closed") {
    // The message was deleted or can no longer be edited: post a new one.
    out.kind = outcome::retry;
    out.forget_message = true;
    out.retry_after = std::chrono::milliseconds{0};
    return out;
  }
  static const std::vector<std::string> permanent{
    "invalid_auth",  "not_authed",      "account_inactive", "token_revoked", "token_expired",
    "no_permission", "missing_scope",   "channel_not_found", "not_in_channel", "is_archived",
    "invalid_blocks", "msg_too_long",   "no_text",           "invalid_arguments",
    "restricted_action"};
  out.kind = std::find(permanent.begin(), permanent.end(), error) != permanent.end()
               ? outcome::give_up
               : outcome::retry;
  return out;
}

} // namespace bt::notify
