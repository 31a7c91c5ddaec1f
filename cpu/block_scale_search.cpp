#include "block_scale_search.h"

#include <algorithm>
#include <cmath>

#include "isa.h"

#ifdef GPTQ_X86
#include <immintrin.h>
// GCC 12 flags the deliberately undefined pass-through operand inside its own
// AVX-512 intrinsics (_mm512_undefined_*) as maybe-uninitialized.
#ifndef __clang__
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#endif

namespace gptq::cpu {

namespace {

// The scalar Quantizer's block_code (d nonzero) and its sums, the reference
// every SIMD build reproduces lane by lane.
template <typename T>
T code_of(T w, T d, T z, T maxq) {
  T q = std::rint(w / d) + z;
  q = q > T(0) ? q : T(0);
  return q < maxq ? q : maxq;
}

template <typename T>
void errors_portable(const ZeroFormBlock<T> &b, const T *d, int count, T *err) {
  for (int i = 0; i < count; ++i) {
    T sum = T(0);
    for (int64_t c = 0; c < b.len; ++c) {
      const T e = b.w[c] - d[i] * (code_of(b.w[c], d[i], b.z, b.maxq) - b.z);
      sum += b.h[c] * e * e;
    }
    err[i] = sum;
  }
}

template <typename T>
void refits_portable(const ZeroFormBlock<T> &b, const T *d, int count, T *num, T *den) {
  for (int i = 0; i < count; ++i) {
    T n = T(0), m = T(0);
    for (int64_t c = 0; c < b.len; ++c) {
      const T s = code_of(b.w[c], d[i], b.z, b.maxq) - b.z;
      n += b.h[c] * b.w[c] * s;
      m += b.h[c] * s * s;
    }
    num[i] = n;
    den[i] = m;
  }
}

template <typename T>
T min_code_of(T w, T d, T z, T maxq) {
  T q = std::rint((w - z) / d);
  q = q > T(0) ? q : T(0);
  return q < maxq ? q : maxq;
}

template <typename T>
void min_errors_portable(const MinFormBlock<T> &b, const T *d, const T *z, int count, T *err) {
  for (int i = 0; i < count; ++i) {
    T sum = T(0);
    for (int64_t c = 0; c < b.len; ++c) {
      const T e = b.w[c] - (d[i] * min_code_of(b.w[c], d[i], z[i], b.maxq) + z[i]);
      sum += b.h[c] * e * e;
    }
    err[i] = sum;
  }
}

template <typename T>
void min_fit_sums_portable(const MinFormBlock<T> &b, const T *d, const T *z, int count,
                           const FitSums<T> &out) {
  for (int i = 0; i < count; ++i) {
    T sh = 0, sq = 0, sqq = 0, sw = 0, sqw = 0;
    for (int64_t c = 0; c < b.len; ++c) {
      const T hc = b.h[c], q = min_code_of(b.w[c], d[i], z[i], b.maxq);
      sh += hc;
      sq += hc * q;
      sqq += hc * q * q;
      sw += hc * b.w[c];
      sqw += hc * q * b.w[c];
    }
    out.h[i] = sh;
    out.q[i] = sq;
    out.qq[i] = sqq;
    out.w[i] = sw;
    out.qw[i] = sqw;
  }
}

#ifdef GPTQ_X86

#define GPTQ_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define GPTQ_TARGET_AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw")))

// Candidates i0 .. i0 + lanes − 1 (fewer at the end: the tail lanes repeat
// the last candidate and are not stored).
template <typename T, int kLanes>
void gather_candidates(const T *d, int i0, int count, T *lanes) {
  for (int l = 0; l < kLanes; ++l) lanes[l] = d[std::min(i0 + l, count - 1)];
}

template <typename T, int kLanes>
void scatter_results(const T *lanes, int i0, int count, T *out) {
  for (int l = 0; l < kLanes && i0 + l < count; ++l) out[i0 + l] = lanes[l];
}

// The lane loops, written once over each build's operations so that every
// build takes the same steps. max(q, 0) and min(q, maxq) are the scalar
// ternaries exactly: the instructions return their second operand unless
// the first is greater (less), NaN included.
#define GPTQ_BLOCK_LANE_LOOPS(Target, Prefix, T, kLanes, Vec, load, store, set1, div, add, sub,  \
                              mul, max, min, round)                                             \
  Target void Prefix##_errors(const ZeroFormBlock<T> &b, const T *d, int count, T *err) {      \
    const Vec z = set1(b.z), maxq = set1(b.maxq), zero = set1(T(0));                            \
    alignas(64) T lanes[kLanes];                                                                \
    for (int i0 = 0; i0 < count; i0 += kLanes) {                                                \
      gather_candidates<T, kLanes>(d, i0, count, lanes);                                        \
      const Vec dv = load(lanes);                                                               \
      Vec sum = zero;                                                                           \
      for (int64_t c = 0; c < b.len; ++c) {                                                     \
        const Vec w = set1(b.w[c]);                                                             \
        Vec q = add(round(div(w, dv)), z);                                                      \
        q = min(max(q, zero), maxq);                                                            \
        const Vec e = sub(w, mul(dv, sub(q, z)));                                               \
        sum = add(sum, mul(mul(set1(b.h[c]), e), e));                                           \
      }                                                                                         \
      store(lanes, sum);                                                                        \
      scatter_results<T, kLanes>(lanes, i0, count, err);                                        \
    }                                                                                           \
  }                                                                                             \
  Target void Prefix##_refits(const ZeroFormBlock<T> &b, const T *d, int count, T *num,        \
                              T *den) {                                                         \
    const Vec z = set1(b.z), maxq = set1(b.maxq), zero = set1(T(0));                            \
    alignas(64) T lanes[kLanes];                                                                \
    for (int i0 = 0; i0 < count; i0 += kLanes) {                                                \
      gather_candidates<T, kLanes>(d, i0, count, lanes);                                        \
      const Vec dv = load(lanes);                                                               \
      Vec n = zero, m = zero;                                                                   \
      for (int64_t c = 0; c < b.len; ++c) {                                                     \
        const Vec w = set1(b.w[c]), h = set1(b.h[c]);                                           \
        Vec q = add(round(div(w, dv)), z);                                                      \
        const Vec s = sub(min(max(q, zero), maxq), z);                                          \
        n = add(n, mul(mul(h, w), s));                                                          \
        m = add(m, mul(mul(h, s), s));                                                          \
      }                                                                                         \
      store(lanes, n);                                                                          \
      scatter_results<T, kLanes>(lanes, i0, count, num);                                        \
      store(lanes, m);                                                                          \
      scatter_results<T, kLanes>(lanes, i0, count, den);                                        \
    }                                                                                           \
  }

// Min-form blocks: a pair (d, z) a lane.
#define GPTQ_MIN_LANE_LOOPS(Target, Prefix, T, kLanes, Vec, load, store, set1, div, add, sub,    \
                            mul, max, min, round)                                               \
  Target void Prefix##_min_errors(const MinFormBlock<T> &b, const T *d, const T *z, int count, \
                                  T *err) {                                                     \
    const Vec maxq = set1(b.maxq), zero = set1(T(0));                                           \
    alignas(64) T lanes[kLanes];                                                                \
    for (int i0 = 0; i0 < count; i0 += kLanes) {                                                \
      gather_candidates<T, kLanes>(d, i0, count, lanes);                                        \
      const Vec dv = load(lanes);                                                               \
      gather_candidates<T, kLanes>(z, i0, count, lanes);                                        \
      const Vec zv = load(lanes);                                                               \
      Vec sum = zero;                                                                           \
      for (int64_t c = 0; c < b.len; ++c) {                                                     \
        const Vec w = set1(b.w[c]);                                                             \
        const Vec q = min(max(round(div(sub(w, zv), dv)), zero), maxq);                         \
        const Vec e = sub(w, add(mul(dv, q), zv));                                              \
        sum = add(sum, mul(mul(set1(b.h[c]), e), e));                                           \
      }                                                                                         \
      store(lanes, sum);                                                                        \
      scatter_results<T, kLanes>(lanes, i0, count, err);                                        \
    }                                                                                           \
  }                                                                                             \
  Target void Prefix##_min_fit_sums(const MinFormBlock<T> &b, const T *d, const T *z,          \
                                    int count, const FitSums<T> &out) {                         \
    const Vec maxq = set1(b.maxq), zero = set1(T(0));                                           \
    alignas(64) T lanes[kLanes];                                                                \
    for (int i0 = 0; i0 < count; i0 += kLanes) {                                                \
      gather_candidates<T, kLanes>(d, i0, count, lanes);                                        \
      const Vec dv = load(lanes);                                                               \
      gather_candidates<T, kLanes>(z, i0, count, lanes);                                        \
      const Vec zv = load(lanes);                                                               \
      Vec sh = zero, sq = zero, sqq = zero, sw = zero, sqw = zero;                              \
      for (int64_t c = 0; c < b.len; ++c) {                                                     \
        const Vec w = set1(b.w[c]), h = set1(b.h[c]);                                           \
        const Vec q = min(max(round(div(sub(w, zv), dv)), zero), maxq);                         \
        sh = add(sh, h);                                                                        \
        sq = add(sq, mul(h, q));                                                                \
        sqq = add(sqq, mul(mul(h, q), q));                                                      \
        sw = add(sw, mul(h, w));                                                                \
        sqw = add(sqw, mul(mul(h, q), w));                                                      \
      }                                                                                         \
      const Vec sums[5] = {sh, sq, sqq, sw, sqw};                                               \
      T *const outs[5] = {out.h, out.q, out.qq, out.w, out.qw};                                 \
      for (int s = 0; s < 5; ++s) {                                                             \
        store(lanes, sums[s]);                                                                  \
        scatter_results<T, kLanes>(lanes, i0, count, outs[s]);                                  \
      }                                                                                         \
    }                                                                                           \
  }

#define GPTQ_ALL_LANE_LOOPS(...)         \
  GPTQ_BLOCK_LANE_LOOPS(__VA_ARGS__) \
  GPTQ_MIN_LANE_LOOPS(__VA_ARGS__)

constexpr int kNearest = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;

#define GPTQ_R256PS(x) _mm256_round_ps(x, kNearest)
#define GPTQ_R256PD(x) _mm256_round_pd(x, kNearest)
#define GPTQ_R512PS(x) _mm512_roundscale_ps(x, kNearest)
#define GPTQ_R512PD(x) _mm512_roundscale_pd(x, kNearest)

GPTQ_ALL_LANE_LOOPS(GPTQ_TARGET_AVX2, avx2_f32, float, 8, __m256, _mm256_load_ps,
                      _mm256_store_ps, _mm256_set1_ps, _mm256_div_ps, _mm256_add_ps,
                      _mm256_sub_ps, _mm256_mul_ps, _mm256_max_ps, _mm256_min_ps, GPTQ_R256PS)
GPTQ_ALL_LANE_LOOPS(GPTQ_TARGET_AVX2, avx2_f64, double, 4, __m256d, _mm256_load_pd,
                      _mm256_store_pd, _mm256_set1_pd, _mm256_div_pd, _mm256_add_pd,
                      _mm256_sub_pd, _mm256_mul_pd, _mm256_max_pd, _mm256_min_pd, GPTQ_R256PD)
GPTQ_ALL_LANE_LOOPS(GPTQ_TARGET_AVX512, avx512_f32, float, 16, __m512, _mm512_load_ps,
                      _mm512_store_ps, _mm512_set1_ps, _mm512_div_ps, _mm512_add_ps,
                      _mm512_sub_ps, _mm512_mul_ps, _mm512_max_ps, _mm512_min_ps, GPTQ_R512PS)
GPTQ_ALL_LANE_LOOPS(GPTQ_TARGET_AVX512, avx512_f64, double, 8, __m512d, _mm512_load_pd,
                      _mm512_store_pd, _mm512_set1_pd, _mm512_div_pd, _mm512_add_pd,
                      _mm512_sub_pd, _mm512_mul_pd, _mm512_max_pd, _mm512_min_pd, GPTQ_R512PD)

#endif  // GPTQ_X86

}  // namespace

// Each call goes to the build this process runs (cpu_isa(), which
// GPTQ_CPU_KERNELS caps).
#ifdef GPTQ_X86
#define GPTQ_PICK(avx512_call, avx2_call, portable_call) \
  static const Isa isa = cpu_isa();                      \
  if (isa >= Isa::kAvx512) return avx512_call;           \
  if (isa >= Isa::kAvx2) return avx2_call;               \
  return portable_call
#else
#define GPTQ_PICK(avx512_call, avx2_call, portable_call) return portable_call
#endif

#define GPTQ_DEFINE_SEARCH_SUMS(T, prefix)                                                       \
  template <>                                                                                    \
  void block_errors<T>(const ZeroFormBlock<T> &b, const T *d, int count, T *err) {              \
    GPTQ_PICK(avx512_##prefix##_errors(b, d, count, err), avx2_##prefix##_errors(b, d, count, err), \
              errors_portable(b, d, count, err));                                                \
  }                                                                                              \
  template <>                                                                                    \
  void block_refit_sums<T>(const ZeroFormBlock<T> &b, const T *d, int count, T *num, T *den) {  \
    GPTQ_PICK(avx512_##prefix##_refits(b, d, count, num, den),                                   \
              avx2_##prefix##_refits(b, d, count, num, den),                                     \
              refits_portable(b, d, count, num, den));                                           \
  }                                                                                              \
  template <>                                                                                    \
  void min_block_errors<T>(const MinFormBlock<T> &b, const T *d, const T *z, int count,          \
                           T *err) {                                                             \
    GPTQ_PICK(avx512_##prefix##_min_errors(b, d, z, count, err),                                 \
              avx2_##prefix##_min_errors(b, d, z, count, err),                                   \
              min_errors_portable(b, d, z, count, err));                                         \
  }                                                                                              \
  template <>                                                                                    \
  void min_block_fit_sums<T>(const MinFormBlock<T> &b, const T *d, const T *z, int count,        \
                             const FitSums<T> &out) {                                            \
    GPTQ_PICK(avx512_##prefix##_min_fit_sums(b, d, z, count, out),                               \
              avx2_##prefix##_min_fit_sums(b, d, z, count, out),                                 \
              min_fit_sums_portable(b, d, z, count, out));                                       \
  }

GPTQ_DEFINE_SEARCH_SUMS(float, f32)
GPTQ_DEFINE_SEARCH_SUMS(double, f64)

}  // namespace gptq::cpu
