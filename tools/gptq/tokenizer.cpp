// The Hugging Face tokenizer pipeline, re-done for the subset that causal LM
// checkpoints use (see tokenizer.h for the list). The order of the sections
// follows the order of encoding:
//
//   added tokens  → normalizer → added tokens (normalized ones) →
//   pre-tokenizer → BPE model,      and ids → tokens → decoder.
//
// Every rule that decides where text is cut mirrors the reference library's
// behaviour, because one different cut changes ids and therefore the
// calibration data; where this file knowingly differs it says so.
#include "tokenizer.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <queue>
#include <sstream>
#include <unordered_map>
#include <utility>

#include <nlohmann/json.hpp>

#include "tool_error.h"
#include "unicode_tables.h"

namespace gptqtool {
namespace {

using nlohmann::json;

// ---------------------------------------------------------------------------
// UTF-8

constexpr uint32_t kInvalidCp = 0xFFFFFFFFu;  // a byte that is not UTF-8

struct Decoded {
  uint32_t cp;   // kInvalidCp when !valid
  uint32_t len;  // bytes consumed; for invalid input the maximal prefix of
                 // a well-formed sequence (at least 1), as Rust's lossy
                 // conversion counts it
  bool valid;
};

// Strict UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF).
Decoded decode_utf8(const char *s, size_t n, size_t i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) return {b0, 1, true};
  uint32_t need, cp;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 < 0xC2) {
    return {kInvalidCp, 1, false};
  } else if (b0 < 0xE0) {
    need = 1, cp = b0 & 0x1F;
  } else if (b0 < 0xF0) {
    need = 2, cp = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 < 0xF5) {
    need = 3, cp = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return {kInvalidCp, 1, false};
  }
  for (uint32_t k = 1; k <= need; ++k) {
    if (i + k >= n) return {kInvalidCp, k, false};
    const auto b = static_cast<unsigned char>(s[i + k]);
    if (b < lo || b > hi) return {kInvalidCp, k, false};
    cp = (cp << 6) | (b & 0x3F);
    lo = 0x80, hi = 0xBF;
  }
  return {cp, need + 1, true};
}

void append_utf8(uint32_t cp, std::string *out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

const char kReplacementChar[] = "\xEF\xBF\xBD";  // U+FFFD

// Rust's String::from_utf8_lossy: each maximal ill-formed prefix becomes one
// U+FFFD. The byte-level decoder ends with it, so decode() must too.
std::string utf8_lossy(const std::string &bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (size_t i = 0; i < bytes.size();) {
    const Decoded d = decode_utf8(bytes.data(), bytes.size(), i);
    if (d.valid) {
      out.append(bytes, i, d.len);
    } else {
      out += kReplacementChar;
    }
    i += d.len;
  }
  return out;
}

bool is_valid_utf8(const std::string &bytes) {
  for (size_t i = 0; i < bytes.size();) {
    const Decoded d = decode_utf8(bytes.data(), bytes.size(), i);
    if (!d.valid) return false;
    i += d.len;
  }
  return true;
}

// ---------------------------------------------------------------------------
// Character classes (unicode_tables.h), with a table for ASCII, which is
// nearly all of the text.

CharClass lookup_class(uint32_t cp) {
  const UnicodeRange *begin = std::begin(kUnicodeRanges);
  const UnicodeRange *end = std::end(kUnicodeRanges);
  const UnicodeRange *it = std::upper_bound(
      begin, end, cp, [](uint32_t c, const UnicodeRange &r) { return c < r.first; });
  if (it == begin) return CharClass::kOther;
  --it;
  return cp <= it->last ? it->cls : CharClass::kOther;
}

struct AsciiClasses {
  std::array<CharClass, 128> cls;
  AsciiClasses() {
    for (uint32_t c = 0; c < 128; ++c) cls[c] = lookup_class(c);
  }
};

CharClass char_class(uint32_t cp) {
  static const AsciiClasses ascii;
  if (cp < 128) return ascii.cls[cp];
  if (cp == kInvalidCp) return CharClass::kOther;
  return lookup_class(cp);
}

// One character of a piece of text: its code point, class and bytes.
struct Char {
  uint32_t cp;  // kInvalidCp for a byte that is not UTF-8
  uint32_t off;
  uint32_t len;
  CharClass cls;
};

// Invalid bytes are one character each, of class "other": the regexes then
// group them with punctuation, and byte-level models keep them exactly.
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

bool is_letter(const Char &c) { return c.cls == CharClass::kLetter; }
bool is_number(const Char &c) {
  return c.cls == CharClass::kNumber || c.cls == CharClass::kNumberOther;
}
bool is_space(const Char &c) { return c.cls == CharClass::kSpace; }
// [^\s\p{L}\p{N}]
bool is_other(const Char &c) { return !is_space(c) && !is_letter(c) && !is_number(c); }
bool is_cr_or_lf(const Char &c) { return c.cp == '\r' || c.cp == '\n'; }
// \w of the Rust regex crate: Alphabetic, marks, Nd, Pc, Join_Control. (Nl
// counts through Alphabetic.)
bool is_word_class(CharClass c) {
  return c == CharClass::kLetter || c == CharClass::kNumber || c == CharClass::kMark ||
         c == CharClass::kConnector || c == CharClass::kAlphabeticSymbol;
}

// ---------------------------------------------------------------------------
// Pieces and how a pre-tokenizer cuts them

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

// ---------------------------------------------------------------------------
// The split regexes, matched by hand. Each matcher returns where the match
// that starts at character i ends (> i), trying the alternatives in the
// pattern's order exactly as a backtracking engine does; all three patterns
// match at every position, so there are no gaps.

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

enum class SplitRegex { kGpt2, kLlama3, kQwen2 };

const char kGpt2Pattern[] =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
const char kLlama3Pattern[] =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char kQwen2Pattern[] =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

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

// ---------------------------------------------------------------------------
// GPT-2's byte-to-unicode map: every byte becomes a printable character, so
// that a byte-level vocabulary is made of ordinary strings. Printable Latin-1
// bytes map to themselves, the other 68 to U+0100 onwards in byte order.

struct ByteMap {
  std::array<std::string, 256> byte_to_utf8;
  std::unordered_map<uint32_t, uint8_t> cp_to_byte;
  ByteMap() {
    uint32_t next = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      const uint32_t cp = printable ? b : next++;
      append_utf8(cp, &byte_to_utf8[b]);
      cp_to_byte[cp] = static_cast<uint8_t>(b);
    }
  }
};

const ByteMap &byte_map() {
  static const ByteMap map;
  return map;
}

// ---------------------------------------------------------------------------
// Normalizers

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

// ---------------------------------------------------------------------------
// Pre-tokenizers

enum class PrependScheme { kAlways, kFirst, kNever };

struct PreTokenizer {
  enum Kind { kByteLevel, kDigits, kSplitRegex, kSplitLiteral, kMetaspace } kind;
  bool flag = false;  // ByteLevel: add_prefix_space; Digits: individual
  bool use_regex = true;
  SplitRegex regex = SplitRegex::kGpt2;
  std::string literal;  // Split: pattern; Metaspace: replacement
  SplitBehavior behavior = SplitBehavior::kIsolated;
  bool invert = false;
  PrependScheme prepend = PrependScheme::kAlways;
  bool split = true;  // Metaspace

  void apply(const std::vector<Piece> &in, std::vector<Piece> *out) const {
    for (const Piece &p : in) apply_one(p, out);
  }

  void apply_one(const Piece &piece, std::vector<Piece> *out) const {
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
};

// ---------------------------------------------------------------------------
// The BPE model

struct MergeTarget {
  int32_t rank;
  int32_t new_id;
};

uint64_t pair_key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

struct Bpe {
  std::unordered_map<std::string, int32_t> vocab;
  std::unordered_map<uint64_t, MergeTarget> merges;
  std::string unk_token;  // empty: none
  int32_t unk_id = -1;    // -1: none, or not in the vocabulary
  bool fuse_unk = false;
  bool byte_fallback = false;
  bool ignore_merges = false;
  std::string prefix;  // continuing_subword_prefix
  std::string suffix;  // end_of_word_suffix
  std::array<int32_t, 256> byte_ids;  // "<0xAB>" tokens, -1 if absent

  int32_t find(const std::string &s) const {
    auto it = vocab.find(s);
    return it == vocab.end() ? -1 : it->second;
  }

  int32_t need_unk() const {
    if (unk_id < 0) {
      throw ToolError("tokenizer: unk_token \"" + unk_token +
                      "\" is needed for a character missing from the vocabulary, "
                      "but is not in the vocabulary itself");
    }
    return unk_id;
  }

  // One pre-token to ids (HF BPE::merge_word + Word::merge_all).
  void tokenize(const std::string &word, std::vector<int32_t> *out) const {
    if (word.empty()) return;
    if (ignore_merges) {
      const int32_t id = find(word);
      if (id >= 0) {
        out->push_back(id);
        return;
      }
    }
    std::vector<int32_t> ids;
    ids.reserve(word.size());
    bool pending_unk = false;
    std::string s;
    for (size_t i = 0; i < word.size();) {
      const Decoded d = decode_utf8(word.data(), word.size(), i);
      const size_t len = d.valid ? d.len : 1;
      s.assign(word, i, len);
      if (i > 0) s.insert(0, prefix);
      i += len;
      if (i == word.size()) s += suffix;
      const int32_t id = find(s);
      if (id >= 0) {
        if (pending_unk) ids.push_back(need_unk());
        pending_unk = false;
        ids.push_back(id);
        continue;
      }
      if (byte_fallback) {
        bool all = true;
        for (unsigned char b : s) all = all && byte_ids[b] >= 0;
        if (all) {
          // A pending unk stays pending, as in HF.
          for (unsigned char b : s) ids.push_back(byte_ids[b]);
          continue;
        }
      }
      if (unk_token.empty()) continue;  // no unk token: the character is dropped
      if (pending_unk && !fuse_unk) ids.push_back(need_unk());
      pending_unk = true;
    }
    if (pending_unk) ids.push_back(need_unk());
    merge(&ids);
    out->insert(out->end(), ids.begin(), ids.end());
  }

  // Applies the merges lowest rank first, leftmost first among equal ranks;
  // queue entries made stale by an earlier merge are skipped when popped.
  void merge(std::vector<int32_t> *ids) const {
    const int32_t n = static_cast<int32_t>(ids->size());
    if (n < 2 || merges.empty()) return;
    struct Entry {
      int32_t rank, pos, new_id;
      bool operator>(const Entry &o) const {
        return rank != o.rank ? rank > o.rank : pos > o.pos;
      }
    };
    std::vector<int32_t> &id = *ids;
    std::vector<int32_t> prev(n), next(n);
    std::vector<char> alive(n, 1);
    for (int32_t i = 0; i < n; ++i) prev[i] = i - 1, next[i] = i + 1 < n ? i + 1 : -1;
    std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> queue;
    auto consider = [&](int32_t pos) {  // queue the pair that starts at pos
      if (pos < 0 || next[pos] < 0) return;
      const int32_t right = next[pos];
      auto it = merges.find(pair_key(id[pos], id[right]));
      if (it != merges.end()) queue.push({it->second.rank, pos, it->second.new_id});
    };
    for (int32_t i = 0; i + 1 < n; ++i) consider(i);
    while (!queue.empty()) {
      const Entry top = queue.top();
      queue.pop();
      const int32_t right = next[top.pos];
      if (!alive[top.pos] || right < 0) continue;
      auto it = merges.find(pair_key(id[top.pos], id[right]));
      if (it == merges.end() || it->second.new_id != top.new_id) continue;
      id[top.pos] = top.new_id;
      alive[right] = 0;
      next[top.pos] = next[right];
      if (next[right] >= 0) prev[next[right]] = top.pos;
      if (prev[top.pos] >= 0) consider(prev[top.pos]);
      consider(top.pos);
    }
    int32_t w = 0;
    for (int32_t i = 0; i < n; ++i) {
      if (alive[i]) id[w++] = id[i];
    }
    ids->resize(w);
  }
};

// ---------------------------------------------------------------------------
// Added tokens: cut out before anything else, leftmost-longest, as HF's
// AddedVocabulary does with its Aho-Corasick automaton.

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
  void add(const AddedToken *t) {
    if (t->pattern.empty()) return;
    by_first_byte_[static_cast<unsigned char>(t->pattern[0])].push_back(t);
    any_ = true;
  }
  void finish() {
    for (auto &v : by_first_byte_) {
      std::stable_sort(v.begin(), v.end(), [](const AddedToken *a, const AddedToken *b) {
        return a->pattern.size() > b->pattern.size();
      });
    }
  }

  // HF AddedVocabulary::find_matches.
  std::vector<Segment> split(const std::string &s) const {
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

 private:
  const AddedToken *longest_at(const std::string &s, size_t pos) const {
    for (const AddedToken *t : by_first_byte_[static_cast<unsigned char>(s[pos])]) {
      if (s.compare(pos, t->pattern.size(), t->pattern) == 0) return t;
    }
    return nullptr;
  }

  // The character that ends at byte `end` (s[..end] is whole characters).
  static Char char_before(const std::string &s, size_t end) {
    size_t b = end - 1;
    while (b > 0 && end - b < 4 && (static_cast<unsigned char>(s[b]) & 0xC0) == 0x80) --b;
    const Decoded d = decode_utf8(s.data(), s.size(), b);
    if (!d.valid || b + d.len != end) return {kInvalidCp, uint32_t(end - 1), 1, CharClass::kOther};
    return {d.cp, static_cast<uint32_t>(b), d.len, char_class(d.cp)};
  }
  static Char char_at(const std::string &s, size_t at) {
    const Decoded d = decode_utf8(s.data(), s.size(), at);
    return {d.cp, static_cast<uint32_t>(at), d.valid ? d.len : 1, char_class(d.cp)};
  }
  static bool word_before(const std::string &s, size_t end) {
    return is_word_class(char_before(s, end).cls);
  }
  static bool word_after(const std::string &s, size_t at) {
    return is_word_class(char_at(s, at).cls);
  }
  static size_t space_start_before(const std::string &s, size_t end) {
    while (end > 0) {
      const Char c = char_before(s, end);
      if (!is_space(c)) break;
      end = c.off;
    }
    return end;
  }
  static size_t space_end_after(const std::string &s, size_t at) {
    while (at < s.size()) {
      const Char c = char_at(s, at);
      if (!is_space(c)) break;
      at += c.len;
    }
    return at;
  }

  std::array<std::vector<const AddedToken *>, 256> by_first_byte_;
  bool any_ = false;
};

// ---------------------------------------------------------------------------
// Decoders: each maps the token list to a new list, in sequence; the result
// is their concatenation (HF Decoder::decode).

struct DecoderStep {
  enum Kind { kByteLevel, kMetaspace, kReplace, kByteFallback, kFuse, kStrip } kind;
  std::string a, b;  // Replace: pattern, content; Metaspace/Strip: the character
  PrependScheme prepend = PrependScheme::kAlways;
  size_t start = 0, stop = 0;  // Strip

  std::vector<std::string> apply(std::vector<std::string> tokens) const {
    switch (kind) {
      case kByteLevel: {
        // A token whose characters are all in the byte map becomes those
        // bytes; any other token (an added token with a space, say) is kept.
        const ByteMap &map = byte_map();
        std::string bytes;
        for (const std::string &t : tokens) {
          std::string mine;
          bool all = true;
          for (size_t i = 0; i < t.size() && all;) {
            const Decoded d = decode_utf8(t.data(), t.size(), i);
            auto it = d.valid ? map.cp_to_byte.find(d.cp) : map.cp_to_byte.end();
            all = it != map.cp_to_byte.end();
            if (all) mine.push_back(static_cast<char>(it->second));
            i += d.len;
          }
          bytes += all ? mine : t;
        }
        return {utf8_lossy(bytes)};
      }
      case kMetaspace: {
        for (size_t i = 0; i < tokens.size(); ++i) {
          const bool drop = i == 0 && prepend != PrependScheme::kNever;
          tokens[i] = replace_all(tokens[i], a, drop ? "" : " ");
        }
        return tokens;
      }
      case kReplace:
        for (std::string &t : tokens) t = replace_all(t, a, b);
        return tokens;
      case kByteFallback: {
        std::vector<std::string> out;
        std::string pending;
        auto flush = [&] {
          if (pending.empty()) return;
          if (is_valid_utf8(pending)) {
            out.push_back(pending);
          } else {
            for (size_t k = 0; k < pending.size(); ++k) out.push_back(kReplacementChar);
          }
          pending.clear();
        };
        for (std::string &t : tokens) {
          int byte = -1;
          if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' &&
              std::isxdigit(static_cast<unsigned char>(t[3])) &&
              std::isxdigit(static_cast<unsigned char>(t[4]))) {
            byte = std::stoi(t.substr(3, 2), nullptr, 16);
          }
          if (byte >= 0) {
            pending.push_back(static_cast<char>(byte));
          } else {
            flush();
            out.push_back(std::move(t));
          }
        }
        flush();
        return out;
      }
      case kFuse: {
        std::string all;
        for (const std::string &t : tokens) all += t;
        return {all};
      }
      case kStrip: {
        for (std::string &t : tokens) {
          std::vector<Char> c = split_chars(t);
          size_t lo = 0, hi = c.size();
          auto is_content = [&](const Char &ch) { return t.compare(ch.off, ch.len, a) == 0; };
          while (lo < std::min(start, c.size()) && is_content(c[lo])) ++lo;
          for (size_t k = 0; k < stop && hi > lo && is_content(c[hi - 1]); ++k) --hi;
          const size_t b0 = lo < c.size() ? c[lo].off : t.size();
          const size_t b1 = hi < c.size() ? c[hi].off : t.size();
          t = t.substr(b0, b1 - b0);
        }
        return tokens;
      }
    }
    return tokens;
  }
};

// ---------------------------------------------------------------------------
// Reading tokenizer.json

class Reader {
 public:
  explicit Reader(std::string origin) : origin_(std::move(origin)) {}

  [[noreturn]] void fail(const std::string &what) const {
    throw ToolError(origin_ + ": " + what);
  }

  const json &member(const json &obj, const char *key, const std::string &where) const {
    auto it = obj.find(key);
    if (it == obj.end()) fail(where + " has no \"" + key + "\"");
    return *it;
  }
  std::string str(const json &obj, const char *key, const std::string &where,
                  const std::string *fallback = nullptr) const {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) {
      if (fallback) return *fallback;
      fail(where + "." + key + " is missing");
    }
    if (!it->is_string()) fail(where + "." + key + " must be a string");
    return it->get<std::string>();
  }
  bool boolean(const json &obj, const char *key, const std::string &where, bool fallback) const {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return fallback;
    if (!it->is_boolean()) fail(where + "." + key + " must be true or false");
    return it->get<bool>();
  }
  int64_t integer(const json &v, const std::string &where) const {
    if (!v.is_number_integer()) fail(where + " must be an integer");
    return v.get<int64_t>();
  }
  int32_t id(const json &v, const std::string &where) const {
    const int64_t x = integer(v, where);
    if (x < 0 || x > INT32_MAX) fail(where + " = " + std::to_string(x) + " is not a valid token id");
    return static_cast<int32_t>(x);
  }
  std::string type_of(const json &obj, const std::string &where) const {
    if (!obj.is_object()) fail(where + " must be an object");
    return str(obj, "type", where);
  }
  // {"String": "..."} or {"Regex": "..."}: returns (is_regex, text).
  std::pair<bool, std::string> pattern(const json &obj, const std::string &where) const {
    const json &p = member(obj, "pattern", where);
    if (p.is_object() && p.size() == 1) {
      if (p.contains("String") && p["String"].is_string()) return {false, p["String"]};
      if (p.contains("Regex") && p["Regex"].is_string()) return {true, p["Regex"]};
    }
    fail(where + ".pattern must be {\"String\": ...} or {\"Regex\": ...}");
  }
  // A single character given as a string (Metaspace, Strip).
  std::string one_char(const json &obj, const char *key, const std::string &where,
                       const std::string &fallback) const {
    const std::string s = str(obj, key, where, &fallback);
    if (s.empty() || split_chars(s).size() != 1) fail(where + "." + key + " must be one character");
    return s;
  }
  PrependScheme prepend_scheme(const json &obj, const std::string &where) const {
    PrependScheme scheme = PrependScheme::kAlways;
    auto it = obj.find("prepend_scheme");
    if (it != obj.end() && !it->is_null()) {
      const std::string s = str(obj, "prepend_scheme", where);
      if (s == "always") {
        scheme = PrependScheme::kAlways;
      } else if (s == "first") {
        scheme = PrependScheme::kFirst;
      } else if (s == "never") {
        scheme = PrependScheme::kNever;
      } else {
        fail(where + ".prepend_scheme \"" + s + "\" is not always, first or never");
      }
    }
    // Files written before prepend_scheme existed say add_prefix_space.
    if (!boolean(obj, "add_prefix_space", where, true)) scheme = PrependScheme::kNever;
    return scheme;
  }

 private:
  std::string origin_;
};

std::string lower(std::string s) {
  for (char &ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

}  // namespace

// ---------------------------------------------------------------------------
// The tokenizer

struct Tokenizer::Impl {
  std::vector<Normalizer> normalizers;
  std::vector<PreTokenizer> pre_tokenizers;
  std::vector<DecoderStep> decoders;
  bool has_decoder = false;
  Bpe bpe;
  std::vector<AddedToken> added;
  AddedMatcher raw_matcher;         // added tokens with normalized = false
  AddedMatcher normalized_matcher;  // the others, searched after normalizing
  std::vector<std::string> id_to_token;
  std::vector<std::string> decode_token;  // what decode() feeds the decoder
  std::vector<char> id_is_added;

  // Pre-token → ids. Text repeats its words, so this saves most BPE work.
  mutable std::mutex cache_mutex;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache;
  static constexpr size_t kCacheMaxWordBytes = 256;
  static constexpr size_t kCacheMaxEntries = 1 << 18;

  void load(const json &root, const Reader &r);
  void load_normalizer(const json &n, const Reader &r, const std::string &where);
  void load_pre_tokenizer(const json &p, const Reader &r, const std::string &where);
  void load_decoder(const json &d, const Reader &r, const std::string &where);
  void load_model(const json &m, const Reader &r);
  void load_added(const json &list, const Reader &r);

  std::string normalize(std::string s) const {
    for (const Normalizer &n : normalizers) n.apply(&s);
    return s;
  }

  void encode_piece(const std::string &word, std::vector<int32_t> *out) const {
    if (word.size() > kCacheMaxWordBytes) {
      bpe.tokenize(word, out);
      return;
    }
    {
      std::lock_guard<std::mutex> lock(cache_mutex);
      auto it = cache.find(word);
      if (it != cache.end()) {
        out->insert(out->end(), it->second.begin(), it->second.end());
        return;
      }
    }
    std::vector<int32_t> ids;
    bpe.tokenize(word, &ids);
    out->insert(out->end(), ids.begin(), ids.end());
    std::lock_guard<std::mutex> lock(cache_mutex);
    if (cache.size() < kCacheMaxEntries) cache.emplace(word, std::move(ids));
  }

  // A stretch of text without added tokens.
  void encode_text(Piece piece, std::vector<int32_t> *out) const {
    if (piece.text.empty()) return;  // a Replace normalizer may empty it
    std::vector<Piece> pieces{std::move(piece)};
    std::vector<Piece> next;
    for (const PreTokenizer &p : pre_tokenizers) {
      next.clear();
      p.apply(pieces, &next);
      pieces.swap(next);
    }
    for (const Piece &p : pieces) encode_piece(p.text, out);
  }
};

void Tokenizer::Impl::load_normalizer(const json &n, const Reader &r, const std::string &where) {
  if (n.is_null()) return;
  const std::string type = r.type_of(n, where);
  if (type == "Sequence") {
    const json &list = r.member(n, "normalizers", where);
    if (!list.is_array()) r.fail(where + ".normalizers must be a list");
    for (size_t i = 0; i < list.size(); ++i) {
      load_normalizer(list[i], r, where + ".normalizers[" + std::to_string(i) + "]");
    }
  } else if (type == "NFC") {
    // Identity: exact for text already in NFC (see tokenizer.h).
  } else if (type == "Prepend") {
    normalizers.push_back({Normalizer::kPrepend, r.str(n, "prepend", where), ""});
  } else if (type == "Replace") {
    auto [is_regex, pattern] = r.pattern(n, where);
    if (is_regex) r.fail(where + ": Replace with a Regex pattern is not supported (only String)");
    normalizers.push_back({Normalizer::kReplace, pattern, r.str(n, "content", where)});
  } else {
    r.fail(where + ": normalizer type \"" + type +
           "\" is not supported (supported: NFC, Prepend, Replace, Sequence)");
  }
}

void Tokenizer::Impl::load_pre_tokenizer(const json &p, const Reader &r, const std::string &where) {
  if (p.is_null()) return;
  const std::string type = r.type_of(p, where);
  PreTokenizer pt{};
  if (type == "Sequence") {
    const json &list = r.member(p, "pretokenizers", where);
    if (!list.is_array()) r.fail(where + ".pretokenizers must be a list");
    for (size_t i = 0; i < list.size(); ++i) {
      load_pre_tokenizer(list[i], r, where + ".pretokenizers[" + std::to_string(i) + "]");
    }
    return;
  } else if (type == "ByteLevel") {
    pt.kind = PreTokenizer::kByteLevel;
    pt.flag = r.boolean(p, "add_prefix_space", where, true);
    pt.use_regex = r.boolean(p, "use_regex", where, true);
  } else if (type == "Digits") {
    pt.kind = PreTokenizer::kDigits;
    pt.flag = r.boolean(p, "individual_digits", where, false);
  } else if (type == "Metaspace") {
    pt.kind = PreTokenizer::kMetaspace;
    pt.literal = r.one_char(p, "replacement", where, "\xE2\x96\x81");
    pt.prepend = r.prepend_scheme(p, where);
    pt.split = r.boolean(p, "split", where, true);
  } else if (type == "Split") {
    auto [is_regex, pattern] = r.pattern(p, where);
    if (!is_regex) {
      pt.kind = PreTokenizer::kSplitLiteral;
      pt.literal = pattern;
    } else {
      pt.kind = PreTokenizer::kSplitRegex;
      if (pattern == kGpt2Pattern) {
        pt.regex = SplitRegex::kGpt2;
      } else if (pattern == kLlama3Pattern) {
        pt.regex = SplitRegex::kLlama3;
      } else if (pattern == kQwen2Pattern) {
        pt.regex = SplitRegex::kQwen2;
      } else {
        r.fail(where + ": Split regex " + json(pattern).dump() +
               " is not supported; only the GPT-2, Llama-3 and Qwen2 patterns are "
               "(they are matched by hand, there is no regex engine)");
      }
    }
    const std::string b = lower(r.str(p, "behavior", where));
    if (b == "isolated") {
      pt.behavior = SplitBehavior::kIsolated;
    } else if (b == "removed") {
      pt.behavior = SplitBehavior::kRemoved;
    } else if (b == "mergedwithprevious") {
      pt.behavior = SplitBehavior::kMergedWithPrevious;
    } else if (b == "mergedwithnext") {
      pt.behavior = SplitBehavior::kMergedWithNext;
    } else if (b == "contiguous") {
      pt.behavior = SplitBehavior::kContiguous;
    } else {
      r.fail(where + ".behavior \"" + b + "\" is not a known split behavior");
    }
    pt.invert = r.boolean(p, "invert", where, false);
  } else {
    r.fail(where + ": pre_tokenizer type \"" + type +
           "\" is not supported (supported: ByteLevel, Digits, Metaspace, Split, Sequence)");
  }
  pre_tokenizers.push_back(std::move(pt));
}

void Tokenizer::Impl::load_decoder(const json &d, const Reader &r, const std::string &where) {
  if (d.is_null()) return;
  has_decoder = true;
  const std::string type = r.type_of(d, where);
  DecoderStep step{};
  if (type == "Sequence") {
    const json &list = r.member(d, "decoders", where);
    if (!list.is_array()) r.fail(where + ".decoders must be a list");
    for (size_t i = 0; i < list.size(); ++i) {
      load_decoder(list[i], r, where + ".decoders[" + std::to_string(i) + "]");
    }
    return;
  } else if (type == "ByteLevel") {
    step.kind = DecoderStep::kByteLevel;
  } else if (type == "Metaspace") {
    step.kind = DecoderStep::kMetaspace;
    step.a = r.one_char(d, "replacement", where, "\xE2\x96\x81");
    step.prepend = r.prepend_scheme(d, where);
  } else if (type == "Replace") {
    auto [is_regex, pattern] = r.pattern(d, where);
    if (is_regex) r.fail(where + ": Replace with a Regex pattern is not supported (only String)");
    step.kind = DecoderStep::kReplace;
    step.a = pattern;
    step.b = r.str(d, "content", where);
  } else if (type == "ByteFallback") {
    step.kind = DecoderStep::kByteFallback;
  } else if (type == "Fuse") {
    step.kind = DecoderStep::kFuse;
  } else if (type == "Strip") {
    step.kind = DecoderStep::kStrip;
    step.a = r.one_char(d, "content", where, " ");
    const int64_t start = r.integer(r.member(d, "start", where), where + ".start");
    const int64_t stop = r.integer(r.member(d, "stop", where), where + ".stop");
    if (start < 0 || stop < 0) r.fail(where + ": Strip start/stop must not be negative");
    step.start = static_cast<size_t>(start);
    step.stop = static_cast<size_t>(stop);
  } else {
    r.fail(where + ": decoder type \"" + type +
           "\" is not supported (supported: ByteLevel, Metaspace, Replace, ByteFallback, Fuse, "
           "Strip, Sequence)");
  }
  decoders.push_back(std::move(step));
}

void Tokenizer::Impl::load_model(const json &m, const Reader &r) {
  if (!m.is_object()) r.fail("\"model\" must be an object");
  // Files from old versions may leave out the type of a BPE model.
  const std::string fallback = m.contains("merges") ? "BPE" : "";
  const std::string type = r.str(m, "type", "model", &fallback);
  if (type != "BPE") {
    r.fail("model type \"" + (type.empty() ? std::string("(none)") : type) +
           "\" is not supported (only BPE)");
  }
  const json &vocab = r.member(m, "vocab", "model");
  if (!vocab.is_object()) r.fail("model.vocab must be an object of token: id");
  bpe.vocab.reserve(vocab.size());
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    bpe.vocab[it.key()] = r.id(it.value(), "model.vocab[" + json(it.key()).dump() + "]");
  }
  auto it = m.find("dropout");
  if (it != m.end() && !it->is_null() && !(it->is_number() && it->get<double>() == 0.0)) {
    r.fail("model.dropout is set; BPE dropout makes tokenization random and is not supported");
  }
  const std::string none;
  bpe.unk_token = r.str(m, "unk_token", "model", &none);
  bpe.unk_id = bpe.unk_token.empty() ? -1 : bpe.find(bpe.unk_token);
  bpe.fuse_unk = r.boolean(m, "fuse_unk", "model", false);
  bpe.byte_fallback = r.boolean(m, "byte_fallback", "model", false);
  bpe.ignore_merges = r.boolean(m, "ignore_merges", "model", false);
  bpe.prefix = r.str(m, "continuing_subword_prefix", "model", &none);
  bpe.suffix = r.str(m, "end_of_word_suffix", "model", &none);
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    bpe.byte_ids[b] = bpe.find(name);
  }

  const json &merges = r.member(m, "merges", "model");
  if (!merges.is_array()) r.fail("model.merges must be a list");
  bpe.merges.reserve(merges.size());
  int32_t rank = 0;
  for (size_t i = 0; i < merges.size(); ++i) {
    const json &e = merges[i];
    const std::string where = "model.merges[" + std::to_string(i) + "]";
    std::string a, b;
    if (e.is_string()) {
      // Legacy form "a b": exactly one space (byte-level tokens never hold
      // one, it is Ġ there).
      const std::string s = e.get<std::string>();
      if (s.rfind("#version", 0) == 0) continue;
      const size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos) {
        r.fail(where + " = " + e.dump() + " is not two tokens separated by one space");
      }
      a = s.substr(0, sp), b = s.substr(sp + 1);
    } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
      a = e[0].get<std::string>(), b = e[1].get<std::string>();
    } else {
      r.fail(where + " must be \"a b\" or [\"a\", \"b\"]");
    }
    const int32_t ia = bpe.find(a), ib = bpe.find(b);
    if (b.compare(0, bpe.prefix.size(), bpe.prefix) != 0) {
      r.fail(where + ": \"" + b + "\" lacks the continuing_subword_prefix");
    }
    const int32_t inew = bpe.find(a + b.substr(bpe.prefix.size()));
    if (ia < 0 || ib < 0 || inew < 0) {
      r.fail(where + " = " + e.dump() + " uses a token that is not in the vocabulary");
    }
    // A pair listed twice keeps its last rank, as HF's map does.
    bpe.merges[pair_key(ia, ib)] = {rank++, inew};
  }
}

void Tokenizer::Impl::load_added(const json &list, const Reader &r) {
  if (list.is_null()) return;
  if (!list.is_array()) r.fail("\"added_tokens\" must be a list");
  added.reserve(list.size());  // raw pointers into it are kept by the matchers
  // HF does not take the ids in the file: a token whose content is in the
  // vocabulary gets that id, the others new ids after the vocabulary, in
  // file order (AddedVocabulary::add_tokens). In consistent files, which is
  // all of them in practice, the result is the file's ids.
  std::unordered_map<std::string, size_t> index_of;
  int64_t next_id = static_cast<int64_t>(bpe.vocab.size());
  for (size_t i = 0; i < list.size(); ++i) {
    const json &t = list[i];
    const std::string where = "added_tokens[" + std::to_string(i) + "]";
    if (!t.is_object()) r.fail(where + " must be an object");
    AddedToken a;
    r.id(r.member(t, "id", where), where + ".id");  // checked, then not used
    a.content = r.str(t, "content", where);
    if (a.content.empty()) continue;  // HF ignores these too
    auto seen = index_of.find(a.content);
    if (seen != index_of.end()) {
      a.id = added[seen->second].id;
    } else if (bpe.find(a.content) >= 0) {
      a.id = bpe.find(a.content);
    } else {
      if (next_id > INT32_MAX) r.fail(where + ": too many tokens");
      a.id = static_cast<int32_t>(next_id++);
    }
    a.special = r.boolean(t, "special", where, false);
    a.single_word = r.boolean(t, "single_word", where, false);
    a.lstrip = r.boolean(t, "lstrip", where, false);
    a.rstrip = r.boolean(t, "rstrip", where, false);
    a.normalized = r.boolean(t, "normalized", where, !a.special);
    // Normalized tokens are searched for in normalized text, so in their
    // normalized form (HF refresh_normalized_tokens).
    a.pattern = a.normalized ? normalize(a.content) : a.content;
    if (seen != index_of.end()) {
      added[seen->second] = std::move(a);  // listed twice: the last one wins
    } else {
      index_of[a.content] = added.size();
      added.push_back(std::move(a));
    }
  }
  for (const AddedToken &a : added) (a.normalized ? normalized_matcher : raw_matcher).add(&a);
  raw_matcher.finish();
  normalized_matcher.finish();
}

void Tokenizer::Impl::load(const json &root, const Reader &r) {
  if (!root.is_object()) r.fail("the top level must be a JSON object");
  const json null_value;
  auto get = [&](const char *key) -> const json & {
    auto it = root.find(key);
    return it == root.end() ? null_value : *it;
  };
  load_normalizer(get("normalizer"), r, "normalizer");
  load_pre_tokenizer(get("pre_tokenizer"), r, "pre_tokenizer");
  load_decoder(get("decoder"), r, "decoder");
  load_model(r.member(root, "model", "the file"), r);
  load_added(get("added_tokens"), r);

  int64_t size = 0;
  for (const auto &[token, id] : bpe.vocab) size = std::max<int64_t>(size, int64_t(id) + 1);
  for (const AddedToken &a : added) size = std::max<int64_t>(size, int64_t(a.id) + 1);
  if (size > (int64_t(1) << 24)) {
    r.fail("the largest token id is " + std::to_string(size - 1) + ", implausibly large");
  }
  id_to_token.assign(static_cast<size_t>(size), std::string());
  id_is_added.assign(static_cast<size_t>(size), 0);
  for (const auto &[token, id] : bpe.vocab) id_to_token[id] = token;
  decode_token = id_to_token;
  for (const AddedToken &a : added) {  // added tokens win, as in HF
    id_to_token[a.id] = a.content;
    // A normalized token is decoded from its normalized form, so that the
    // decoder undoes the normalization (HF simple_id_to_token).
    decode_token[a.id] = a.pattern;
    id_is_added[a.id] = 1;
  }
}

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::~Tokenizer() = default;

std::unique_ptr<Tokenizer> Tokenizer::from_json_text(const std::string &json_text,
                                                     const std::string &origin) {
  const Reader reader(origin);
  json root;
  try {
    root = json::parse(json_text);
  } catch (const json::exception &e) {
    reader.fail(std::string("not valid JSON: ") + e.what());
  }
  auto impl = std::make_unique<Impl>();
  try {
    impl->load(root, reader);
  } catch (const json::exception &e) {  // a type the checks above did not foresee
    reader.fail(std::string("unexpected content: ") + e.what());
  }
  return std::unique_ptr<Tokenizer>(new Tokenizer(std::move(impl)));
}

std::unique_ptr<Tokenizer> Tokenizer::from_file(const std::string &tokenizer_json_path) {
  std::ifstream in(tokenizer_json_path, std::ios::binary);
  if (!in) {
    throw ToolError(tokenizer_json_path + ": cannot open the tokenizer file (" +
                    std::strerror(errno) + ")");
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw ToolError(tokenizer_json_path + ": read error");
  return from_json_text(text.str(), tokenizer_json_path);
}

std::vector<int32_t> Tokenizer::encode(const std::string &utf8_text) const {
  const Impl &m = *impl_;
  if (utf8_text.size() > UINT32_MAX) {  // Char keeps 32-bit offsets
    throw ToolError("tokenizer: a text of " + std::to_string(utf8_text.size()) +
                    " bytes is over the 4 GiB that one encode() call takes; split it");
  }
  std::vector<int32_t> out;
  out.reserve(utf8_text.size() / 3 + 16);
  for (const Segment &raw : m.raw_matcher.split(utf8_text)) {
    if (raw.token >= 0) {
      out.push_back(raw.token);
      continue;
    }
    const std::string normalized = m.normalize(utf8_text.substr(raw.begin, raw.end - raw.begin));
    for (const Segment &seg : m.normalized_matcher.split(normalized)) {
      if (seg.token >= 0) {
        out.push_back(seg.token);
      } else {
        m.encode_text({normalized.substr(seg.begin, seg.end - seg.begin),
                       raw.begin == 0 && seg.begin == 0},
                      &out);
      }
    }
  }
  return out;
}

std::string Tokenizer::decode(const std::vector<int32_t> &ids) const {
  const Impl &m = *impl_;
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    if (id < 0 || static_cast<size_t>(id) >= m.id_to_token.size()) continue;
    if (m.decode_token[id].empty() && !m.id_is_added[id]) continue;  // a hole in the ids
    tokens.push_back(m.decode_token[id]);
  }
  if (!m.has_decoder) {
    std::string out;
    for (size_t i = 0; i < tokens.size(); ++i) out += (i ? " " : "") + tokens[i];
    return out;
  }
  for (const DecoderStep &d : m.decoders) tokens = d.apply(std::move(tokens));
  std::string out;
  for (const std::string &t : tokens) out += t;
  return out;
}

int64_t Tokenizer::vocab_size() const { return static_cast<int64_t>(impl_->id_to_token.size()); }

int32_t Tokenizer::token_id(const std::string &token) const {
  for (const AddedToken &a : impl_->added) {
    if (a.content == token) return a.id;
  }
  return impl_->bpe.find(token);
}

std::string Tokenizer::id_to_token(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= impl_->id_to_token.size()) return "";
  return impl_->id_to_token[id];
}

}  // namespace gptqtool
