// Split behaviours and literal patterns for the tokenizer; see
// tokenizer_split.h.
#include "tokenizer/tokenizer_split.h"

#include <algorithm>

namespace gptqtool {
namespace tok {

void split_piece(const Piece &piece, const std::vector<Span> &spans, SplitBehavior behavior,
                 std::vector<Piece> *out) {
  struct Cut {
    size_t begin, end;
    bool remove;
  };
  std::vector<Cut> cuts;
  cuts.reserve(spans.size());
  switch (behavior) {
    case SplitBehavior::kIsolated:
      for (const Span &s : spans) cuts.push_back({s.begin, s.end, false});
      break;
    case SplitBehavior::kRemoved:
      for (const Span &s : spans) cuts.push_back({s.begin, s.end, s.is_match});
      break;
    case SplitBehavior::kContiguous: {
      bool previous_match = false;
      for (const Span &s : spans) {
        if (s.is_match == previous_match && !cuts.empty()) {
          cuts.back().end = s.end;
        } else {
          cuts.push_back({s.begin, s.end, false});
        }
        previous_match = s.is_match;
      }
      break;
    }
    case SplitBehavior::kMergedWithPrevious: {
      bool previous_match = false;
      for (const Span &s : spans) {
        if (s.is_match && !previous_match && !cuts.empty()) {
          cuts.back().end = s.end;
        } else {
          cuts.push_back({s.begin, s.end, false});
        }
        previous_match = s.is_match;
      }
      break;
    }
    case SplitBehavior::kMergedWithNext: {
      bool previous_match = false;
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->is_match && !previous_match && !cuts.empty()) {
          cuts.back().begin = it->begin;
        } else {
          cuts.push_back({it->begin, it->end, false});
        }
        previous_match = it->is_match;
      }
      std::reverse(cuts.begin(), cuts.end());
      break;
    }
  }
  for (const Cut &c : cuts) {
    if (c.remove || c.end <= c.begin) continue;
    out->push_back({piece.text.substr(c.begin, c.end - c.begin), piece.at_start && c.begin == 0});
  }
}

std::vector<Span> literal_spans(const std::string &text, const std::string &pattern) {
  std::vector<Span> spans;
  if (pattern.empty()) {
    spans.push_back({0, text.size(), false});
    return spans;
  }
  size_t last = 0;
  for (size_t at = text.find(pattern); at != std::string::npos;
       at = text.find(pattern, at + pattern.size())) {
    if (last < at) spans.push_back({last, at, false});
    spans.push_back({at, at + pattern.size(), true});
    last = at + pattern.size();
  }
  if (last < text.size()) spans.push_back({last, text.size(), false});
  return spans;
}

std::string replace_all(const std::string &text, const std::string &pattern,
                        const std::string &content) {
  std::string out;
  for (const Span &s : literal_spans(text, pattern)) {
    if (s.is_match) {
      out += content;
    } else {
      out.append(text, s.begin, s.end - s.begin);
    }
  }
  return out;
}

}  // namespace tok
}  // namespace gptqtool
