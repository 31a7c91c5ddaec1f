// The decoders the tokenizer supports (internal to tokenizer*.cpp):
// ByteLevel, Metaspace, literal Replace, ByteFallback, Fuse and Strip. Each
// maps the token list to a new list, in sequence; decode() returns their
// concatenation (HF Decoder::decode).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "tokenizer/tokenizer_pre_tokenizer.h"

namespace gptqtool {
namespace tok {

struct DecoderStep {
  enum Kind { kByteLevel, kMetaspace, kReplace, kByteFallback, kFuse, kStrip } kind;
  std::string a, b;  // Replace: pattern, content; Metaspace/Strip: the character
  PrependScheme prepend = PrependScheme::kAlways;
  size_t start = 0, stop = 0;  // Strip

  std::vector<std::string> apply(std::vector<std::string> tokens) const;
};

}  // namespace tok
}  // namespace gptqtool
