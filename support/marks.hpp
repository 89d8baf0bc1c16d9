#pragma once

#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace bt::support {

/// Names, each with a mark (a number: the cycle of its oldest unwritten change), kept
/// in mark order too, so that the oldest are found without walking the rest. The
/// registry's dirty builds: with 100,000 builds dirty, walking all of them at every
/// snapshot was the registry's largest cost (bench/RESULTS.md, issue 16).
class marks {
public:
  /// Marks `name` with `mark`, or keeps its older mark; returns the mark it has.
  std::uint64_t lower(const std::string& name, std::uint64_t mark) {
    auto [it, fresh] = by_name_.try_emplace(name, mark);
    if (!fresh) {
      if (it->second <= mark)
        return it->second;
      by_mark_.erase({it->second, name});
      it->second = mark;
    }
    by_mark_.emplace(mark, name);
    return mark;
  }

  /// Marks `name` with `mark` unless it has a mark already.
  void add(const std::string& name, std::uint64_t mark) {
    if (by_name_.try_emplace(name, mark).second)
      by_mark_.emplace(mark, name);
  }

  void erase(const std::string& name) {
    if (auto it = by_name_.find(name); it != by_name_.end()) {
      by_mark_.erase({it->second, name});
      by_name_.erase(it);
    }
  }

  /// Takes out up to `limit` names marked at most `through`, oldest first (ties by
  /// name), with their marks.
  std::vector<std::pair<std::uint64_t, std::string>> take(std::uint64_t through, std::size_t limit) {
    std::vector<std::pair<std::uint64_t, std::string>> out;
    while (!by_mark_.empty() && out.size() < limit && by_mark_.begin()->first <= through) {
      auto node = by_mark_.extract(by_mark_.begin());
      by_name_.erase(node.value().second);
      out.push_back(std::move(node.value()));
    }
    return out;
  }

  /// The oldest mark, if any.
  const std::uint64_t* oldest() const { return by_mark_.empty() ? nullptr : &by_mark_.begin()->first; }
  std::size_t size() const { return by_name_.size(); }

private:
  std::unordered_map<std::string, std::uint64_t> by_name_;
  std::set<std::pair<std::uint64_t, std::string>> by_mark_;
};

} // namespace bt::support
