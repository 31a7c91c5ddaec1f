// The Hugging Face tokenizer pipeline, re-done for the subset that causal LM
// checkpoints use (see tokenizer.h for the list): this file reads
// tokenizer.json into the parts below and runs them. In the order of
// encoding:
//
//   added tokens  → normalizer → added tokens (normalized ones) →
//   pre-tokenizer → BPE model,      and ids → tokens → decoder.
//
// The parts, in namespace gptqtool::tok:
//   tokenizer_utf8           UTF-8 decoding, encoding, lossy conversion
//   tokenizer_chars          characters and their Unicode classes
//   tokenizer_split          pieces, spans, split behaviours, literal patterns
//   tokenizer_split_regex    the GPT-2 / Llama-3 / Qwen2 regexes, by hand
//   tokenizer_byte_map       GPT-2's byte-to-unicode map
//   tokenizer_normalizer     normalizers
//   tokenizer_pre_tokenizer  pre-tokenizers
//   tokenizer_bpe            the BPE model
//   tokenizer_added_tokens   added tokens and cutting them out of text
//   tokenizer_decoder        decoders
//   tokenizer_json_reader    checked access to tokenizer.json fields
//
// Every rule that decides where text is cut mirrors the reference library's
// behaviour, because one different cut changes ids and therefore the
// calibration data; where the code knowingly differs it says so.
#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>
#include <unordered_map>
#include <utility>

#include <nlohmann/json.hpp>

#include "common/interrupt.h"
#include "common/tool_error.h"
#include "tokenizer/tokenizer_added_tokens.h"
#include "tokenizer/tokenizer_bpe.h"
#include "tokenizer/tokenizer_decoder.h"
#include "tokenizer/tokenizer_json_reader.h"
#include "tokenizer/tokenizer_normalizer.h"
#include "tokenizer/tokenizer_pre_tokenizer.h"
#include "tokenizer/tokenizer_split.h"
#include "tokenizer/tokenizer_split_regex.h"

namespace gptqtool {

using nlohmann::json;
using tok::AddedMatcher;
using tok::AddedToken;
using tok::Bpe;
using tok::DecoderStep;
using tok::Normalizer;
using tok::Piece;
using tok::PreTokenizer;
using tok::Reader;
using tok::Segment;
using tok::SplitBehavior;
using tok::SplitRegex;

namespace {

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
    for (size_t k = 0; k < pieces.size(); ++k) {
      if (k % 4096 == 0) throw_if_interrupted();
      encode_piece(pieces[k].text, out);
    }
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
      if (pattern == tok::kGpt2Pattern) {
        pt.regex = SplitRegex::kGpt2;
      } else if (pattern == tok::kLlama3Pattern) {
        pt.regex = SplitRegex::kLlama3;
      } else if (pattern == tok::kQwen2Pattern) {
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
    const int64_t start = r.integer(r.member(d, "start", where), 0, INT64_MAX, where + ".start");
    const int64_t stop = r.integer(r.member(d, "stop", where), 0, INT64_MAX, where + ".stop");
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
    bpe.merges[tok::pair_key(ia, ib)] = {rank++, inew};
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
