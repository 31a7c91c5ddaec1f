// The split regexes, matched by hand; see tokenizer_split_regex.h. Each
// matcher returns where the match that starts at character i ends (> i),
// trying the alternatives in the pattern's order exactly as a backtracking
// engine does; all three patterns match at every position, so there are no
// gaps.
#include "tokenizer/tokenizer_split_regex.h"

#include <cstddef>

#include "tokenizer/tokenizer_chars.h"

namespace gptqtool {
namespace tok {

namespace {

// Where the run of characters satisfying pred that starts at k ends.
template <typename Pred>
size_t run_end(const std::vector<Char> &c, size_t k, Pred pred) {
  while (k < c.size() && pred(c[k])) ++k;
  return k;
}

// 's|'t|'re|'ve|'m|'ll|'d, optionally ASCII case-insensitive: 0 if none.
// (Oniguruma's (?i) does not fold U+017F ſ to s here; the fixtures check it.)
size_t match_contraction(const std::vector<Char> &c, size_t i, bool ignore_case) {
  if (c[i].cp != '\'' || i + 1 >= c.size()) return 0;
  auto fold = [ignore_case](uint32_t cp) {
    return ignore_case && cp >= 'A' && cp <= 'Z' ? cp + ('a' - 'A') : cp;
  };
  const uint32_t a = fold(c[i + 1].cp);
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return i + 2;
  if (i + 2 < c.size()) {
    const uint32_t b = fold(c[i + 2].cp);
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return i + 3;
  }
  return 0;
}

// \s+(?!\S)|\s+ at a whitespace character: the whole run at the end of the
// text, otherwise all of it but the last one, which then joins what follows
// on the next match (unless the run is a single character).
size_t match_trailing_space(const std::vector<Char> &c, size_t i) {
  const size_t j = run_end(c, i, is_space);
  if (j == c.size() || j - i == 1) return j;
  return j - 1;
}

// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
size_t match_gpt2(const std::vector<Char> &c, size_t i) {
  if (size_t e = match_contraction(c, i, false)) return e;
  const bool space_then = c[i].cp == ' ' && i + 1 < c.size();
  for (auto pred : {is_letter, is_number, is_other}) {
    if (space_then && pred(c[i + 1])) return run_end(c, i + 1, pred);
    if (pred(c[i])) return run_end(c, i, pred);
  }
  return match_trailing_space(c, i);
}

// Llama-3 (max_digits 3) and Qwen2 (max_digits 1):
// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
//  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
size_t match_llama3(const std::vector<Char> &c, size_t i, size_t max_digits) {
  const size_t n = c.size();
  if (size_t e = match_contraction(c, i, true)) return e;
  if (is_letter(c[i])) return run_end(c, i, is_letter);
  if (!is_cr_or_lf(c[i]) && !is_number(c[i]) && i + 1 < n && is_letter(c[i + 1])) {
    return run_end(c, i + 1, is_letter);
  }
  if (is_number(c[i])) {
    size_t k = i;
    while (k < n && k - i < max_digits && is_number(c[k])) ++k;
    return k;
  }
  size_t k = i;
  if (c[k].cp == ' ' && k + 1 < n && is_other(c[k + 1])) ++k;
  if (is_other(c[k])) return run_end(c, run_end(c, k, is_other), is_cr_or_lf);
  // c[i] is whitespace from here on. \s*[\r\n]+ ends after the last CR/LF of
  // the whitespace run, if it has one.
  const size_t j = run_end(c, i, is_space);
  for (size_t m = j; m > i; --m) {
    if (is_cr_or_lf(c[m - 1])) return m;
  }
  return match_trailing_space(c, i);
}

}  // namespace

std::vector<Span> regex_spans(const std::string &text, SplitRegex which) {
  const std::vector<Char> c = split_chars(text);
  std::vector<Span> spans;
  for (size_t i = 0; i < c.size();) {
    size_t e;
    switch (which) {
      case SplitRegex::kGpt2: e = match_gpt2(c, i); break;
      case SplitRegex::kLlama3: e = match_llama3(c, i, 3); break;
      default: e = match_llama3(c, i, 1); break;
    }
    const size_t end = e < c.size() ? c[e].off : text.size();
    spans.push_back({c[i].off, end, true});
    i = e;
  }
  return spans;
}

}  // namespace tok
}  // namespace gptqtool
