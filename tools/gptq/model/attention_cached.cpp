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

// Query rows [r0, r1) of the new tokens of one sequence, for heads
// [head, head + heads): one head, or, for a sequence's single decoded token,
// all the query heads that share a key/value head (attend_one_token).
struct Task {
  int64_t seq, head, heads, r0, r1;
};

// A decoded token's attention for `heads` query heads that share a
// key/value head, its query rows q (stride hd) all at position pos:
// softmax(scale·q·kᵀ)·v over the keys of positions [lo, pos], into out
// (stride hd). kt: that head's keys transposed ([hd, stride], stride a
// multiple of kVectorLanes, see KvCache::keys); v: its values ([positions,
// hd]). scores: room for pos − lo + 2·kVectorLanes floats. A decode step
// holds thousands of these, each too small for sgemm to pay for its call.
GPTQ_VECTOR_CLONES void attend_one_token(const float *q, int64_t heads, int64_t hd,
                                         const float *kt, int64_t stride, const float *v,
                                         int64_t lo, int64_t pos, float scale, float cap,
                                         float *scores, float *out) {
  static_assert(kKeyBlock % kVectorLanes == 0, "key rows must hold whole vectors");
  // Scores for whole vectors of positions, from the one holding lo to the
  // one holding pos (within the padded rows); those outside [lo, pos] are
  // dropped.
  constexpr int64_t kLanes = kVectorLanes;
  const int64_t j0 = lo / kLanes * kLanes, j1 = (pos / kLanes + 1) * kLanes;
  const int64_t n = pos + 1 - lo;
  for (int64_t h = 0; h < heads; ++h) {
    const float *qh = q + h * hd;
    int64_t j = j0;
    // Four vectors of positions at a time, so that their sums over the
    // head dimension run side by side.
    for (; j + 4 * kLanes <= j1; j += 4 * kLanes) {
      FloatLanes s0 = {}, s1 = {}, s2 = {}, s3 = {};
      for (int64_t d = 0; d < hd; ++d) {
        const float qd = qh[d];
        const float *row = kt + d * stride + j;
        s0 += qd * lanes_at(row);
        s1 += qd * lanes_at(row + kLanes);
        s2 += qd * lanes_at(row + 2 * kLanes);
        s3 += qd * lanes_at(row + 3 * kLanes);
      }
      float *dst = scores + (j - j0);
      lanes_at(dst) = scale * s0;
      lanes_at(dst + kLanes) = scale * s1;
      lanes_at(dst + 2 * kLanes) = scale * s2;
      lanes_at(dst + 3 * kLanes) = scale * s3;
    }
    for (; j < j1; j += kLanes) {
      FloatLanes sum = {};
      for (int64_t d = 0; d < hd; ++d) sum += qh[d] * lanes_at(kt + d * stride + j);
      lanes_at(scores + (j - j0)) = scale * sum;
    }
    float *p = scores + (lo - j0);
    if (cap > 0) soft_cap(p, n, cap);
    const float mx = max_of(p, n);
    for (int64_t i = 0; i < n; ++i) p[i] = fast_exp(p[i] - mx);
    const auto inv = static_cast<float>(1.0 / sum_of(p, n));
    for (int64_t i = 0; i < n; ++i) p[i] *= inv;

    // Σ p_i·v_i, four vectors of columns at a time for the same reason.
    const float *vlo = v + lo * hd;
    float *oh = out + h * hd;
    int64_t d = 0;
    for (; d + 4 * kLanes <= hd; d += 4 * kLanes) {
      FloatLanes o0 = {}, o1 = {}, o2 = {}, o3 = {};
      for (int64_t i = 0; i < n; ++i) {
        const float *vi = vlo + i * hd + d;
        o0 += p[i] * lanes_at(vi);
        o1 += p[i] * lanes_at(vi + kLanes);
        o2 += p[i] * lanes_at(vi + 2 * kLanes);
        o3 += p[i] * lanes_at(vi + 3 * kLanes);
      }
      lanes_at(oh + d) = o0;
      lanes_at(oh + d + kLanes) = o1;
      lanes_at(oh + d + 2 * kLanes) = o2;
      lanes_at(oh + d + 3 * kLanes) = o3;
    }
    for (; d + kLanes <= hd; d += kLanes) {
      FloatLanes o = {};
      for (int64_t i = 0; i < n; ++i) o += p[i] * lanes_at(vlo + i * hd + d);
      lanes_at(oh + d) = o;
    }
    for (; d < hd; ++d) {
      float o = 0.0f;
      for (int64_t i = 0; i < n; ++i) o += p[i] * vlo[i * hd + d];
      oh[d] = o;
    }
  }
}

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
    const int64_t stride = cache->key_stride();
    for (int64_t g = 0; g < kv_heads; ++g) {
      float *kt = cache->keys(layer, slot, g) + past;
      float *vg = cache->values(layer, slot, g) + past * hd;
      for (int64_t r = 0; r < n; ++r) {
        const float *kr = k + (t0 + r) * kv_dim + g * hd;
        for (int64_t d = 0; d < hd; ++d) kt[d * stride + r] = kr[d];
        std::copy_n(v + (t0 + r) * kv_dim + g * hd, hd, vg + r * hd);
      }
    }
  };
  if (tokens < kRowBlock) {
    for (int64_t s = 0; s < sequences; ++s) place(s, 0);
  } else {
    parallel_for(sequences, place);
  }

  const int64_t group = heads / kv_heads;
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
    const float *kt = cache->keys(layer, slot, g), *values = cache->values(layer, slot, g);
    const int64_t stride = cache->key_stride();
    std::vector<float> &p = scores[static_cast<size_t>(worker)];
    if (batch.starts[t.seq + 1] - t0 == 1) {  // a decoded token: tasks by key/value head
      p.resize(static_cast<size_t>(width + 2 * kVectorLanes));
      attend_one_token(q + t0 * q_dim + t.head * hd, t.heads, hd, kt, stride, values, keys_lo,
                       last_pos, scale, cap, p.data(), out + t0 * q_dim + t.head * hd);
      return;
    }
    p.resize(static_cast<size_t>(rows * width));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(rows),
                static_cast<int>(width), static_cast<int>(hd), scale,
                q + (t0 + t.r0) * q_dim + t.head * hd, static_cast<int>(q_dim), kt + keys_lo,
                static_cast<int>(stride), 0.0f, p.data(), static_cast<int>(width));
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
                static_cast<int>(width), values + keys_lo * hd, static_cast<int>(hd), 0.0f,
                out + (t0 + t.r0) * q_dim + t.head * hd, static_cast<int>(q_dim));
  };
  if (total_work < kSerialWork) {
    for (int64_t i = 0; i < static_cast<int64_t>(work.size()); ++i) attend(i, 0);
  } else {
    parallel_for(static_cast<int64_t>(work.size()), attend);
  }
}

}  // namespace gptqtool
