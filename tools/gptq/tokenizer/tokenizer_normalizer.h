// The normalizers the tokenizer supports (internal to tokenizer*.cpp):
// Prepend and a literal Replace, applied in sequence to each stretch of text
// outside raw added tokens. NFC is accepted by the loader as the identity
// and has no step here (see tokenizer.h).
#pragma once

#include <string>

#include "tokenizer/tokenizer_split.h"

namespace gptqtool {
namespace tok {

struct Normalizer {
  enum Kind { kPrepend, kReplace } kind;
  std::string a, b;  // Prepend: a = text; Replace: a = pattern, b = content

  void apply(std::string *s) const {
    if (kind == kPrepend) {
      if (!s->empty()) *s = a + *s;
    } else {
      *s = replace_all(*s, a, b);
    }
  }
};

}  // namespace tok
}  // namespace gptqtool
