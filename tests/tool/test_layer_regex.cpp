// The matcher of GPTQModel "dynamic" rules: Python re.match semantics on the
// supported subset, refusal by name of everything else, bounded time and
// memory on hostile patterns, and exact agreement with the globs our own
// writer turns into rules (glob_to_regex).
#include <gtest/gtest.h>

#include <chrono>
#include <random>
#include <string>
#include <vector>

#include "common/tool_error.h"
#include "formats/layer_regex.h"
#include "pipeline/quant_spec.h"

using namespace gptqtool;

namespace {

std::string error_of(const std::string &pattern) {
  try {
    LayerRegex re(pattern);
  } catch (const ToolError &e) {
    return e.what();
  }
  return "no error";
}

struct Case {
  const char *pattern;
  const char *name;
  bool matches;  // what Python's re.match(pattern, name) gives
};

TEST(LayerRegex, MatchesAsPythonReMatch) {
  const Case cases[] = {
      {"", "abc", true},
      {"abc", "abcdef", true},
      {"bcd", "abcdef", false},
      {"abc$", "abcdef", false},
      {"abc$", "abc", true},
      {"^abc", "abc", true},
      {"$", "abc", false},
      {"a.c", "abc", true},
      {"a.c", "a\nc", false},
      {"a*", "", true},
      {"a+", "", false},
      {"a+b", "aaab", true},
      {"ab?c", "ac", true},
      {"ab?c", "abbc", false},
      {"a{2}", "a", false},
      {"a{2}", "aab", true},
      {"a{2,3}$", "aaaa", false},
      {"a{2,}$", "aaaaaa", true},
      {"a{,2}$", "aaa", false},
      {"a{,2}$", "", true},
      {"a{x}", "a{x}", true},
      {"a{", "a{", true},
      {"a{1,x}", "a{1,x}", true},
      {"model\\.layers\\.(1|2)\\.", "model.layers.2.mlp", true},
      {"model\\.layers\\.(1|2)\\.", "model.layers.12.mlp", false},
      {".*down_proj", "model.layers.0.mlp.down_proj", true},
      {"mlp", "model.layers.0.mlp.up_proj", false},
      {".*\\.1[0-5]\\..*gate", "model.layers.13.mlp.gate_proj", true},
      {".*\\.1[0-5]\\..*gate", "model.layers.16.mlp.gate_proj", false},
      {"[0-9]+\\.", "12.x", true},
      {"[^0-9]", "1", false},
      {"[^0-9]", "x", true},
      {"\\d\\d", "42", true},
      {"\\w+$", "up_proj", true},
      {"\\w+$", "up.proj", false},
      {"\\s", " ", true},
      {"\\S", " ", false},
      {"\\D", "a", true},
      {"\\W", "_", false},
      {"[]a]", "]", true},
      {"[a-]", "-", true},
      {"[\\d.]+$", "1.5", true},
      {"[\\]]", "]", true},
      {"[a\\-z]", "-", true},
      {"[a\\-z]", "b", false},
      {"(?:ab)+$", "ababab", true},
      {"(?P<layer>ab)c", "abc", true},
      {"a|b|", "c", true},
      {"x|^y", "y", true},
      {"a*?b", "aab", true},
      {"a+?$", "aa", true},
      {"a??b", "b", true},
      {"a{1,2}?b", "ab", true},
      {"\\Aab\\Z", "ab", true},
      {"\\Aab\\Z", "abc", false},
      {"(a|ab)(c|bcd)(d*)$", "abcd", true},
      {"()*a", "a", true},
      {"(a*)*b", "aaab", true},
      {"(a*)*$", "aaa", true},
      {"(a*)+$", "", true},
      {"\\.", ".", true},
      {"\\.", "x", false},
      {"\\-", "-", true},
      {"\\t", "\t", true},
      {"]", "]", true},
      {"}", "}", true},
  };
  for (const Case &c : cases) {
    EXPECT_EQ(LayerRegex(c.pattern).match(c.name), c.matches)
        << "re.match('" << c.pattern << "', '" << c.name << "')";
  }
}

TEST(LayerRegex, RefusesUnsupportedSyntaxByName) {
  const std::pair<const char *, const char *> cases[] = {
      {"(a)\\1", "back-references and octal escapes"},
      {"\\99999999999999999999", "back-references"},
      {"\\0", "back-references and octal escapes"},
      {"(?P<n>a)(?P=n)", "named back-references (?P=name) are not supported"},
      {"(?=a)", "look-ahead"},
      {"(?!a)", "look-ahead"},
      {"(?<=a)b", "look-behind"},
      {"(?i)abc", "inline flags such as (?i) are not supported"},
      {"(?#note)a", "comments"},
      {"(?(1)a|b)", "conditional groups"},
      {"a*+", "possessive quantifiers"},
      {"a{2}+", "possessive quantifiers"},
      {"a**", "multiple repeat"},
      {"a???", "multiple repeat"},
      {"*a", "nothing to repeat"},
      {"a|*", "nothing to repeat"},
      {"^*", "nothing to repeat"},
      {"{2}", "nothing to repeat"},
      {"(ab", "missing ')'"},
      {"ab)", "unbalanced parenthesis"},
      {"[ab", "unterminated character set"},
      {"[]", "unterminated character set"},
      {"[z-a]", "a bad character range"},
      {"[\\d-z]", "a bad character range"},
      {"\\b", "word boundaries"},
      {"\\q", "the escape \\q is not supported"},
      {"a{1001}", "a repetition count above 1000"},
      {"a{99999999999999999999}", "a repetition count above 1000"},
      {"a{3,2}", "n < m"},
      {"ab\\", "a trailing backslash"},
  };
  for (const auto &c : cases) {
    const std::string m = error_of(c.first);
    EXPECT_NE(m.find(c.second), std::string::npos) << c.first << " -> " << m;
    EXPECT_NE(m.find("regex '"), std::string::npos) << m;
  }
}

TEST(LayerRegex, HostilePatternsAreBoundedInTimeAndMemory) {
  // Nesting: refused at kMaxNesting, long before any stack could overflow.
  const int deep = LayerRegex::kMaxNesting;
  EXPECT_TRUE(LayerRegex(std::string(deep, '(') + "a" + std::string(deep, ')')).match("a"));
  EXPECT_NE(error_of(std::string(deep + 1, '(') + "a" + std::string(deep + 1, ')'))
                .find("groups nested deeper than 64"),
            std::string::npos);
  const std::string huge = std::string(100000, '(');
  EXPECT_NE(error_of(huge).find("bytes long; at most 4096"), std::string::npos);
  EXPECT_NE(error_of(std::string(4000, '(')).find("nested deeper"), std::string::npos);
  // Expansion of counted repetitions is bounded, empty bodies included.
  EXPECT_NE(error_of("(a{1000}){1000}").find("states once its repetitions are expanded"),
            std::string::npos);
  EXPECT_NE(error_of("((((){1000}){1000}){1000}){1000}").find("states once"),
            std::string::npos);
  // Patterns that take a backtracking engine exponential time run in time
  // linear in the name here.
  const auto t0 = std::chrono::steady_clock::now();
  const std::string long_name(20000, 'a');
  EXPECT_FALSE(LayerRegex("(.*)*(.*)*Z").match(long_name));
  EXPECT_FALSE(LayerRegex("(a|a)*(a|aa)*(a*)*b").match(long_name));
  EXPECT_FALSE(LayerRegex("(a+)+$").match(long_name + "!"));
  EXPECT_TRUE(LayerRegex("(a|a)*(a|aa)*(a*)*$").match(long_name));
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(seconds, 20.0);
  // A message stays one line whatever the pattern holds.
  const std::string m = error_of("a\nb(");
  EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  EXPECT_NE(m.find("a\\x0ab("), std::string::npos) << m;
}

// Our writer records per-layer settings as glob_to_regex(glob); the rules
// must select exactly the layers the globs selected.
TEST(LayerRegex, AgreesWithTheGlobsOurWriterTranslates) {
  const std::vector<std::string> globs = {"model.layers.0.*",  "*.down_proj", "*.?_proj",
                                          "lm_head",           "model.layers.1*.mlp.*",
                                          "*",                 "model.layers.?.self_attn.*",
                                          "*layers.1.*proj*"};
  std::vector<std::string> names = {"lm_head", "model.layers.0.self_attn.q_proj",
                                    "model.layers.12.mlp.up_proj", "model.layers.1.mlp.down_proj",
                                    "model.layers.10.self_attn.o_proj", ""};
  for (const std::string &g : globs) {
    const LayerRegex re(glob_to_regex(g));
    for (const std::string &n : names) EXPECT_EQ(re.match(n), glob_match(g, n)) << g << " " << n;
  }
  // Random globs and names over an alphabet with every character
  // glob_to_regex escapes.
  std::mt19937 rng(12345);
  const std::string glob_chars = "ab.1_*?\\^$|+()[]{}";
  const std::string name_chars = "ab.1_\\^$|+()[]{}";
  auto random_text = [&](const std::string &alphabet, int max_len) {
    std::string s(std::uniform_int_distribution<int>(0, max_len)(rng), ' ');
    for (char &c : s) c = alphabet[std::uniform_int_distribution<size_t>(0, alphabet.size() - 1)(rng)];
    return s;
  };
  for (int i = 0; i < 3000; ++i) {
    const std::string g = random_text(glob_chars, 6);
    const LayerRegex re(glob_to_regex(g));
    for (int j = 0; j < 10; ++j) {
      // Names built from the glob itself hit matches far more often.
      std::string n = random_text(name_chars, 7);
      if (j % 2 == 0) {
        n.clear();
        for (char c : g) {
          if (c == '*') {
            n += random_text(name_chars, 3);
          } else if (c == '?') {
            n += random_text(name_chars, 1);
          } else {
            n += c;
          }
        }
      }
      ASSERT_EQ(re.match(n), glob_match(g, n)) << "glob '" << g << "' name '" << n << "'";
    }
  }
}

}  // namespace
