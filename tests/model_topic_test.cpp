// The topic exchange's matcher (SPEC §8, AMQP's semantics as RabbitMQ implements
// them): a table of cases, then every pattern and key over a small alphabet against
// a reference written straight from the definition.
#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "model/topic.hpp"

using bt::model::binding_problem;
using bt::model::topic_matches;

namespace {

struct topic_case {
  const char* pattern;
  const char* key;
  bool matches;
};

const topic_case cases[] = {
  // `#`: zero or more words, so everything, the empty key included.
  {"#", "a", true},
  {"#", "a.b.c", true},
  {"#", "", true},
  {"#", ".", true},
  {"#.#", "a", true},
  {"#.#", "", true},
  // `a.#`: a, then anything (nothing included).
  {"a.#", "a", true},
  {"a.#", "a.b", true},
  {"a.#", "a.b.c", true},
  {"a.#", "b.a", false},
  {"a.#", "ab", false},
  {"a.#", "", false},
  // `#.c`: anything, then c.
  {"#.c", "c", true},
  {"#.c", "a.b.c", true},
  {"#.c", "c.d", false},
  {"#.c", "a.c.c", true},
  // `*.b.*`: exactly three words, b in the middle.
  {"*.b.*", "a.b.c", true},
  {"*.b.*", "a.b", false},
  {"*.b.*", "a.b.c.d", false},
  {"*.b.*", "x.b.", true},
  {"*.b.*", ".b.", true},
  // `a.*.#`: a, one word, then anything.
  {"a.*.#", "a", false},
  {"a.*.#", "a.b", true},
  {"a.*.#", "a.b.c.d", true},
  {"a.*.#", "b.a.c", false},
  // `*`: exactly one word, which may be empty; the empty key has none.
  {"*", "a", true},
  {"*", "", false},
  {"*", "a.b", false},
  {"*", ".", false},
  {"*.*", ".", true},
  // Empty words are words.
  {"a..b", "a..b", true},
  {"a..b", "a.b", false},
  {"a.*.b", "a..b", true},
  {"a.#.b", "a..b", true},
  {"a.#.b", "a.b", true},
  {"a.#.b", "a.x.y.b", true},
  {"", "", true},
  {"", "a", false},
  {".", ".", true},
  // `_` is an ordinary word: Treeherder's reserved slot.
  {"tc-treeherder.mozilla-central._", "tc-treeherder.mozilla-central._", true},
  {"*.mozilla-central.#", "tc-treeherder.mozilla-central._", true},
  {"*.mozilla-central", "tc-treeherder.mozilla-central._", false}, // the README's mistake
  {"tc-treeherder.#", "tc-treeherder.try._", true},
  {"*.*._", "tc-treeherder.try._", true},
  {"_", "_", true},
  {"_", "a", false},
  // Words match whole, case counts.
  {"a", "A", false},
  {"ab.c", "a.bc", false},
  {"#.b.#", "b", true},
  {"#.b.#", "a.c", false},
  {"#.*", "", false},
  {"#.*", "a.b", true},
  {"*.#.*", "a", false},
  {"*.#.*", "a.b", true},
  {"#.#.a", "a", true},
};

/// The definition, recursively: what the table and the matcher must agree with.
bool reference(const std::vector<std::string>& p, size_t i, const std::vector<std::string>& k,
               size_t j) {
  if (i == p.size())
    return j == k.size();
  if (p[i] == "#")
    return reference(p, i + 1, k, j) || (j < k.size() && reference(p, i, k, j + 1));
  return j < k.size() && (p[i] == "*" || p[i] == k[j]) && reference(p, i + 1, k, j + 1);
}

std::string join(const std::vector<std::string>& words) {
  std::string out;
  for (size_t i = 0; i < words.size(); ++i)
    out += (i ? "." : "") + words[i];
  return out;
}

} // namespace

TEST(topic, the_table_of_cases) {
  ASSERT_GE(std::size(cases), 40u);
  for (auto& c : cases)
    EXPECT_EQ(topic_matches(c.pattern, c.key), c.matches)
      << "pattern '" << c.pattern << "' key '" << c.key << "'";
}

// Every list of up to four words over {a, b, ""} as a key, and over {a, b, *, #, ""}
// as a pattern. A list of words is written joined by dots, so a single empty word
// and no word at all are the same text (the empty key has no words); they are
// compared as text.
TEST(topic, every_small_pattern_and_key_agrees_with_the_definition) {
  auto lists = [](const std::vector<std::string>& alphabet, size_t longest) {
    std::vector<std::vector<std::string>> out{{}};
    std::function<void(std::vector<std::string>&)> grow = [&](std::vector<std::string>& w) {
      if (w.size() == longest)
        return;
      for (auto& word : alphabet) {
        w.push_back(word);
        out.push_back(w);
        grow(w);
        w.pop_back();
      }
    };
    std::vector<std::string> w;
    grow(w);
    return out;
  };
  auto split = [](const std::string& s) {
    std::vector<std::string> words;
    if (s.empty())
      return words;
    size_t from = 0;
    for (auto dot = s.find('.'); dot != std::string::npos; dot = s.find('.', from)) {
      words.push_back(s.substr(from, dot - from));
      from = dot + 1;
    }
    words.push_back(s.substr(from));
    return words;
  };
  size_t checked = 0;
  for (auto& p : lists({"a", "b", "*", "#", ""}, 4))
    for (auto& k : lists({"a", "b", ""}, 4)) {
      auto pattern = join(p), key = join(k);
      ASSERT_EQ(topic_matches(pattern, key), reference(split(pattern), 0, split(key), 0))
        << "pattern '" << pattern << "' key '" << key << "'";
      ++checked;
    }
  EXPECT_GT(checked, 80'000u);
}

TEST(topic, bindings_with_wildcards_inside_words_or_odd_bytes_are_refused) {
  for (auto good : {"#", "a.#", "*.b.*", "tc-treeherder.try._", "a..b", ""})
    EXPECT_FALSE(binding_problem(good)) << good;
  for (auto bad : {"a*", "a.#b", "**", "a b", "a\tb", "caf\xc3\xa9"})
    EXPECT_TRUE(binding_problem(bad)) << bad;
  EXPECT_TRUE(binding_problem(std::string(256, 'a')));
  EXPECT_FALSE(binding_problem(std::string(255, 'a')));
}
