// Pieces of text and how the pre-tokenizers cut them (internal to
// tokenizer*.cpp): the spans a pattern finds, HF's five split behaviours
// that turn spans into new pieces, and literal-pattern search and replace
// (shared by Split, Metaspace, the Replace normalizer and decoders).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "tokenizer/tokenizer_chars.h"

namespace gptqtool {
namespace tok {

struct Piece {
  std::string text;
  // Starts at offset 0 of the original input (Metaspace's "first" scheme).
  bool at_start;
};

// A stretch of a piece, found by a pattern or between two finds.
struct Span {
  size_t begin, end;  // bytes
  bool is_match;
};

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

// The five ways HF turns a pattern's matches into new pieces
// (NormalizedString::split); empty pieces are dropped.
void split_piece(const Piece &piece, const std::vector<Span> &spans, SplitBehavior behavior,
                 std::vector<Piece> *out);

// Spans of a per-character predicate: every matching character is its own
// match, the runs between are one non-match each (HF's Pattern for Fn(char)).
template <typename Pred>
std::vector<Span> char_spans(const std::vector<Char> &chars, size_t total, Pred pred) {
  std::vector<Span> spans;
  size_t last = 0;
  for (const Char &c : chars) {
    if (!pred(c)) continue;
    if (last < c.off) spans.push_back({last, c.off, false});
    spans.push_back({c.off, c.off + c.len, true});
    last = c.off + c.len;
  }
  if (last < total) spans.push_back({last, total, false});
  return spans;
}

// Spans of a literal pattern: non-overlapping finds from the left.
std::vector<Span> literal_spans(const std::string &text, const std::string &pattern);

std::string replace_all(const std::string &text, const std::string &pattern,
                        const std::string &content);

}  // namespace tok
}  // namespace gptqtool
