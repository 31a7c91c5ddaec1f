// attend_decoded_token (decode_attention.h), built once per vector width.
#include "model/decode_attention.h"

#include <algorithm>
#include <type_traits>

#include "model/kv_cache.h"
#include "model/vector_math.h"
#include "model/vector_width.h"

namespace gptqtool {

namespace {

// A decoded token's attention, split so that each key and value is read
// once for all the query heads that share it (3 to 8 in today's models),
// not once per head: the decode step of a batch reads every sequence's
// whole cache, and the reads, not the arithmetic, are what it waits on.
// Every score and output is still a sum in position or dimension order,
// whatever the number of heads, so the result does not depend on H.

// V vectors of a cache are read in pairs (Lanes::load_pair) from a
// bfloat16 cache, when V is even: one load and two instructions give two
// vectors, where widening one takes several. The pair's vectors come out
// as the values at even and at odd offsets, so sums over them are stored
// back interleaved (store_vectors).
template <typename Elem, int V>
constexpr bool kReadInPairs = std::is_same_v<Elem, uint16_t> && V % 2 == 0;

// Vector c of out from first[c] + offset, as floats. For pairs, first[c + 1]
// must be first[c] + N.
template <typename L, int V, typename Elem>
[[gnu::always_inline]] inline void load_vectors(const Elem *const (&first)[V], int64_t offset,
                                                typename L::Float (&out)[V]) {
  if constexpr (kReadInPairs<Elem, V>) {
#pragma GCC unroll 4
    for (int c = 0; c < V; c += 2) L::load_pair(first[c] + offset, out[c], out[c + 1]);
  } else {
#pragma GCC unroll 4
    for (int c = 0; c < V; ++c) L::load(first[c] + offset, out[c]);
  }
}

// sum[h][c] += w[h·w_stride]·x[c] for the H heads.
template <typename L, int H, int V>
[[gnu::always_inline]] inline void add_products(typename L::Float (&sum)[H][V], const float *w,
                                                int64_t w_stride,
                                                const typename L::Float (&x)[V]) {
#pragma GCC unroll 4
  for (int h = 0; h < H; ++h) {
    const float wh = w[h * w_stride];
#pragma GCC unroll 4
    for (int c = 0; c < V; ++c) sum[h][c] += wh * x[c];
  }
}

// factor·sum[c] as V·N consecutive floats at out, in the order the values
// were read (load_vectors from a cache of Elem).
template <typename L, int V, typename Elem>
[[gnu::always_inline]] inline void store_vectors(const typename L::Float (&sum)[V], float factor,
                                                 float *out) {
  constexpr int64_t kLanes = L::kCount;
  if constexpr (kReadInPairs<Elem, V>) {
#pragma GCC unroll 4
    for (int c = 0; c < V; c += 2)
      L::store_interleaved(factor * sum[c], factor * sum[c + 1], out + c * kLanes);
  } else {
#pragma GCC unroll 4
    for (int c = 0; c < V; ++c) L::at(out + c * kLanes) = factor * sum[c];
  }
}

// Scores of H query heads (rows of q, stride hd) against the positions of
// whole vectors [j0, j1) of a head's keys kt (blocked as KvCache::keys lays
// them out), times scale, into scores (row h at scores + h·score_stride,
// position j at j − j0). P vectors (L: Lanes<N>) of positions at a time,
// for H·P independent sums over the head dimension.
template <typename L, int H, int P, typename Elem>
[[gnu::always_inline]] inline void score_heads(const float *q, int64_t hd, const Elem *kt,
                                               int64_t j0, int64_t j1, float scale,
                                               float *scores, int64_t score_stride) {
  constexpr int64_t kLanes = L::kCount;
  static_assert(kKeyBlock % kLanes == 0, "key blocks must hold whole vectors");
  // Blocks from a pass's first one to the next pass's (at least the next).
  constexpr int64_t kBlocksAhead = std::max<int64_t>(1, P * kLanes / kKeyBlock);
  // The two vectors of positions of a pair must lie in one block.
  static_assert(kKeyBlock % (2 * kLanes) == 0, "key blocks must hold whole pairs of vectors");
  int64_t j = j0;
  if constexpr (kReadInPairs<Elem, P>) {
    if (j % (2 * kLanes) != 0 && j < j1) {  // a window's first vector may start mid-pair
      score_heads<L, H, 1>(q, hd, kt, j, j + kLanes, scale, scores, score_stride);
      j += kLanes;
    }
  }
  for (; j + P * kLanes <= j1; j += P * kLanes) {
    const Elem *vector[P];  // dimension 0 of each vector of positions
#pragma GCC unroll 4
    for (int c = 0; c < P; ++c) vector[c] = kt + KvCache::key_index(hd, 0, j + c * kLanes);
    typename L::Float sum[H][P] = {};
    for (int64_t d = 0; d < hd; ++d) {
      typename L::Float k[P];
      // Row d of the block the next pass reads, asked for now: a task's
      // keys are one contiguous run, but the prefetchers alone started it
      // too late (bench/RESULTS.md, "Row-wise steps on the splitting
      // threads; prefetching the keys and values").
      __builtin_prefetch(vector[0] + (d + kBlocksAhead * hd) * kKeyBlock);
      load_vectors<L>(vector, d * kKeyBlock, k);
      add_products<L>(sum, q + d, hd, k);
    }
#pragma GCC unroll 4
    for (int h = 0; h < H; ++h)
      store_vectors<L, P, Elem>(sum[h], scale, scores + h * score_stride + (j - j0));
  }
  if constexpr (P > 2 && kReadInPairs<Elem, 2>) {  // the last pairs (j1 is a pair's end)
    if (j < j1) score_heads<L, H, 2>(q, hd, kt, j, j1, scale, scores + (j - j0), score_stride);
  } else if constexpr (P > 1) {  // the last vectors of positions, one at a time
    if (j < j1) score_heads<L, H, 1>(q, hd, kt, j, j1, scale, scores + (j - j0), score_stride);
  }
}

// Columns [d0, hd) of out row h (stride hd) = Σ_i p[h·p_stride + i]·v[i]
// over i in [0, n) (v's rows of hd values), for H heads; C vectors of
// columns at a time (C a power of two), then the rest C/2, ..., one vector
// at a time, and the last columns one at a time.
template <typename L, int H, int C, typename Elem>
[[gnu::always_inline]] inline void weigh_values(const float *p, int64_t p_stride, int64_t n,
                                                const Elem *v, int64_t hd, float *out,
                                                int64_t d0 = 0) {
  constexpr int64_t kLanes = L::kCount;
  constexpr int64_t kRowsAhead = 16;
  constexpr auto kRowBytes = static_cast<int64_t>(C * kLanes * sizeof(Elem));
  int64_t d = d0;
  for (; d + C * kLanes <= hd; d += C * kLanes) {
    const Elem *column[C];  // row 0's vector of each
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c) column[c] = v + d + c * kLanes;
    typename L::Float sum[H][C] = {};
    for (int64_t i = 0; i < n; ++i) {
      // Every cache line of row i + kRowsAhead's columns, as for the keys
      // in score_heads.
      const auto *ahead = reinterpret_cast<const char *>(v + (i + kRowsAhead) * hd + d);
#pragma GCC unroll 8
      for (int64_t b = 0; b < kRowBytes; b += 64) __builtin_prefetch(ahead + b);
      typename L::Float x[C];
      load_vectors<L>(column, i * hd, x);
      add_products<L>(sum, p + i, p_stride, x);
    }
#pragma GCC unroll 4
    for (int h = 0; h < H; ++h) store_vectors<L, C, Elem>(sum[h], 1.0f, out + h * hd + d);
  }
  if constexpr (C > 1) {
    weigh_values<L, H, C / 2>(p, p_stride, n, v, hd, out, d);
    return;
  }
  for (; d < hd; ++d) {  // a head dimension that is not whole vectors
    for (int h = 0; h < H; ++h) {
      float o = 0.0f;
      for (int64_t i = 0; i < n; ++i) o += p[h * p_stride + i] * widen(v[i * hd + d]);
      out[h * hd + d] = o;
    }
  }
}

// attend_one_token for H of the heads at once.
template <typename L, int H, typename Elem>
[[gnu::always_inline]] inline void attend_heads(const float *q, int64_t hd, const Elem *kt,
                                                const Elem *v, int64_t lo,
                                                int64_t pos, float scale, float cap,
                                                float *scores, float *out) {
  // Scores for whole spans of kVectorLanes positions (any build's vectors
  // divide one), from the one holding lo to the one holding pos (within the
  // last block), and where keys are read in pairs of vectors on to a pair's
  // end, so that no vector but a window's first is read alone (widening
  // one alone takes several instructions); those outside [lo, pos] are
  // dropped.
  constexpr int64_t kLanes = kVectorLanes;
  static_assert(kLanes % L::kCount == 0, "spans must hold whole vectors");
  constexpr int64_t kEnd = kReadInPairs<Elem, 2> ? std::max(kLanes, 2 * L::kCount) : kLanes;
  static_assert(kKeyBlock % kEnd == 0, "spans must end within a block of keys");
  const int64_t j0 = lo / kLanes * kLanes, j1 = (pos / kEnd + 1) * kEnd;
  const int64_t n = pos + 1 - lo, score_stride = j1 - j0;
  score_heads<L, H, (H <= 2 ? 4 : 2)>(q, hd, kt, j0, j1, scale, scores, score_stride);
  const int64_t first = lo - j0;  // row h's scores for [lo, pos] start here
  for (int h = 0; h < H; ++h) {
    float *p = scores + h * score_stride + first;
    if (cap > 0) soft_cap(p, n, cap);
    const float mx = max_of(p, n);
    for (int64_t i = 0; i < n; ++i) p[i] = fast_exp(p[i] - mx);
    const auto inv = static_cast<float>(1.0 / sum_of(p, n));
    for (int64_t i = 0; i < n; ++i) p[i] *= inv;
  }
  // Four vectors of columns (a 64-wide head in one pass over the values,
  // on AVX-512) where the registers hold the 4·H sums: AVX-512's 32 for
  // every H, AVX2's 16 up to three heads (12 sums, the row's vectors used
  // as they are read). Four heads on AVX2 take two vectors at a time.
  // (bench/RESULTS.md, "Decode attention: bfloat16 read two vectors at a
  // time".)
  weigh_values<L, H, (H <= 3 || L::kCount == 16 ? 4 : 2)>(scores + first, score_stride, n,
                                                          v + lo * hd, hd, out);
}

// A decoded token's attention for `heads` query heads that share a
// key/value head, its query rows q (stride hd) all at position pos:
// softmax(scale·q·kᵀ)·v over the keys of positions [lo, pos], into out
// (stride hd). kt: that head's keys (KvCache::keys); v: its values
// ([positions, hd]). scores: room for decoded_token_scores(heads, lo, pos) floats.
// A decode step holds thousands of these, each too small for sgemm to pay
// for its call. Elem: the cache's element type (float, or uint16_t holding
// bfloat16); L: the vectors (Lanes<N>) of the build it is inlined into.
template <typename L, typename Elem>
[[gnu::always_inline]] inline void attend_one_token(const float *q, int64_t heads, int64_t hd,
                                         const Elem *kt, const Elem *v,
                                         int64_t lo, int64_t pos, float scale, float cap,
                                         float *scores, float *out) {
  static_assert(kKeyBlock % kVectorLanes == 0, "key blocks must hold whole vectors");
  // Up to four heads at a time: their sums stay in registers.
  for (int64_t h = 0; h < heads; h += 4) {
    const float *qh = q + h * hd;
    float *oh = out + h * hd;
    switch (std::min<int64_t>(heads - h, 4)) {
      case 1:
        attend_heads<L, 1>(qh, hd, kt, v, lo, pos, scale, cap, scores, oh);
        break;
      case 2:
        attend_heads<L, 2>(qh, hd, kt, v, lo, pos, scale, cap, scores, oh);
        break;
      case 3:
        attend_heads<L, 3>(qh, hd, kt, v, lo, pos, scale, cap, scores, oh);
        break;
      default:
        attend_heads<L, 4>(qh, hd, kt, v, lo, pos, scale, cap, scores, oh);
        break;
    }
  }
}

// attend_one_token built once per vector width (vector_width.h).
template <typename Elem>
GPTQ_TARGET_AVX512 void attend_one_token_avx512(const float *q, int64_t heads, int64_t hd,
                                                const Elem *kt, const Elem *v, int64_t lo,
                                                int64_t pos, float scale, float cap,
                                                float *scores, float *out) {
  attend_one_token<Lanes<16>>(q, heads, hd, kt, v, lo, pos, scale, cap, scores, out);
}
template <typename Elem>
GPTQ_TARGET_AVX2 void attend_one_token_avx2(const float *q, int64_t heads, int64_t hd,
                                            const Elem *kt, const Elem *v, int64_t lo,
                                            int64_t pos, float scale, float cap, float *scores,
                                            float *out) {
  attend_one_token<Lanes<8>>(q, heads, hd, kt, v, lo, pos, scale, cap, scores, out);
}
template <typename Elem>
void attend_one_token_baseline(const float *q, int64_t heads, int64_t hd, const Elem *kt,
                               const Elem *v, int64_t lo, int64_t pos, float scale, float cap,
                               float *scores, float *out) {
  attend_one_token<Lanes<4>>(q, heads, hd, kt, v, lo, pos, scale, cap, scores, out);
}

}  // namespace

int64_t decoded_token_scores(int64_t heads, int64_t lo, int64_t pos) {
  return std::min<int64_t>(heads, 4) * (pos + 1 - lo + 3 * kVectorLanes);
}

template <typename Elem>
void attend_decoded_token(const float *q, int64_t heads, int64_t hd, const Elem *kt,
                          const Elem *v, int64_t lo, int64_t pos, float scale, float cap,
                          float *scores, float *out) {
  switch (vector_lanes()) {
    case 16:
      attend_one_token_avx512(q, heads, hd, kt, v, lo, pos, scale, cap, scores, out);
      return;
    case 8:
      attend_one_token_avx2(q, heads, hd, kt, v, lo, pos, scale, cap, scores, out);
      return;
    default:
      attend_one_token_baseline(q, heads, hd, kt, v, lo, pos, scale, cap, scores, out);
  }
}

template void attend_decoded_token<float>(const float *, int64_t, int64_t, const float *,
                                          const float *, int64_t, int64_t, float, float, float *,
                                          float *);
template void attend_decoded_token<uint16_t>(const float *, int64_t, int64_t, const uint16_t *,
                                             const uint16_t *, int64_t, int64_t, float, float,
                                             float *, float *);

}  // namespace gptqtool
