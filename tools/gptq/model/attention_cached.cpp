// attention_cached (declared in kv_cache.h): the new tokens' queries, keys
// and values are computed together, the keys and values appended to each
// sequence's cache, and each (sequence, head, block of query rows) attends
// to its sequence's stored keys, spread over the cores. With an empty cache
// and whole sequences it computes what attention_core computes.
#include <cblas.h>

#include <algorithm>
#include <cmath>

#include "common/checked_size.h"
#include "model/kv_cache.h"
#include "model/parallel.h"
#include "model/vector_math.h"

namespace gptqtool {

namespace {

// Query rows per task (as in attention.cpp).
constexpr int64_t kRowBlock = 64;

// Below this many multiply-adds a step's attention runs in the calling
// thread: one decoded token over a short context is a few microseconds of
// work per head, less than starting a thread for it.
constexpr int64_t kSerialWork = 1 << 19;

// Query rows [r0, r1) of the new tokens of one sequence, for one head.
struct Task {
  int64_t seq, head, r0, r1;
};

}  // namespace

void attention_cached(const LlamaConfig &c, const Rope &rope, const LlamaBlock &block,
                      int64_t layer, KvCache *cache, const CacheStep &step, const float *x,
                      float *out) {
  const SequenceBatch &batch = step.batch;
  const int64_t tokens = batch.tokens();
  const int64_t hd = c.head_dim;
  const int64_t heads = c.num_attention_heads, kv_heads = c.num_key_value_heads;
  const int64_t q_dim = c.q_dim(), kv_dim = c.kv_dim();
  // Kept between calls, only growing (see attention.cpp).
  thread_local std::vector<float> q_buffer, k_buffer, v_buffer;
  q_buffer.resize(checked_elements({tokens, q_dim}, "attention buffer"));
  k_buffer.resize(checked_elements({tokens, kv_dim}, "attention buffer"));
  v_buffer.resize(k_buffer.size());
  float *q = q_buffer.data(), *k = k_buffer.data(), *v = v_buffer.data();
  qkv_projections(c, block, x, tokens, q, k, v);
  head_norms(c, block, q, k, tokens);

  // RoPE at each sequence's positions, then its keys and values into the
  // cache after those it holds.
  const int64_t sequences = batch.sequences();
  const Rope &layer_rope = rope.for_layer(block.local_rope);
  auto place = [&](int64_t s, int) {
    const int64_t t0 = batch.starts[s], n = batch.starts[s + 1] - t0;
    const int64_t slot = step.slots[static_cast<size_t>(s)];
    const int64_t past = cache->length(slot);
    layer_rope.apply(q + t0 * q_dim, n, heads, past);
    layer_rope.apply(k + t0 * kv_dim, n, kv_heads, past);
    std::copy_n(k + t0 * kv_dim, n * kv_dim, cache->keys(layer, slot) + past * kv_dim);
    std::copy_n(v + t0 * kv_dim, n * kv_dim, cache->values(layer, slot) + past * kv_dim);
  };
  if (tokens < kRowBlock) {
    for (int64_t s = 0; s < sequences; ++s) place(s, 0);
  } else {
    parallel_for(sequences, place);
  }

  std::vector<Task> work;
  for (int64_t s = 0; s < sequences; ++s) {
    const int64_t n = batch.starts[s + 1] - batch.starts[s];
    for (int64_t r0 = 0; r0 < n; r0 += kRowBlock) {
      for (int64_t h = 0; h < heads; ++h) work.push_back({s, h, r0, std::min(r0 + kRowBlock, n)});
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
  const int64_t group = heads / kv_heads;
  const int64_t window = block.sliding_window;
  std::vector<std::vector<float>> scores(static_cast<size_t>(worker_count()));
  int64_t total_work = 0;
  for (const Task &t : work) total_work += (t.r1 - t.r0) * span(t) * 2 * hd;
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
    const float *keys = cache->keys(layer, slot), *values = cache->values(layer, slot);
    std::vector<float> &p = scores[static_cast<size_t>(worker)];
    p.resize(static_cast<size_t>(rows * width));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows),
                static_cast<int>(width), static_cast<int>(hd), scale,
                q + (t0 + t.r0) * q_dim + t.head * hd, static_cast<int>(q_dim),
                keys + keys_lo * kv_dim + g * hd, static_cast<int>(kv_dim), 0.0f, p.data(),
                static_cast<int>(width));
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
                static_cast<int>(width), values + keys_lo * kv_dim + g * hd,
                static_cast<int>(kv_dim), 0.0f, out + (t0 + t.r0) * q_dim + t.head * hd,
                static_cast<int>(q_dim));
  };
  if (total_work < kSerialWork) {
    for (int64_t i = 0; i < static_cast<int64_t>(work.size()); ++i) attend(i, 0);
  } else {
    parallel_for(static_cast<int64_t>(work.size()), attend);
  }
}

}  // namespace gptqtool
