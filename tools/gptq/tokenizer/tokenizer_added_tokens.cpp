// Cutting added tokens out of text; see tokenizer_added_tokens.h.
#include "tokenizer/tokenizer_added_tokens.h"

#include <algorithm>

namespace gptqtool {
namespace tok {

void AddedMatcher::finish() {
  for (auto &v : by_first_byte_) {
    std::stable_sort(v.begin(), v.end(), [](const AddedToken *a, const AddedToken *b) {
      return a->pattern.size() > b->pattern.size();
    });
  }
}

std::vector<Segment> AddedMatcher::split(const std::string &s) const {
  std::vector<Segment> out;
  size_t start_offset = 0;
  if (any_) {
    for (size_t pos = 0; pos < s.size();) {
      const AddedToken *t = longest_at(s, pos);
      if (!t) {
        ++pos;
        continue;
      }
      size_t start = pos, stop = pos + t->pattern.size();
      pos = stop;  // the next search starts after this match
      if (t->single_word && ((start > 0 && word_before(s, start)) ||
                             (stop < s.size() && word_after(s, stop)))) {
        continue;
      }
      if (t->lstrip) start = std::max(space_start_before(s, start), start_offset);
      if (t->rstrip) stop = space_end_after(s, stop);
      if (start_offset < start) out.push_back({start_offset, start, -1});
      out.push_back({start, stop, t->id});
      start_offset = stop;
      // Whitespace taken by rstrip is not searched again. (HF searches
      // from the end of the bare match, which differs only for an added
      // token that begins with whitespace right after an rstrip token.)
      pos = std::max(pos, stop);
    }
  }
  if (start_offset < s.size()) out.push_back({start_offset, s.size(), -1});
  return out;
}

Char AddedMatcher::char_before(const std::string &s, size_t end) {
  size_t b = end - 1;
  while (b > 0 && end - b < 4 && (static_cast<unsigned char>(s[b]) & 0xC0) == 0x80) --b;
  const Decoded d = decode_utf8(s.data(), s.size(), b);
  if (!d.valid || b + d.len != end) return {kInvalidCp, uint32_t(end - 1), 1, CharClass::kOther};
  return {d.cp, static_cast<uint32_t>(b), d.len, char_class(d.cp)};
}

Char AddedMatcher::char_at(const std::string &s, size_t at) {
  const Decoded d = decode_utf8(s.data(), s.size(), at);
  return {d.cp, static_cast<uint32_t>(at), d.valid ? d.len : 1, char_class(d.cp)};
}

size_t AddedMatcher::space_start_before(const std::string &s, size_t end) {
  while (end > 0) {
    const Char c = char_before(s, end);
    if (!is_space(c)) break;
    end = c.off;
  }
  return end;
}

size_t AddedMatcher::space_end_after(const std::string &s, size_t at) {
  while (at < s.size()) {
    const Char c = char_at(s, at);
    if (!is_space(c)) break;
    at += c.len;
  }
  return at;
}

}  // namespace tok
}  // namespace gptqtool
