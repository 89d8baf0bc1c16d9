#include "model/index.hpp"

#include <algorithm>

namespace bt::model {

build_summary summarize(const build& b) {
  return {b.key, b.info.branch, b.info.number, b.state, b.updated};
}

std::vector<build_summary> build_index::list(const build_query& q) const {
  std::vector<build_summary> out;
  for (auto& [_, s] : by_key_)
    if ((q.pipeline.empty() || s.key.pipeline == q.pipeline)
        && (q.branch.empty() || s.branch == q.branch) && (!q.state || s.state == *q.state))
      out.push_back(s);
  auto newer = [](const build_summary& a, const build_summary& b) {
    if (a.updated != b.updated)
      return a.updated > b.updated;
    return a.key < b.key;
  };
  auto n = std::min(q.limit, out.size());
  std::partial_sort(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(n), out.end(), newer);
  out.resize(n);
  return out;
}

} // namespace bt::model
