// Characters as the tokenizer sees them (internal to tokenizer*.cpp): a
// piece of text cut into code points with their byte offsets and Unicode
// class (from the generated unicode_tables.h), and the class tests that the
// split regexes and added-token rules are written in. Kept apart from the
// UTF-8 codec because this is about Unicode properties, not bytes.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "tokenizer/tokenizer_utf8.h"
#include "tokenizer/unicode_tables.h"

namespace gptqtool {
namespace tok {

// The class of a code point by binary search of kUnicodeRanges.
CharClass lookup_class(uint32_t cp);

// With a table for ASCII, which is nearly all of the text.
struct AsciiClasses {
  std::array<CharClass, 128> cls;
  AsciiClasses() {
    for (uint32_t c = 0; c < 128; ++c) cls[c] = lookup_class(c);
  }
};

inline CharClass char_class(uint32_t cp) {
  static const AsciiClasses ascii;
  if (cp < 128) return ascii.cls[cp];
  if (cp == kInvalidCp) return CharClass::kOther;
  return lookup_class(cp);
}

// One character of a piece of text: its code point, class and bytes.
struct Char {
  uint32_t cp;  // kInvalidCp for a byte that is not UTF-8
  uint32_t off;
  uint32_t len;
  CharClass cls;
};

// Invalid bytes are one character each, of class "other": the regexes then
// group them with punctuation, and byte-level models keep them exactly.
std::vector<Char> split_chars(const std::string &s);

inline bool is_letter(const Char &c) { return c.cls == CharClass::kLetter; }
inline bool is_number(const Char &c) {
  return c.cls == CharClass::kNumber || c.cls == CharClass::kNumberOther;
}
inline bool is_space(const Char &c) { return c.cls == CharClass::kSpace; }
// [^\s\p{L}\p{N}]
inline bool is_other(const Char &c) { return !is_space(c) && !is_letter(c) && !is_number(c); }
inline bool is_cr_or_lf(const Char &c) { return c.cp == '\r' || c.cp == '\n'; }
// \w of the Rust regex crate: Alphabetic, marks, Nd, Pc, Join_Control. (Nl
// counts through Alphabetic.)
inline bool is_word_class(CharClass c) {
  return c == CharClass::kLetter || c == CharClass::kNumber || c == CharClass::kMark ||
         c == CharClass::kConnector || c == CharClass::kAlphabeticSymbol;
}

}  // namespace tok
}  // namespace gptqtool
