// Unicode character classes and the cutting of text into characters for the
// tokenizer; see tokenizer_chars.h.
#include "tokenizer/tokenizer_chars.h"

#include <algorithm>
#include <iterator>

namespace gptqtool {
namespace tok {

CharClass lookup_class(uint32_t cp) {
  const UnicodeRange *begin = std::begin(kUnicodeRanges);
  const UnicodeRange *end = std::end(kUnicodeRanges);
  const UnicodeRange *it = std::upper_bound(
      begin, end, cp, [](uint32_t c, const UnicodeRange &r) { return c < r.first; });
  if (it == begin) return CharClass::kOther;
  --it;
  return cp <= it->last ? it->cls : CharClass::kOther;
}

std::vector<Char> split_chars(const std::string &s) {
  std::vector<Char> out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const Decoded d = decode_utf8(s.data(), s.size(), i);
    const uint32_t len = d.valid ? d.len : 1;
    out.push_back({d.cp, static_cast<uint32_t>(i), len, char_class(d.cp)});
    i += len;
  }
  return out;
}

}  // namespace tok
}  // namespace gptqtool
