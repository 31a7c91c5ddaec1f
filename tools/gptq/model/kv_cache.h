// Incremental decoding: the keys and values every block has computed for the
// tokens a sequence has seen so far, so that each new token costs one pass
// over the weights and attends to the stored keys instead of recomputing the
// whole prefix.
//
// A cache has a fixed number of slots (one sequence each) and a capacity in
// positions per slot, all allocated up front. A step feeds any subset of the
// slots with any number of new tokens each (a whole prompt, or one generated
// token), in one forward pass: the linear layers run on all the step's
// tokens together, attention runs per sequence over its stored keys. Keys are
// stored after RoPE, at the positions they were computed for.
//
// Keys and values are float32 by default, or bfloat16 on request: half the
// memory, and half the bytes a decoded token's attention reads, which is
// what a batch's decode step waits on once the cache outgrows the CPU's
// caches. Rounding them to bfloat16 (nearest even) changes logits by about
// the format's precision, 2^-9 relative; the model's own weights and every
// other activation stay float32.
#pragma once

#include <cstdint>
#include <vector>

#include "common/huge_page_allocator.h"
#include "model/llama_forward.h"

namespace gptqtool {

// Positions per block of stored keys (see KvCache::keys): a whole number of
// vectors of floats, and a block's row for one dimension is a cache line of
// bfloat16 (two of float32).
constexpr int64_t kKeyBlock = 32;

// How keys and values are stored.
enum class KvDType { F32, BF16 };
// "f32" or "bf16", as the tool's --kv-cache option spells them.
const char *kv_dtype_name(KvDType dtype);

class KvCache {
 public:
  KvCache(const LlamaConfig &config, int64_t slots, int64_t capacity,
          KvDType dtype = KvDType::F32);

  KvDType dtype() const { return dtype_; }

  int64_t slots() const { return slots_; }
  int64_t capacity() const { return capacity_; }
  // Tokens stored for a slot so far.
  int64_t length(int64_t slot) const { return lengths_[static_cast<size_t>(slot)]; }
  // Forgets a slot's tokens, so a new sequence can use it.
  void reset(int64_t slot);

  // Keys of block `layer`, key/value head `head`, for a slot, in blocks of
  // kKeyBlock positions: [ceil(capacity / kKeyBlock), head_dim, kKeyBlock],
  // a block holding dimension d of its positions in its row d (key_index).
  // A decoded token's scores against a block are whole-vector multiply-adds
  // (no sum across a vector per key) over one contiguous stretch of memory,
  // and the blocks of a sequence's stored positions lie one after another,
  // so a step's reads are a few long runs the CPU's prefetchers follow.
  // Elem is float for an F32 cache and uint16_t (bfloat16 bits) for a BF16
  // one; asking for the other type is an internal error.
  template <typename Elem>
  Elem *keys(int64_t layer, int64_t slot, int64_t head);
  // Where dimension d of position j lies in keys().
  static int64_t key_index(int64_t head_dim, int64_t d, int64_t j) {
    return (j / kKeyBlock * head_dim + d) * kKeyBlock + j % kKeyBlock;
  }
  // Values of block `layer`, key/value head `head`, for a slot:
  // [capacity, head_dim]. Elem as for keys().
  template <typename Elem>
  Elem *values(int64_t layer, int64_t slot, int64_t head);

  // Called once a step has run through every block.
  void advance(int64_t slot, int64_t tokens);

  // Bytes held by the keys and values.
  int64_t bytes() const;

 private:
  // On huge pages: a batch's decode step reads every sequence's cache once.
  template <typename Elem>
  using Storage = HugePageVector<Elem>;
  template <typename Elem>
  Storage<Elem> &storage(bool keys);

  int64_t layers_, slots_, capacity_, kv_heads_, head_dim_;
  int64_t key_positions_;  // the capacity rounded up to whole blocks of keys
  KvDType dtype_;
  // Those of the cache's dtype hold the data; the other pair stays empty.
  Storage<float> k32_, v32_;
  Storage<uint16_t> k16_, v16_;  // bfloat16 bits
  // keys: [layers, slots, kv_heads, key_positions / kKeyBlock, head_dim, kKeyBlock]
  // values: [layers, slots, kv_heads, capacity, head_dim]
  std::vector<int64_t> lengths_;
};

extern template float *KvCache::keys<float>(int64_t, int64_t, int64_t);
extern template uint16_t *KvCache::keys<uint16_t>(int64_t, int64_t, int64_t);
extern template float *KvCache::values<float>(int64_t, int64_t, int64_t);
extern template uint16_t *KvCache::values<uint16_t>(int64_t, int64_t, int64_t);

// One step: sequence s of `batch` (tokens [starts[s], starts[s+1]) of the
// step's ids) continues the sequence stored in cache slot slots[s]; a slot
// appears at most once.
struct CacheStep {
  std::vector<int64_t> slots;
  SequenceBatch batch;
};

// Which logits a cached forward pass returns.
enum class LogitRows {
  All,   // [tokens, vocab]: every new token's
  Last,  // [sequences, vocab]: each sequence's last new token's (what decoding needs)
};

// Runs the step's new tokens through the model, reading and extending the
// cache (each slot's length grows by its new tokens), and returns logits.
// Positions continue each slot's stored length; a step that would pass the
// cache's capacity or the RoPE table is refused before anything changes.
std::vector<float> cached_forward(const LlamaModel &model, const Rope &rope, KvCache *cache,
                                  const std::vector<int32_t> &ids, const CacheStep &step,
                                  LogitRows rows);
// The same into *logits, resized to fit: a decode loop that passes one
// vector every step has its logits written where the last step's were,
// rather than allocated and zeroed anew.
void cached_forward(const LlamaModel &model, const Rope &rope, KvCache *cache,
                    const std::vector<int32_t> &ids, const CacheStep &step, LogitRows rows,
                    std::vector<float> *logits);

// Attention of a block for a cached step, up to (not including) o_proj:
// like attention_core, with keys and values of earlier tokens read from the
// cache and the new ones written to it at positions length .. length+n-1.
// (In attention_cached.cpp.)
void attention_cached(const LlamaConfig &config, const Rope &rope, const LlamaBlock &block,
                      int64_t layer, KvCache *cache, const CacheStep &step, const float *x,
                      float *out);

}  // namespace gptqtool
