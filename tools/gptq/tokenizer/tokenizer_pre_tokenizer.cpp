// The pre-tokenizers; see tokenizer_pre_tokenizer.h.
#include "tokenizer/tokenizer_pre_tokenizer.h"

#include <utility>

#include "tokenizer/tokenizer_byte_map.h"
#include "tokenizer/tokenizer_chars.h"

namespace gptqtool {
namespace tok {

void PreTokenizer::apply_one(const Piece &piece, std::vector<Piece> *out) const {
  if (piece.text.empty()) return;
  switch (kind) {
    case kByteLevel: {
      Piece p = piece;
      if (flag && p.text[0] != ' ') p.text.insert(0, 1, ' ');
      const size_t first = out->size();
      if (use_regex) {
        split_piece(p, regex_spans(p.text, SplitRegex::kGpt2), SplitBehavior::kIsolated, out);
      } else {
        out->push_back(std::move(p));
      }
      const ByteMap &map = byte_map();
      for (size_t k = first; k < out->size(); ++k) {
        std::string mapped;
        mapped.reserve((*out)[k].text.size() * 2);
        for (unsigned char b : (*out)[k].text) mapped += map.byte_to_utf8[b];
        (*out)[k].text = std::move(mapped);
      }
      return;
    }
    case kDigits: {
      const std::vector<Char> c = split_chars(piece.text);
      split_piece(piece, char_spans(c, piece.text.size(), is_number),
                  flag ? SplitBehavior::kIsolated : SplitBehavior::kContiguous, out);
      return;
    }
    case kSplitRegex:
    case kSplitLiteral: {
      std::vector<Span> spans = kind == kSplitRegex ? regex_spans(piece.text, regex)
                                                    : literal_spans(piece.text, literal);
      if (invert) {
        for (Span &s : spans) s.is_match = !s.is_match;
      }
      split_piece(piece, spans, behavior, out);
      return;
    }
    case kMetaspace: {
      Piece p{replace_all(piece.text, " ", literal), piece.at_start};
      const bool starts = p.text.compare(0, literal.size(), literal) == 0;
      if (!starts && (prepend == PrependScheme::kAlways ||
                      (prepend == PrependScheme::kFirst && p.at_start))) {
        p.text.insert(0, literal);
      }
      if (split) {
        split_piece(p, literal_spans(p.text, literal), SplitBehavior::kMergedWithNext, out);
      } else {
        out->push_back(std::move(p));
      }
      return;
    }
  }
}

}  // namespace tok
}  // namespace gptqtool
