#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "model/build.hpp"
#include "model/collation.hpp"

namespace bt::model {

/// A target that waits for its message (SPEC §3.4).
struct waiting_target {
  std::string job; ///< the job's group
  timestamp since{};
  std::optional<timestamp> deadline; ///< none: waits for ever
  bool operator==(const waiting_target&) const = default;
};

/// A sink whose finished-notice waits for statistics (SPEC §5).
struct waiting_statistics {
  std::string sink;
  std::vector<std::string> missing; ///< required statistics not in yet
  std::optional<timestamp> until;   ///< when a timeout sends it anyway; none: not yet known
  bool operator==(const waiting_statistics&) const = default;
};

/// What build lists and the status page show and filter on, and what the `builds`
/// exchange publishes at every change.
struct build_summary {
  build_key key;
  std::string branch;
  std::optional<std::int64_t> number;
  build_state state = build_state::pending;
  std::optional<timestamp> updated;
  std::optional<streak_result> streak;   ///< the streak's verdict on this build
  std::size_t failed_jobs = 0;
  std::vector<waiting_target> targets;        ///< targets waiting now
  std::vector<waiting_statistics> statistics; ///< notices waiting for statistics now
  bool operator==(const build_summary&) const = default;
};

/// `b`'s summary; `waits` gives each waiting sink's required statistics and timeouts
/// (without them a waiting sink lists no missing statistics and no deadline).
build_summary summarize(const build& b, const collation_rules* waits = nullptr);

/// Whether `a` and `b` show the same, whatever their update times.
bool same_listing(const build_summary& a, const build_summary& b);

/// `GET /api/v1/builds?source=&pipeline=&branch=&state=&limit=`
struct build_query {
  std::string source;   ///< empty: any
  std::string pipeline; ///< empty: any
  std::string branch;   ///< empty: any
  std::optional<build_state> state;
  std::size_t limit = 50;
};

/// Every tracked build's summary, for listing without waking build actors.
class build_index {
public:
  /// Adds `s`, or replaces the summary its key had.
  void upsert(const build_summary& s) { by_key_[s.key.str()] = s; }
  void upsert(build_summary&& s) { by_key_[s.key.str()] = std::move(s); }
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
  /// Every (source, pipeline, branch) matching `q` (`q.state` and `q.limit` unused) with
  /// its newest `per_branch` builds (by number, else update time), in name order; and
  /// every matching build that is not finished or whose notices wait for statistics,
  /// most recently updated first.
  struct overview {
    struct branch_builds {
      std::string source, pipeline, branch;
      std::vector<const build_summary*> builds; ///< newest first
    };
    std::vector<branch_builds> branches;
    std::vector<const build_summary*> active;
  };
  overview overview_of(const build_query& q, std::size_t per_branch) const;

private:
  std::unordered_map<std::string, build_summary> by_key_;
};

} // namespace bt::model
