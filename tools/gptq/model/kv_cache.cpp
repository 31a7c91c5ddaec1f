#include "model/kv_cache.h"

#include <algorithm>
#include <string>

#include "common/checked_size.h"
#include "common/interrupt.h"

namespace gptqtool {

const char *kv_dtype_name(KvDType dtype) { return dtype == KvDType::BF16 ? "bf16" : "f32"; }

KvCache::KvCache(const LlamaConfig &c, int64_t slots, int64_t capacity, KvDType dtype)
    : layers_(c.num_hidden_layers),
      slots_(slots),
      capacity_(capacity),
      kv_heads_(c.num_key_value_heads),
      head_dim_(c.head_dim),
      key_positions_((capacity + kKeyBlock - 1) / kKeyBlock * kKeyBlock),
      dtype_(dtype) {
  if (slots < 1 || capacity < 1) throw ToolError("internal: a KV cache needs slots and capacity");
  // Zero-filled: the padding positions past a slot's length are read (and
  // their scores dropped), so they must hold numbers (bfloat16 zero is 0).
  const size_t key_elements =
      checked_elements({layers_, slots_, kv_heads_, head_dim_, key_positions_}, "KV cache");
  const size_t value_elements =
      checked_elements({layers_, slots_, kv_heads_, capacity_, head_dim_}, "KV cache");
  if (dtype == KvDType::BF16) {
    k16_.resize(key_elements);
    v16_.resize(value_elements);
  } else {
    k32_.resize(key_elements);
    v32_.resize(value_elements);
  }
  lengths_.assign(static_cast<size_t>(slots_), 0);
}

void KvCache::reset(int64_t slot) { lengths_[static_cast<size_t>(slot)] = 0; }

template <>
KvCache::Storage<float> &KvCache::storage<float>(bool keys) {
  if (dtype_ != KvDType::F32) throw ToolError("internal: a bfloat16 KV cache read as float32");
  return keys ? k32_ : v32_;
}

template <>
KvCache::Storage<uint16_t> &KvCache::storage<uint16_t>(bool keys) {
  if (dtype_ != KvDType::BF16) throw ToolError("internal: a float32 KV cache read as bfloat16");
  return keys ? k16_ : v16_;
}

template <typename Elem>
Elem *KvCache::keys(int64_t layer, int64_t slot, int64_t head) {
  return storage<Elem>(true).data() +
         ((layer * slots_ + slot) * kv_heads_ + head) * head_dim_ * key_positions_;
}

template <typename Elem>
Elem *KvCache::values(int64_t layer, int64_t slot, int64_t head) {
  return storage<Elem>(false).data() +
         ((layer * slots_ + slot) * kv_heads_ + head) * capacity_ * head_dim_;
}

template float *KvCache::keys<float>(int64_t, int64_t, int64_t);
template uint16_t *KvCache::keys<uint16_t>(int64_t, int64_t, int64_t);
template float *KvCache::values<float>(int64_t, int64_t, int64_t);
template uint16_t *KvCache::values<uint16_t>(int64_t, int64_t, int64_t);

void KvCache::advance(int64_t slot, int64_t tokens) { lengths_[static_cast<size_t>(slot)] += tokens; }

int64_t KvCache::bytes() const {
  return static_cast<int64_t>((k32_.size() + v32_.size()) * sizeof(float) +
                              (k16_.size() + v16_.size()) * sizeof(uint16_t));
}

std::vector<float> cached_forward(const LlamaModel &model, const Rope &rope, KvCache *cache,
                                  const std::vector<int32_t> &ids, const CacheStep &step,
                                  LogitRows rows) {
  std::vector<float> logits;
  cached_forward(model, rope, cache, ids, step, rows, &logits);
  return logits;
}

void cached_forward(const LlamaModel &model, const Rope &rope, KvCache *cache,
                    const std::vector<int32_t> &ids, const CacheStep &step, LogitRows rows,
                    std::vector<float> *logits) {
  const LlamaConfig &c = model.config;
  const SequenceBatch &batch = step.batch;
  if (static_cast<int64_t>(step.slots.size()) != batch.sequences() ||
      static_cast<int64_t>(ids.size()) != batch.tokens()) {
    throw ToolError("internal: a cache step's slots, sequences and ids disagree");
  }
  std::vector<bool> seen(static_cast<size_t>(cache->slots()), false);
  for (int64_t s = 0; s < batch.sequences(); ++s) {
    const int64_t slot = step.slots[static_cast<size_t>(s)];
    if (slot < 0 || slot >= cache->slots() || seen[static_cast<size_t>(slot)]) {
      throw ToolError("internal: a cache step names a slot twice or one that does not exist");
    }
    seen[static_cast<size_t>(slot)] = true;
    const int64_t end = cache->length(slot) + batch.starts[s + 1] - batch.starts[s];
    if (end > cache->capacity() || end > rope.max_positions()) {
      throw ToolError("a sequence of " + std::to_string(end) + " tokens is longer than the " +
                      std::to_string(std::min(cache->capacity(), rope.max_positions())) +
                      " positions it was given room for");
    }
  }
  std::vector<float> h = embed_tokens(model, ids);
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    throw_if_interrupted();
    const LlamaBlock &block = model.blocks[static_cast<size_t>(l)];
    block_forward(c, block, batch.tokens(), h.data(), [&](const float *x, float *out) {
      attention_cached(c, rope, block, l, cache, step, x, out);
    });
  }
  for (int64_t s = 0; s < batch.sequences(); ++s) {
    cache->advance(step.slots[static_cast<size_t>(s)], batch.starts[s + 1] - batch.starts[s]);
  }

  const int64_t hidden = c.hidden_size;
  int64_t out_rows = batch.tokens();
  if (rows == LogitRows::Last) {
    // Only each sequence's last token is normed and projected: lm_head is the
    // largest matrix of a small model, and a prompt's other rows are unused.
    out_rows = batch.sequences();
    std::vector<float> last(checked_elements({out_rows, hidden}, "hidden states"));
    for (int64_t s = 0; s < out_rows; ++s) {
      std::copy_n(&h[static_cast<size_t>((batch.starts[s + 1] - 1) * hidden)], hidden,
                  &last[static_cast<size_t>(s * hidden)]);
    }
    h.swap(last);
  }
  std::vector<float> x(h.size());
  rms_norm(h.data(), model.final_norm, out_rows, hidden, c.rms_norm_eps, x.data());
  logits->resize(checked_elements({out_rows, c.vocab_size}, "logits"));
  project_logits(model, x.data(), out_rows, logits->data());
}

}  // namespace gptqtool
