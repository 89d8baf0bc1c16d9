#include "support/metrics.hpp"

#include <cmath>
#include <sstream>

namespace bt::support {

histogram::histogram(std::vector<double> bounds)
  : bounds_{std::move(bounds)},
    buckets_{new std::atomic<std::uint64_t>[bounds_.size() + 1]} {
  for (size_t i = 0; i <= bounds_.size(); ++i)
    buckets_[i] = 0;
}

void histogram::observe(double seconds) {
  size_t i = 0;
  while (i < bounds_.size() && seconds > bounds_[i])
    ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_micros_.fetch_add(static_cast<std::uint64_t>(std::llround(seconds * 1e6)),
                        std::memory_order_relaxed);
}

counter& registry::get_counter(const std::string& name, const std::string& help,
                               const std::string& labels) {
  std::lock_guard guard{mutex_};
  auto& f = families_[name];
  f.help = help;
  f.type = "counter";
  auto& slot = f.counters[labels];
  if (!slot)
    slot = std::make_unique<counter>();
  return *slot;
}

histogram& registry::get_histogram(const std::string& name, const std::string& help,
                                   const std::string& labels) {
  std::lock_guard guard{mutex_};
  auto& f = families_[name];
  f.help = help;
  f.type = "histogram";
  auto& slot = f.histograms[labels];
  if (!slot)
    slot = std::make_unique<histogram>(std::vector<double>{
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
      5, 10});
  return *slot;
}

void registry::set_gauge(const std::string& name, const std::string& help, const void* owner,
                         std::function<double()> read) {
  std::lock_guard guard{mutex_};
  auto& f = families_[name];
  f.help = help;
  f.type = "gauge";
  f.gauges.emplace_back(owner, std::move(read));
}

void registry::remove_gauges(const void* owner) {
  std::lock_guard guard{mutex_};
  for (auto& [_, f] : families_)
    std::erase_if(f.gauges, [&](auto& g) { return g.first == owner; });
}

std::string registry::render() const {
  std::lock_guard guard{mutex_};
  std::ostringstream out;
  auto braces = [](const std::string& labels) {
    return labels.empty() ? std::string{} : "{" + labels + "}";
  };
  for (auto& [name, f] : families_) {
    out << "# HELP " << name << ' ' << f.help << "\n# TYPE " << name << ' ' << f.type << '\n';
    for (auto& [labels, c] : f.counters)
      out << name << braces(labels) << ' ' << c->value.load() << '\n';
    for (auto& [owner, read] : f.gauges)
      out << name << ' ' << read() << '\n';
    for (auto& [labels, h] : f.histograms) {
      auto sep = labels.empty() ? "" : ",";
      std::uint64_t cumulative = 0;
      for (size_t i = 0; i < h->bounds_.size(); ++i) {
        cumulative += h->buckets_[i].load();
        out << name << "_bucket{" << labels << sep << "le=\"" << h->bounds_[i] << "\"} "
            << cumulative << '\n';
      }
      out << name << "_bucket{" << labels << sep << "le=\"+Inf\"} " << h->count() << '\n';
      out << name << "_sum" << braces(labels) << ' ' << h->sum_micros_.load() / 1e6 << '\n';
      out << name << "_count" << braces(labels) << ' ' << h->count() << '\n';
    }
  }
  return out.str();
}

registry& metrics() {
  static registry instance;
  return instance;
}

std::string label_value(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"')
      out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

} // namespace bt::support
