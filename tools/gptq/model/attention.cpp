// attention_core (declared in llama_forward.h): causal grouped-query
// attention computed by blocks of query rows, so that of each [len, len]
// score matrix only the blocks on or below the diagonal are formed (about
// half the products of the whole square), with the blocks of every
// (sequence, head) spread over the cores.
#include <cblas.h>

#include <algorithm>
#include <cmath>

#include "common/checked_size.h"
#include "model/llama_forward.h"
#include "model/parallel.h"
#include "model/vector_math.h"

namespace gptqtool {

namespace {

// Query rows per task: small enough that the wasted upper half of the
// diagonal block is little and that tasks balance over the cores, large
// enough for sgemm to run near its peak.
constexpr int64_t kRowBlock = 64;

// Softmax of one row of scores over its visible columns [lo, hi]; the
// other columns of the row's `width` become 0.
void masked_softmax_row(float *row, int64_t width, int64_t lo, int64_t hi) {
  const int64_t n = hi - lo + 1;
  float *v = row + lo;
  const float mx = max_of(v, n);
  for (int64_t j = 0; j < n; ++j) v[j] = fast_exp(v[j] - mx);
  const auto inv = static_cast<float>(1.0 / sum_of(v, n));
  for (int64_t j = 0; j < n; ++j) v[j] *= inv;
  std::fill(row, v, 0.0f);
  std::fill(row + hi + 1, row + width, 0.0f);
}

// Query rows [r0, r1) of one head of one sequence.
struct RowBlock {
  int64_t t0;  // the sequence's first token in the batch
  int64_t head;
  int64_t r0, r1;
  int64_t keys_lo;  // first key any of the rows can see
};

}  // namespace

void attention_core(const LlamaConfig &c, const Rope &rope, const LlamaBlock &block,
                    const float *x, const SequenceBatch &batch, float *out) {
  const int64_t tokens = batch.tokens();
  const int64_t hd = c.head_dim;
  const int64_t heads = c.num_attention_heads, kv_heads = c.num_key_value_heads;
  const int64_t q_dim = c.q_dim(), kv_dim = c.kv_dim();
  // Kept between calls (only ever growing): every block needs the same
  // sizes, and fresh vectors would be page-faulted in anew each time.
  // (The worker threads below must reach them through these pointers: by
  // name they would see their own, empty, thread_locals.)
  thread_local std::vector<float> q_buffer, k_buffer, v_buffer;
  q_buffer.resize(checked_elements({tokens, q_dim}, "attention buffer"));
  k_buffer.resize(checked_elements({tokens, kv_dim}, "attention buffer"));
  v_buffer.resize(k_buffer.size());
  float *q = q_buffer.data(), *k = k_buffer.data(), *v = v_buffer.data();
  qkv_projections(c, block, x, tokens, q, k, v);
  head_norms(c, block, q, k, tokens);

  // RoPE on q and k, by blocks of positions of each sequence.
  std::vector<RowBlock> spans;
  for (int64_t s = 0; s < batch.sequences(); ++s) {
    const int64_t t0 = batch.starts[s], len = batch.starts[s + 1] - t0;
    for (int64_t r0 = 0; r0 < len; r0 += kRowBlock) {
      spans.push_back({t0, 0, r0, std::min(r0 + kRowBlock, len), 0});
    }
  }
  const Rope &layer_rope = rope.for_layer(block.local_rope);
  parallel_for(static_cast<int64_t>(spans.size()), [&](int64_t i, int) {
    const RowBlock &b = spans[static_cast<size_t>(i)];
    layer_rope.apply(q + (b.t0 + b.r0) * q_dim, b.r1 - b.r0, heads, b.r0);
    layer_rope.apply(k + (b.t0 + b.r0) * kv_dim, b.r1 - b.r0, kv_heads, b.r0);
  });

  // Every (row block, head), the widest first so the cores finish together.
  std::vector<RowBlock> work;
  for (const RowBlock &span : spans) {
    int64_t lo = 0;
    if (block.sliding_window > 0) lo = std::max<int64_t>(0, span.r0 - block.sliding_window + 1);
    for (int64_t h = 0; h < heads; ++h) work.push_back({span.t0, h, span.r0, span.r1, lo});
  }
  std::stable_sort(work.begin(), work.end(), [](const RowBlock &a, const RowBlock &b) {
    return a.r1 - a.keys_lo > b.r1 - b.keys_lo;
  });

  const float scale = static_cast<float>(
      c.attn_scale > 0 ? c.attn_scale : 1.0 / std::sqrt(static_cast<double>(hd)));
  const auto cap = static_cast<float>(c.attn_softcap);
  const int64_t group = heads / kv_heads;
  std::vector<std::vector<float>> scores(static_cast<size_t>(worker_count()));
  parallel_for(static_cast<int64_t>(work.size()), [&](int64_t i, int worker) {
    const RowBlock &b = work[static_cast<size_t>(i)];
    const int64_t g = b.head / group;
    const int64_t rows = b.r1 - b.r0, width = b.r1 - b.keys_lo;
    std::vector<float> &p = scores[static_cast<size_t>(worker)];
    p.resize(static_cast<size_t>(rows * width));
    // p = scale · Q_h K_gᵀ over the rows' queries and keys keys_lo .. r1-1.
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows),
                static_cast<int>(width), static_cast<int>(hd), scale,
                q + (b.t0 + b.r0) * q_dim + b.head * hd, static_cast<int>(q_dim),
                k + (b.t0 + b.keys_lo) * kv_dim + g * hd, static_cast<int>(kv_dim),
                0.0f, p.data(), static_cast<int>(width));
    for (int64_t r = b.r0; r < b.r1; ++r) {
      int64_t lo = 0;
      if (block.sliding_window > 0) lo = std::max<int64_t>(0, r - block.sliding_window + 1);
      float *row = p.data() + (r - b.r0) * width;
      if (cap > 0) soft_cap(row + (lo - b.keys_lo), r - lo + 1, cap);
      masked_softmax_row(row, width, lo - b.keys_lo, r - b.keys_lo);
    }
    // out_h = P · V_g
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(rows),
                static_cast<int>(hd), static_cast<int>(width), 1.0f, p.data(),
                static_cast<int>(width), v + (b.t0 + b.keys_lo) * kv_dim + g * hd,
                static_cast<int>(kv_dim), 0.0f, out + (b.t0 + b.r0) * q_dim + b.head * hd,
                static_cast<int>(q_dim));
  });
}

}  // namespace gptqtool
