#pragma once
// Checks the model tests run after every event they apply.
#include <gtest/gtest.h>

#include "model/build.hpp"

namespace bt::testing {

/// The counts a build keeps beside its jobs (`targets`, `failing`) say what counting
/// its jobs again says: kept true by every event, not only read back.
inline void expect_counts_match_jobs(const model::build& b) {
  auto recounted = b;
  model::count_jobs(recounted);
  EXPECT_EQ(b.targets, recounted.targets) << "targets";
  EXPECT_EQ(b.failing, recounted.failing) << "failing";
}

} // namespace bt::testing
