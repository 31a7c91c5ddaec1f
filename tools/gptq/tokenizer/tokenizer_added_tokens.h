// Added tokens (internal to tokenizer*.cpp): the tokens of a tokenizer.json's
// "added_tokens" list and the matcher that cuts them out of text before
// anything else, leftmost-longest, as HF's AddedVocabulary does with its
// Aho-Corasick automaton, honouring single_word, lstrip and rstrip.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "tokenizer/tokenizer_chars.h"

namespace gptqtool {
namespace tok {

struct AddedToken {
  std::string content;
  std::string pattern;  // what is searched: content, or its normalized form
  int32_t id;
  bool single_word, lstrip, rstrip, normalized, special;
};

// A text segment or an added token, in input order.
struct Segment {
  size_t begin, end;  // bytes of the searched text
  int32_t token;      // -1: text
};

class AddedMatcher {
 public:
  // The token must outlive the matcher (the tokenizer keeps them together).
  void add(const AddedToken *t) {
    if (t->pattern.empty()) return;
    by_first_byte_[static_cast<unsigned char>(t->pattern[0])].push_back(t);
    any_ = true;
  }
  // To be called once all tokens are added, before split().
  void finish();

  // HF AddedVocabulary::find_matches.
  std::vector<Segment> split(const std::string &s) const;

 private:
  const AddedToken *longest_at(const std::string &s, size_t pos) const {
    for (const AddedToken *t : by_first_byte_[static_cast<unsigned char>(s[pos])]) {
      if (s.compare(pos, t->pattern.size(), t->pattern) == 0) return t;
    }
    return nullptr;
  }

  // The character that ends at byte `end` (s[..end] is whole characters).
  static Char char_before(const std::string &s, size_t end);
  static Char char_at(const std::string &s, size_t at);
  static bool word_before(const std::string &s, size_t end) {
    return is_word_class(char_before(s, end).cls);
  }
  static bool word_after(const std::string &s, size_t at) {
    return is_word_class(char_at(s, at).cls);
  }
  static size_t space_start_before(const std::string &s, size_t end);
  static size_t space_end_after(const std::string &s, size_t at);

  std::array<std::vector<const AddedToken *>, 256> by_first_byte_;
  bool any_ = false;
};

}  // namespace tok
}  // namespace gptqtool
