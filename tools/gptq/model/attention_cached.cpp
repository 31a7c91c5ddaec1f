// attention_cached (declared in kv_cache.h): the new tokens' queries, keys
// and values are computed together, the keys and values appended to each
// sequence's cache, and each (sequence, head, block of query rows) attends
// to its sequence's stored keys, spread over the cores. With an empty cache
// and whole sequences it computes what attention_core computes.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "common/checked_size.h"
#include "model/decode_attention.h"
#include "model/kv_cache.h"
#include "model/parallel.h"
#include "model/vector_math.h"

namespace gptqtool {

namespace {

// Query rows per task (as in attention.cpp).
constexpr int64_t kRowBlock = 64;

// Below this many multiply-adds a step's attention runs in the calling
// thread: one decoded token over a short context is a few microseconds of
// work per head, about what handing a task to the kept threads costs. At a
// single sequence's decode step that is a context of under about 60
// positions for SmolLM2 (3 key/value heads of 3 query heads, 64 wide);
// beyond it the split pays (bench/RESULTS.md, "Batch-1 decode attention
// split over the threads").
constexpr int64_t kSerialWork = 1 << 16;

// Query rows [r0, r1) of the new tokens of one sequence, for heads
// [head, head + heads): one head, or, for a sequence's single decoded token,
// all the query heads that share a key/value head (attend_decoded_token).
struct Task {
  int64_t seq, head, heads, r0, r1;
};

// n values into the cache's element type (bfloat16 rounded to nearest
// even; a finite value beyond bfloat16's range, above 3.39e38, becomes
// infinity as it would in float32 arithmetic a step later).
void store_as(const float *x, int64_t n, float *dst) { std::copy_n(x, n, dst); }
GPTQ_VECTOR_CLONES void store_as(const float *x, int64_t n, uint16_t *dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] = narrow_to_bf16(x[i]);
}

// A new key (head_dim values) at position `pos` of a sequence's key blocks
// (KvCache::key_index): dimension d goes kKeyBlock elements after d - 1.
template <typename Elem>
void store_key(const float *key, int64_t hd, int64_t pos, Elem *keys) {
  constexpr int64_t kChunk = 64;
  Elem narrowed[kChunk];
  Elem *at = keys + KvCache::key_index(hd, 0, pos);
  for (int64_t d0 = 0; d0 < hd; d0 += kChunk) {
    const int64_t n = std::min(kChunk, hd - d0);
    store_as(key + d0, n, narrowed);
    for (int64_t d = 0; d < n; ++d) at[(d0 + d) * kKeyBlock] = narrowed[d];
  }
}

// The rest of attention_cached once q, k and v are computed (tokens × q_dim,
// tokens × kv_dim): RoPE, the new keys and values into the cache, attention.
template <typename Elem>
void attend_with_cache(const LlamaConfig &c, const Rope &rope, const LlamaBlock &block,
                       int64_t layer, KvCache *cache, const CacheStep &step, float *q, float *k,
                       const float *v, float *out) {
  const SequenceBatch &batch = step.batch;
  const int64_t tokens = batch.tokens();
  const int64_t hd = c.head_dim;
  const int64_t heads = c.num_attention_heads, kv_heads = c.num_key_value_heads;
  const int64_t q_dim = c.q_dim(), kv_dim = c.kv_dim();
  // RoPE at each sequence's positions, then its keys and values into the
  // cache after those it holds: a sequence's new tokens' here, before any
  // attends; a single decoded token's in its attention tasks, each of which
  // rotates and stores what belongs to its key/value head, so that a decode
  // step has no pass over the batch outside its threads.
  const int64_t sequences = batch.sequences();
  const int64_t group = heads / kv_heads;
  const Rope &layer_rope = rope.for_layer(block.local_rope);
  auto place_head = [&](int64_t s, int64_t g) {
    const int64_t t0 = batch.starts[s], n = batch.starts[s + 1] - t0;
    const int64_t slot = step.slots[static_cast<size_t>(s)];
    const int64_t past = cache->length(slot);
    for (int64_t r = 0; r < n; ++r) {
      layer_rope.apply(q + (t0 + r) * q_dim + g * group * hd, 1, group, past + r);
      layer_rope.apply(k + (t0 + r) * kv_dim + g * hd, 1, 1, past + r);
    }
    Elem *kt = cache->keys<Elem>(layer, slot, g);
    Elem *vg = cache->values<Elem>(layer, slot, g) + past * hd;
    for (int64_t r = 0; r < n; ++r) {
      store_key(k + (t0 + r) * kv_dim + g * hd, hd, past + r, kt);
      store_as(v + (t0 + r) * kv_dim + g * hd, hd, vg + r * hd);
    }
  };
  auto place = [&](int64_t s, int) {
    if (batch.starts[s + 1] - batch.starts[s] == 1) return;  // placed by its tasks
    for (int64_t g = 0; g < kv_heads; ++g) place_head(s, g);
  };
  if (tokens < kRowBlock) {
    for (int64_t s = 0; s < sequences; ++s) place(s, 0);
  } else {
    parallel_for(sequences, place);
  }

  std::vector<Task> work;
  for (int64_t s = 0; s < sequences; ++s) {
    const int64_t n = batch.starts[s + 1] - batch.starts[s];
    if (n == 1) {
      for (int64_t g = 0; g < kv_heads; ++g) work.push_back({s, g * group, group, 0, 1});
      continue;
    }
    for (int64_t r0 = 0; r0 < n; r0 += kRowBlock) {
      for (int64_t h = 0; h < heads; ++h)
        work.push_back({s, h, 1, r0, std::min(r0 + kRowBlock, n)});
    }
  }
  // The longest key spans first, so the cores finish together.
  auto span = [&](const Task &t) {
    return cache->length(step.slots[static_cast<size_t>(t.seq)]) + t.r1;
  };
  std::stable_sort(work.begin(), work.end(),
                   [&](const Task &a, const Task &b) { return span(a) > span(b); });

  const float scale = static_cast<float>(
      c.attn_scale > 0 ? c.attn_scale : 1.0 / std::sqrt(static_cast<double>(hd)));
  const auto cap = static_cast<float>(c.attn_softcap);
  const int64_t window = block.sliding_window;
  std::vector<std::vector<float>> scores(static_cast<size_t>(worker_count()));
  // A prefill task's keys (and a bfloat16 cache's values) as float32 for
  // sgemm: [hd, width] and [width, hd].
  std::vector<std::vector<float>> widened(static_cast<size_t>(worker_count()));
  int64_t total_work = 0;
  for (const Task &t : work) total_work += (t.r1 - t.r0) * t.heads * span(t) * 2 * hd;
  auto attend = [&](int64_t i, int worker) {
    const Task &t = work[static_cast<size_t>(i)];
    const int64_t slot = step.slots[static_cast<size_t>(t.seq)];
    const int64_t t0 = batch.starts[t.seq];
    const int64_t past = cache->length(slot);
    const int64_t g = t.head / group;
    // Query row r sits at position past + r and sees keys up to it (and,
    // with a window, none older than window - 1 positions before it).
    const int64_t first_pos = past + t.r0, last_pos = past + t.r1 - 1;
    const int64_t keys_lo = window > 0 ? std::max<int64_t>(0, first_pos - window + 1) : 0;
    const int64_t rows = t.r1 - t.r0, width = last_pos + 1 - keys_lo;
    const Elem *kt = cache->keys<Elem>(layer, slot, g);
    const Elem *values = cache->values<Elem>(layer, slot, g);
    std::vector<float> &p = scores[static_cast<size_t>(worker)];
    if (batch.starts[t.seq + 1] - t0 == 1) {  // a decoded token: tasks by key/value head
      place_head(t.seq, g);
      p.resize(static_cast<size_t>(decoded_token_scores(t.heads, keys_lo, last_pos)));
      const float *qt = q + t0 * q_dim + t.head * hd;
      float *ot = out + t0 * q_dim + t.head * hd;
      attend_decoded_token(qt, t.heads, hd, kt, values, keys_lo, last_pos, scale, cap, p.data(),
                           ot);
      return;
    }
    // Keys from position keys_lo on as a float32 [hd, width] matrix for
    // sgemm, gathered from their blocks; values as float32 [width, hd] (a
    // float32 cache's where they lie).
    std::vector<float> &w = widened[static_cast<size_t>(worker)];
    w.resize(static_cast<size_t>((std::is_same_v<Elem, float> ? 1 : 2) * hd * width));
    float *keys_f = w.data();
    for (int64_t j = keys_lo; j < keys_lo + width;) {
      const int64_t run = std::min(kKeyBlock - j % kKeyBlock, keys_lo + width - j);
      for (int64_t d = 0; d < hd; ++d) {
        const Elem *from = kt + KvCache::key_index(hd, d, j);
        float *to = keys_f + d * width + (j - keys_lo);
        for (int64_t i = 0; i < run; ++i) to[i] = widen(from[i]);
      }
      j += run;
    }
    const float *values_f = nullptr;
    if constexpr (std::is_same_v<Elem, float>) {
      values_f = values + keys_lo * hd;
    } else {
      float *to = w.data() + hd * width;
      for (int64_t i = 0; i < width * hd; ++i) to[i] = widen(values[keys_lo * hd + i]);
      values_f = to;
    }
    p.resize(static_cast<size_t>(rows * width));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(rows),
                static_cast<int>(width), static_cast<int>(hd), scale,
                q + (t0 + t.r0) * q_dim + t.head * hd, static_cast<int>(q_dim), keys_f,
                static_cast<int>(width), 0.0f, p.data(), static_cast<int>(width));
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t pos = first_pos + r;
      const int64_t lo = window > 0 ? std::max<int64_t>(0, pos - window + 1) : 0;
      float *row = p.data() + r * width;
      const int64_t a = lo - keys_lo, b = pos - keys_lo, n = b - a + 1;
      float *vis = row + a;
      if (cap > 0) soft_cap(vis, n, cap);
      const float mx = max_of(vis, n);
      for (int64_t j = 0; j < n; ++j) vis[j] = fast_exp(vis[j] - mx);
      const auto inv = static_cast<float>(1.0 / sum_of(vis, n));
      for (int64_t j = 0; j < n; ++j) vis[j] *= inv;
      std::fill(row, vis, 0.0f);
      std::fill(row + b + 1, row + width, 0.0f);
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(rows),
                static_cast<int>(hd), static_cast<int>(width), 1.0f, p.data(),
                static_cast<int>(width), values_f, static_cast<int>(hd), 0.0f,
                out + (t0 + t.r0) * q_dim + t.head * hd, static_cast<int>(q_dim));
  };
  if (total_work < kSerialWork) {
    for (int64_t i = 0; i < static_cast<int64_t>(work.size()); ++i) attend(i, 0);
  } else {
    parallel_for(static_cast<int64_t>(work.size()), attend);
  }
}

}  // namespace

void attention_cached(const LlamaConfig &c, const Rope &rope, const LlamaBlock &block,
                      int64_t layer, KvCache *cache, const CacheStep &step, const float *x,
                      float *out) {
  const int64_t tokens = step.batch.tokens();
  const int64_t q_dim = c.q_dim(), kv_dim = c.kv_dim();
  // Kept between calls, only growing (see attention.cpp).
  thread_local std::vector<float> q_buffer, k_buffer, v_buffer;
  q_buffer.resize(checked_elements({tokens, q_dim}, "attention buffer"));
  k_buffer.resize(checked_elements({tokens, kv_dim}, "attention buffer"));
  v_buffer.resize(k_buffer.size());
  float *q = q_buffer.data(), *k = k_buffer.data(), *v = v_buffer.data();
  qkv_projections(c, block, x, tokens, q, k, v);
  head_norms(c, block, q, k, tokens);
  if (cache->dtype() == KvDType::BF16) {
    attend_with_cache<uint16_t>(c, rope, block, layer, cache, step, q, k, v, out);
  } else {
    attend_with_cache<float>(c, rope, block, layer, cache, step, q, k, v, out);
  }
}

}  // namespace gptqtool
