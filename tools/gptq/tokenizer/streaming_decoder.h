// Turning generated tokens into text as they arrive. A token may end in the
// middle of a multi-byte UTF-8 character (byte-level and byte-fallback
// models split them across tokens), and a stop string may span tokens, so
// text is released only once it can no longer change or be cut: trailing
// replacement characters (an incomplete character so far) and a tail that
// could be the start of a stop string are held back until the next token
// settles them, or until finish().
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace gptqtool {

class StreamingDecoder {
 public:
  // `stops`: strings that end the text (they are not part of it); empty
  // strings are not allowed.
  StreamingDecoder(const Tokenizer &tokenizer, std::vector<std::string> stops);

  // Adds a token; returns the text that became final with it.
  std::string push(int32_t token);
  // Whether a stop string has appeared (the text then ends before it).
  bool stopped() const { return stopped_; }
  // The text still held back (nothing once stopped).
  std::string finish();
  // Everything released so far.
  const std::string &text() const { return released_; }

 private:
  const Tokenizer &tokenizer_;
  std::vector<std::string> stops_;
  std::vector<int32_t> tokens_;
  std::string released_;
  bool stopped_ = false;
};

}  // namespace gptqtool
