#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace bt::support {

/// A monotonically increasing count.
struct counter {
  std::atomic<std::uint64_t> value{0};
  void inc(std::uint64_t n = 1) { value.fetch_add(n, std::memory_order_relaxed); }
};

/// A distribution over fixed upper bounds (seconds), Prometheus style.
class histogram {
public:
  explicit histogram(std::vector<double> bounds);
  void observe(double seconds);
  std::uint64_t count() const { return count_.load(std::memory_order_relaxed); }

private:
  friend class registry;
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> buckets_;
  std::atomic<std::uint64_t> count_{0};
  std::atomic<std::uint64_t> sum_micros_{0};
};

/// Process-wide metrics, rendered in the Prometheus text format. Lookups take a
/// lock; callers on hot paths keep the returned reference (it stays valid).
class registry {
public:
  /// `labels` is the rendered label set, e.g. `source="buildkite",type="ping"`.
  counter& get_counter(const std::string& name, const std::string& help,
                       const std::string& labels = "");
  histogram& get_histogram(const std::string& name, const std::string& help,
                           const std::string& labels = "");
  /// A gauge computed at scrape time; `owner` lets it be removed again.
  void set_gauge(const std::string& name, const std::string& help, const void* owner,
                 std::function<double()> read);
  void remove_gauges(const void* owner);
  std::string render() const;

private:
  struct family {
    std::string help;
    std::string type;
    std::map<std::string, std::unique_ptr<counter>> counters;
    std::map<std::string, std::unique_ptr<histogram>> histograms;
    std::vector<std::pair<const void*, std::function<double()>>> gauges;
  };
  mutable std::mutex mutex_;
  std::map<std::string, family> families_;
};

/// The process's registry.
registry& metrics();

/// Escapes a label value for the Prometheus text format.
std::string label_value(const std::string& v);

} // namespace bt::support
