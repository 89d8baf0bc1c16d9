#pragma once

// After a storm: every build read back through the target's API and compared with the
// outcome the workload implies, the streaks its final states make, and, with a webhook
// receiver of the storm's own, every expected notification heard exactly once.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "storm/load.hpp"
#include "storm/workload.hpp"

namespace bt::storm {

/// One way the target differs from what the storm expects.
struct difference {
  std::string subject; ///< a build key, a streak (source/pipeline) or a notification's build
  std::string field;   ///< state, statistics.duration, streak.verdict, notification, ...
  std::string want;
  std::string got;
};

/// What verification found.
struct verification {
  std::size_t builds = 0;        ///< builds checked
  std::size_t builds_ok = 0;     ///< builds as expected
  std::size_t streaks = 0;       ///< streaks checked
  std::size_t streaks_ok = 0;
  std::size_t notifications = 0;    ///< builds whose final outcome should be announced
  std::size_t notifications_ok = 0; ///< ... that were, exactly once
  std::size_t jobs = 0;    ///< Taskcluster job messages the exchange should publish
  std::size_t jobs_ok = 0; ///< ... heard once, in order
  std::vector<difference> differences;
  /// Build key -> revision of each passed or failed build (what a sink announces last).
  std::map<std::string, std::uint64_t> revisions;
  /// Percent of everything checked that was as expected (100 when nothing was checked).
  double verified_percent() const;
};

/// Reads every build of `w` and the streaks from `target` (with `admin_token` when not
/// empty) and compares. Throws std::runtime_error when the API cannot be reached or
/// refuses the token.
verification verify(const workload& w, const endpoint& target, const std::string& admin_token);

/// A webhook receiver the storm starts (--sink-listen): it records, per build, when its
/// first notification arrived and the newest revision heard, and deliveries heard twice
/// (by X-Buildtrack-Delivery). Runs on a thread of its own.
class notification_receiver {
public:
  /// Listens on `at` (port 0: any free port). Throws when it cannot bind.
  explicit notification_receiver(const endpoint& at);
  ~notification_receiver();
  notification_receiver(const notification_receiver&) = delete;
  notification_receiver& operator=(const notification_receiver&) = delete;

  unsigned short port() const;

  struct heard {
    steady::time_point first;
    std::uint64_t revision = 0;
    std::size_t duplicates = 0; ///< deliveries of this build heard more than once
  };
  /// By build key.
  std::map<std::string, heard> builds() const;
  /// Deliveries heard (distinct delivery ids).
  std::size_t deliveries() const;

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// Waits up to `drain` until every build of `v.revisions` was announced with its final
/// revision, then adds what is missing or heard twice to `v`. Fills `latencies` with
/// build.finished accepted -> first notification, seconds, sorted.
void check_notifications(verification& v, const notification_receiver& r,
                         const std::map<std::string, steady::time_point>& finished_at,
                         std::chrono::milliseconds drain, std::vector<double>& latencies);

} // namespace bt::storm
