// The regular expressions of a checkpoint's GPTQModel "dynamic" rules
// ("+:model\.layers\.1[0-5]\..*": {...}), matched against layer names the
// way GPTQModel matches them: Python's re.match, anchored at the start of
// the name, free at its end unless the pattern says $.
//
// A checkpoint's config.json is untrusted input, so the matcher must have
// bounded time and memory whatever the pattern: a backtracking engine such
// as std::regex overflows its stack on deep nesting, takes exponential time
// on (.*)*(.*)*Z, and its compiler misbehaves on huge back-reference
// numbers. This one compiles the pattern once into a Thompson NFA (at most
// kMaxStates states) and simulates it over the name, in time proportional
// to the name's length times the number of states, with no recursion
// deeper than kMaxNesting.
//
// Supported, as Python reads it: literals; escapes of punctuation (\.,
// \\, \* ...), \d \D \w \W \s \S (ASCII), \t \n \r \f \v; . (any byte but
// newline); [...] and [^...] with ranges and the escapes above; * + ? and
// {m} {m,} {,n} {m,n} (lazy forms too: they match the same names); groups
// ( ), (?: ) and (?P<name> ); alternation |; anchors ^ $ \A \Z. Anything
// else — back-references, look-arounds, inline flags, possessive
// quantifiers, \b — is refused by name, never guessed at. Patterns are
// matched byte by byte (layer names are ASCII).
#pragma once

#include <bitset>
#include <cstdint>
#include <string>
#include <vector>

namespace gptqtool {

class LayerRegex {
 public:
  static constexpr size_t kMaxPatternBytes = 4096;
  static constexpr int kMaxNesting = 64;     // groups inside groups
  static constexpr int kMaxRepeat = 1000;    // the largest m or n of {m,n}
  static constexpr size_t kMaxStates = 20000;

  // Throws ToolError("regex '<pattern>': <what is wrong> at offset N").
  explicit LayerRegex(const std::string &pattern);

  // Whether the pattern matches at the start of `name` (re.match).
  bool match(const std::string &name) const;

  const std::string &pattern() const { return pattern_; }
  size_t state_count() const { return states_.size(); }

 private:
  enum class Kind : uint8_t { Byte, Split, Begin, End, Accept };
  struct State {
    Kind kind = Kind::Accept;
    int32_t out = -1, out1 = -1;  // next states (Split: both)
    std::bitset<256> bytes;       // Byte: the bytes it accepts
  };
  friend class LayerRegexCompiler;

  std::string pattern_;
  std::vector<State> states_;
  int32_t start_ = -1;
};

}  // namespace gptqtool
