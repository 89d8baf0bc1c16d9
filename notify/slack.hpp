#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "notify/sink.hpp"

namespace bt::notify {

/// English ordinal: 1st, 2nd, 3rd, 4th, 11th, 12th, 13th, 21st, 22nd, 23rd, 101st.
std::string ordinal(std::int64_t n);

/// The web page of a commit, from the repository as CI systems name it
/// (`git@github.com:org/repo.git`, `https://github.com/org/repo.git`,
/// `ssh://git@host/org/repo`). Empty when the repository is not recognised.
std::string commit_url(std::string_view repository, std::string_view sha);

/// Jobs listed per section at most; the rest are counted.
constexpr std::size_t slack_job_limit = 5;

/// The headline: `:red_circle: Build 42 failed (2nd failure)`,
/// `(:exclamation: 3rd failure)`, `(:bangbang: 4th failure)`, or
/// `:large_green_circle: Build 42 fixed` / `passed`.
std::string slack_headline(const model::notice& n);

/// The `chat.postMessage` / `chat.update` arguments without channel and ts:
/// `text` (the headline, for notifications) and `blocks` (SPEC §6 layout).
nlohmann::json slack_message(const model::notice& n,
                             const std::vector<config::person_config>& people);

/// Posts one message per build with the Web API, then edits it in place
/// (`chat.update`) for every later notice of that build. The message reference
/// kept is `{"channel": …, "ts": …}` as Slack answered the post.
class slack_sink : public sink {
public:
  slack_sink(const config::sink_config& cfg, std::vector<config::person_config> people);
  bool edits_in_place() const override { return true; }
  net::outbound_request request(const outbox_entry& e,
                                const std::optional<std::string>& message_ref) const override;
  outcome judge(const net::inbound_response& r,
                const std::optional<std::string>& message_ref) const override;

private:
  std::vector<config::person_config> people_;
};

} // namespace bt::notify
