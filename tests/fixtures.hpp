#pragma once

#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

namespace bt::test {

/// Reads a file of tests/fixtures (copies of the product fixtures) (e.g. "buildkite/job.finished.json").
inline std::string fixture(const std::string& name) {
  std::ifstream in{std::string{BT_FIXTURES} + "/" + name};
  if (!in)
    throw std::runtime_error{"missing fixture " + name};
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

} // namespace bt::test
