#include "model/event.hpp"

namespace bt::model {

std::string build_key::str() const {
  std::string out;
  out.reserve(source.size() + pipeline.size() + id.size() + 2);
  out += source;
  out += '/';
  out += pipeline;
  out += '/';
  out += id;
  return out;
}

std::optional<build_key> parse_build_key(std::string_view text) {
  auto first = text.find('/');
  if (first == std::string_view::npos)
    return std::nullopt;
  auto second = text.find('/', first + 1);
  if (second == std::string_view::npos || text.find('/', second + 1) != std::string_view::npos)
    return std::nullopt;
  build_key key{std::string{text.substr(0, first)},
                std::string{text.substr(first + 1, second - first - 1)},
                std::string{text.substr(second + 1)}};
  if (key.source.empty() || key.pipeline.empty() || key.id.empty())
    return std::nullopt;
  return key;
}

bool is_terminal(job_state s) {
  return s != job_state::scheduled && s != job_state::running && s != job_state::blocked;
}

std::string_view to_string(job_state s) {
  switch (s) {
    case job_state::scheduled: return "scheduled";
    case job_state::running: return "running";
    case job_state::passed: return "passed";
    case job_state::failed: return "failed";
    case job_state::timed_out: return "timed_out";
    case job_state::canceled: return "canceled";
    case job_state::expired: return "expired";
    case job_state::broken: return "broken";
    case job_state::skipped: return "skipped";
    case job_state::blocked: return "blocked";
  }
  return "unknown";
}

std::string_view to_string(verdict v) {
  switch (v) {
    case verdict::passed: return "passed";
    case verdict::broken: return "broken";
    case verdict::still_failing: return "still_failing";
    case verdict::fixed: return "fixed";
  }
  return "unknown";
}

std::string_view to_string(message_kind k) {
  switch (k) {
    case message_kind::pass: return "pass";
    case message_kind::fail: return "fail";
    case message_kind::work: return "work";
  }
  return "unknown";
}

std::optional<message_kind> parse_message_kind(std::string_view s) {
  return parse_enum(s, message_kind::work);
}

std::string_view to_string(command_kind k) {
  switch (k) {
    case command_kind::pause: return "pause";
    case command_kind::resume: return "resume";
    case command_kind::abort: return "abort";
    case command_kind::restart: return "restart";
  }
  return "unknown";
}

std::optional<command_kind> parse_command_kind(std::string_view s) {
  return parse_enum(s, command_kind::restart);
}

} // namespace bt::model
