// A model's own Hugging Face tokenizer (tokenizer.json), read and run in C++
// so that the tool can tokenize calibration and evaluation text exactly as
// the model was trained, without Python, PyTorch or the Rust `tokenizers`.
//
// encode() is meant to give the ids of `tokenizer.encode(text,
// add_special_tokens=False)`: added tokens are cut out first (longest match,
// honouring lstrip / rstrip / single_word / normalized), then each remaining
// piece is normalized, pre-tokenized and run through the BPE model. The
// fixtures of tests/tool/test_tokenizer.cpp hold the reference ids.
//
// Supported, and refused with a ToolError naming the part otherwise:
//   model          BPE (vocab + merges as "a b" strings or ["a", "b"] pairs;
//                  byte-level or not; byte_fallback, unk_token, fuse_unk,
//                  ignore_merges, continuing_subword_prefix,
//                  end_of_word_suffix). No dropout.
//   normalizer     null, NFC, Prepend, Replace (literal pattern), Sequence.
//                  NFC is applied as the identity: exact for text that is
//                  already NFC (almost all text in the wild; composed
//                  accents, CJK, emoji), not for decomposed accents.
//   pre_tokenizer  null, ByteLevel, Digits, Metaspace, Split (a literal
//                  pattern, or one of the GPT-2 / Llama-3 / Qwen2 regexes,
//                  recognised by their exact text and matched by hand),
//                  Sequence.
//   decoder        null, ByteLevel, Metaspace, Replace (literal), ByteFallback,
//                  Fuse, Strip, Sequence.
// Post-processors are ignored: encode() never adds BOS/EOS.
//
// Character classes (\p{L}, \p{N}, \s) come from unicode_tables.h (Unicode
// 14.0); bytes that are not valid UTF-8 are each one character of class
// "other" for the regexes, and byte-level models keep them exactly.
//
// Thread safety: a Tokenizer is immutable after from_file() except for an
// internal word cache guarded by a mutex, so one instance may be shared.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace gptqtool {

class Tokenizer {
 public:
  // Reads and checks tokenizer.json; throws ToolError naming the file and
  // what is missing, malformed or unsupported.
  static std::unique_ptr<Tokenizer> from_file(const std::string &tokenizer_json_path);
  // The same from the JSON text; `origin` names it in error messages.
  static std::unique_ptr<Tokenizer> from_json_text(const std::string &json_text,
                                                   const std::string &origin);

  ~Tokenizer();
  Tokenizer(const Tokenizer &) = delete;
  Tokenizer &operator=(const Tokenizer &) = delete;

  // Never adds BOS/EOS; matches HF `tokenizer.encode(text,
  // add_special_tokens=False)`. Any bytes are accepted (invalid UTF-8 too).
  // Works in memory: about 16 bytes per character of the text transiently,
  // and at most 4 GiB of text per call.
  std::vector<int32_t> encode(const std::string &utf8_text) const;

  // Special tokens are kept (transformers' default, skip_special_tokens=False).
  // Bytes that do not form UTF-8 become U+FFFD, as in HF. Ids out of range
  // are skipped.
  std::string decode(const std::vector<int32_t> &ids) const;

  // Max id + 1 over the vocabulary and the added tokens.
  int64_t vocab_size() const;

  // Id of a vocabulary or added token, -1 if absent (e.g. "<|endoftext|>").
  int32_t token_id(const std::string &token) const;

  // The token text of an id ("" if out of range), as stored in the file.
  std::string id_to_token(int32_t id) const;

  struct Impl;

 private:
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace gptqtool
