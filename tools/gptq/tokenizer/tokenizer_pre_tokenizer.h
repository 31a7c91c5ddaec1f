// The pre-tokenizers the tokenizer supports (internal to tokenizer*.cpp):
// ByteLevel, Digits, Split (literal or one of the hand-matched regexes) and
// Metaspace, each cutting a list of pieces into a finer one; the tokenizer
// runs them in sequence before the BPE model.
#pragma once

#include <string>
#include <vector>

#include "tokenizer/tokenizer_split.h"
#include "tokenizer/tokenizer_split_regex.h"

namespace gptqtool {
namespace tok {

// When Metaspace adds its replacement character in front of a piece; the
// Metaspace decoder reads the same setting to know when to drop it.
enum class PrependScheme { kAlways, kFirst, kNever };

struct PreTokenizer {
  enum Kind { kByteLevel, kDigits, kSplitRegex, kSplitLiteral, kMetaspace } kind;
  bool flag = false;  // ByteLevel: add_prefix_space; Digits: individual
  bool use_regex = true;
  SplitRegex regex = SplitRegex::kGpt2;
  std::string literal;  // Split: pattern; Metaspace: replacement
  SplitBehavior behavior = SplitBehavior::kIsolated;
  bool invert = false;
  PrependScheme prepend = PrependScheme::kAlways;
  bool split = true;  // Metaspace

  void apply(const std::vector<Piece> &in, std::vector<Piece> *out) const {
    for (const Piece &p : in) apply_one(p, out);
  }

  void apply_one(const Piece &piece, std::vector<Piece> *out) const;
};

}  // namespace tok
}  // namespace gptqtool
