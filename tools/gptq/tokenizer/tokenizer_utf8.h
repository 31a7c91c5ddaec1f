// UTF-8 for the tokenizer (internal to tokenizer*.cpp): strict decoding that
// reports ill-formed bytes the way Rust's lossy conversion counts them,
// encoding, and the lossy / validity checks that decode() needs. Split out
// of tokenizer.cpp because every stage of the pipeline walks text by
// character. decode_utf8 is inline because it runs once per character.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace gptqtool {
namespace tok {

constexpr uint32_t kInvalidCp = 0xFFFFFFFFu;  // a byte that is not UTF-8

struct Decoded {
  uint32_t cp;   // kInvalidCp when !valid
  uint32_t len;  // bytes consumed; for invalid input the maximal prefix of
                 // a well-formed sequence (at least 1), as Rust's lossy
                 // conversion counts it
  bool valid;
};

// Strict UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF).
inline Decoded decode_utf8(const char *s, size_t n, size_t i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) return {b0, 1, true};
  uint32_t need, cp;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 < 0xC2) {
    return {kInvalidCp, 1, false};
  } else if (b0 < 0xE0) {
    need = 1, cp = b0 & 0x1F;
  } else if (b0 < 0xF0) {
    need = 2, cp = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 < 0xF5) {
    need = 3, cp = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return {kInvalidCp, 1, false};
  }
  for (uint32_t k = 1; k <= need; ++k) {
    if (i + k >= n) return {kInvalidCp, k, false};
    const auto b = static_cast<unsigned char>(s[i + k]);
    if (b < lo || b > hi) return {kInvalidCp, k, false};
    cp = (cp << 6) | (b & 0x3F);
    lo = 0x80, hi = 0xBF;
  }
  return {cp, need + 1, true};
}

void append_utf8(uint32_t cp, std::string *out);

inline constexpr char kReplacementChar[] = "\xEF\xBF\xBD";  // U+FFFD

// Rust's String::from_utf8_lossy: each maximal ill-formed prefix becomes one
// U+FFFD. The byte-level decoder ends with it, so decode() must too.
std::string utf8_lossy(const std::string &bytes);

bool is_valid_utf8(const std::string &bytes);

}  // namespace tok
}  // namespace gptqtool
