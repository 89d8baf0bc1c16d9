#pragma once

#include <fstream>
#include <optional>
#include <sstream>
#include <string>

namespace bt::support {

/// The whole text of the file at `path`; nothing when it cannot be opened.
inline std::optional<std::string> read_file(const std::string& path) {
  std::ifstream in{path};
  if (!in)
    return std::nullopt;
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

} // namespace bt::support
