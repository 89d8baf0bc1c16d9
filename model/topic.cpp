#include "model/topic.hpp"

#include <algorithm>
#include <vector>

namespace bt::model {
namespace {

/// The words of a key or pattern; the empty string has none.
std::vector<std::string_view> words_of(std::string_view s) {
  std::vector<std::string_view> out;
  if (s.empty())
    return out;
  for (;;) {
    auto dot = s.find('.');
    out.push_back(s.substr(0, dot));
    if (dot == std::string_view::npos)
      return out;
    s.remove_prefix(dot + 1);
  }
}

} // namespace

bool topic_matches(std::string_view pattern, std::string_view routing_key) {
  auto p = words_of(pattern);
  auto k = words_of(routing_key);
  // can[j]: the pattern's first i words match the key's first j words, row by row.
  std::vector<char> can(k.size() + 1, 0), next(k.size() + 1, 0);
  can[0] = 1;
  for (auto& word : p) {
    if (word == "#") {
      // Zero or more words: reachable from any earlier reachable position.
      next[0] = can[0];
      for (size_t j = 1; j <= k.size(); ++j)
        next[j] = can[j] || next[j - 1];
    } else {
      next[0] = 0;
      for (size_t j = 1; j <= k.size(); ++j)
        next[j] = can[j - 1] && (word == "*" || word == k[j - 1]);
    }
    can.swap(next);
  }
  return can[k.size()] != 0;
}

std::optional<std::string> binding_problem(std::string_view pattern) {
  if (pattern.size() > 255)
    return "a binding is at most 255 bytes";
  for (unsigned char c : pattern)
    if (c <= 0x20 || c >= 0x7f)
      return "a binding is printable ASCII without spaces";
  for (auto word : words_of(pattern))
    if (word.size() > 1 && word.find_first_of("*#") != std::string_view::npos)
      return "'" + std::string{word} + "': '*' and '#' are whole words ('*' one word, '#' any number)";
  return std::nullopt;
}

std::string build_routing_key(const build_key& key, std::string_view last) {
  auto word = [](std::string text) {
    std::replace(text.begin(), text.end(), '.', '_');
    return text;
  };
  return word(key.source) + "." + word(key.pipeline) + "." + std::string{last};
}

} // namespace bt::model
