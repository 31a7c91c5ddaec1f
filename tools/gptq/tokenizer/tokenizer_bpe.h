// The BPE model (internal to tokenizer*.cpp): vocabulary, merges by rank,
// unknown-token and byte-fallback handling, and the merge loop that turns
// one pre-token into ids (HF's BPE::merge_word + Word::merge_all). The word
// cache in front of it lives in the tokenizer, which owns the mutex.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace gptqtool {
namespace tok {

struct MergeTarget {
  int32_t rank;
  int32_t new_id;
};

// The key of the merge of token a followed by token b.
inline uint64_t pair_key(int32_t a, int32_t b) {
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

  // unk_id, or a ToolError when the unk token is not in the vocabulary.
  int32_t need_unk() const;

  // One pre-token to ids (HF BPE::merge_word + Word::merge_all).
  void tokenize(const std::string &word, std::vector<int32_t> *out) const;

  // Applies the merges lowest rank first, leftmost first among equal ranks;
  // queue entries made stale by an earlier merge are skipped when popped.
  void merge(std::vector<int32_t> *ids) const;
};

}  // namespace tok
}  // namespace gptqtool
