#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "model/build.hpp"

namespace bt::model {

/// What build lists show and filter on.
struct build_summary {
  build_key key;
  std::string branch;
  std::optional<std::int64_t> number;
  build_state state = build_state::pending;
  std::optional<timestamp> updated;
  bool operator==(const build_summary&) const = default;
};

build_summary summarize(const build& b);

/// Whether `s` still shows `b` in everything a listing filters on, whatever their
/// update times. Compared in place: a build actor asks after every change.
inline bool summarizes(const build_summary& s, const build& b) {
  return s.key == b.key && s.branch == b.info.branch && s.number == b.info.number
         && s.state == b.state;
}

/// `GET /api/v1/builds?pipeline=&branch=&state=&limit=`
struct build_query {
  std::string pipeline; ///< empty: any
  std::string branch;   ///< empty: any
  std::optional<build_state> state;
  std::size_t limit = 50;
};

/// Every tracked build's summary, for listing without waking build actors.
class build_index {
public:
  void upsert(const build_summary& s) { by_key_[s.key.str()] = s; }
  void erase(const build_key& key) { by_key_.erase(key.str()); }
  std::size_t size() const { return by_key_.size(); }
  /// Visits every summary, in no particular order.
  template <class Visit>
  void for_each(Visit&& visit) const {
    for (auto& [_, s] : by_key_)
      visit(s);
  }
  /// Matching builds, most recently updated first, at most `q.limit`.
  std::vector<build_summary> list(const build_query& q) const;

private:
  std::unordered_map<std::string, build_summary> by_key_;
};

} // namespace bt::model
