#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include <nlohmann/json_fwd.hpp>

#include "model/time.hpp"
#include "notify/sink.hpp"

namespace bt::notify {

/// Where one notice is on its way to one sink, as the status page shows it.
enum class delivery_state { queued, sending, retrying, delivered, dead_lettered };
std::string_view to_string(delivery_state s);

/// The latest word on one outbox entry.
struct delivery_record {
  std::string sink;
  std::optional<std::string> job; ///< the attempt of a job_finished notice
  std::string kind;               ///< the notice's kind (`broken`, `job_finished`, ...)
  std::uint64_t revision = 0;
  delivery_state state = delivery_state::queued;
  std::uint32_t attempts = 0; ///< failed attempts so far
  std::string detail;         ///< why the last attempt failed
  model::timestamp at{};      ///< when this state began
  std::optional<model::timestamp> next_attempt;
};

/// What the dispatcher did with each build's notices since the process started, for
/// the newest `max_builds` builds it dealt with. Kept in memory only: the outbox in
/// the store is what delivers; entries still in it are noted again when reloaded.
class delivery_log {
public:
  explicit delivery_log(std::size_t max_builds = 20'000) : max_builds_{max_builds} {}
  /// Entry `e` is now in state `s`.
  void note(const outbox_entry& e, delivery_state s, model::timestamp at, std::string detail = {},
            std::optional<model::timestamp> next_attempt = std::nullopt);
  /// A build's records as a JSON array, by sink then job.
  nlohmann::json of(const model::build_key& key) const;
  std::size_t builds() const { return by_build_.size(); }

private:
  std::size_t max_builds_;
  std::unordered_map<std::string, std::map<std::string, delivery_record>> by_build_;
  std::deque<std::string> order_; ///< builds by first note, oldest first: who goes first
};

} // namespace bt::notify
