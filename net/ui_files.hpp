#pragma once

#include <string_view>
#include <utility>
#include <vector>

namespace bt::net {

/// The status page's files (`ui/` in the source tree, embedded at build time by
/// cmake/embed.cmake): name relative to `ui/`, and content.
const std::vector<std::pair<std::string_view, std::string_view>>& ui_files();

} // namespace bt::net
