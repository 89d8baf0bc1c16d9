#pragma once

#include <chrono>

#include "model/time.hpp"

namespace bt::support {

/// The current wall-clock time, at the model's precision. The model never reads a
/// clock itself: the shells call this and pass the time in.
inline model::timestamp wall_clock() {
  return std::chrono::time_point_cast<std::chrono::milliseconds>(
    std::chrono::system_clock::now());
}

} // namespace bt::support
