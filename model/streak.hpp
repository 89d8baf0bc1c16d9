#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "model/event.hpp"

namespace bt::model {

/// A streak is kept per source, pipeline and branch.
struct streak_key {
  std::string source;
  std::string pipeline;
  std::string branch;
  auto operator<=>(const streak_key&) const = default;
};

/// Shell-style glob: `*` any run of characters, `?` one character.
bool glob_match(std::string_view pattern, std::string_view text);

/// True when `text` matches one of `patterns`.
bool glob_any(const std::vector<std::string>& patterns, std::string_view text);

/// The finished builds of every streak, ordered by build number, and their verdicts.
class streak_book {
public:
  /// One finished build in a streak.
  struct entry {
    bool failed = false;
    streak_result result;
    bool operator==(const entry&) const = default;
  };
  using history = std::map<std::int64_t, entry>;

  /// Keeps at most `history_limit` builds per streak (the newest).
  explicit streak_book(size_t history_limit = 256) : history_limit_{history_limit} {}

  /// Records build `number` (new, or with a changed outcome) and returns its verdict,
  /// judged against the closest older build. Newer builds keep their verdicts: a
  /// late-finishing older build never flips them. Recording a build again with the
  /// outcome it has keeps its verdict, so replays are idempotent.
  streak_result record(const streak_key& key, std::int64_t number, bool failed);

  /// Drops build `number` from its streak: it was judged, then its outcome became one
  /// streaks do not judge (an abort after a late job reopened it). Newer builds keep
  /// their verdicts, as for record(). Whether it was there.
  bool forget(const streak_key& key, std::int64_t number);

  const std::map<streak_key, history>& streaks() const { return streaks_; }

  /// Puts back a recorded build as it was (recovery from a snapshot).
  void restore(const streak_key& key, std::int64_t number, const entry& e) {
    streaks_[key][number] = e;
  }

  size_t history_limit() const { return history_limit_; }

private:
  size_t history_limit_;
  std::map<streak_key, history> streaks_;
};

} // namespace bt::model
