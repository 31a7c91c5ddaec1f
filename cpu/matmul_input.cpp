#include "matmul_input.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "isa.h"

#ifdef GPTQ_X86
#include <immintrin.h>
// GCC 12 flags the deliberately undefined pass-through operand inside its own
// AVX-512 intrinsics (_mm512_undefined_*) as (maybe-)uninitialized.
#ifndef __clang__
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#endif

namespace gptq::cpu {

namespace {

// Adding and subtracting 1.5·2^23 rounds a float of magnitude < 2^22 to the
// nearest integer, ties to even, exactly as rint does, in plain SIMD.
constexpr float kRound = 12582912.0f;

// max |x[i]| over n values, NaN when one is NaN.
float abs_max_portable(const float *x, int64_t n) {
  float amax = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    const float a = std::abs(x[i]);
    if (a != a) return std::numeric_limits<float>::quiet_NaN();
    amax = std::max(amax, a);
  }
  return amax;
}

// One 32-column block v to int8: scale = max |v| / 127 (NaNs ignored), the
// codes rint(v / scale) (0 for a NaN), their sum; all zero when scale is 0.
float quantize_block_portable(const float *v, int8_t *q, int32_t *qsum) {
  float amax = 0.0f;
  for (int i = 0; i < 32; ++i) amax = std::max(amax, std::abs(v[i]));
  const float scale = amax / 127.0f;
  int32_t sum = 0;
  for (int i = 0; i < 32; ++i) {
    const float r = scale == 0.0f ? 0.0f : (v[i] / scale + kRound) - kRound;
    // What x86's truncating conversion to int32 gives (INT32_MIN for a NaN),
    // narrowed as the SIMD builds narrow it (the low byte: 0 for a NaN).
    q[i] = r == r ? static_cast<int8_t>(static_cast<int32_t>(r)) : 0;
    sum += q[i];
  }
  *qsum = sum;
  return scale;
}

#ifdef GPTQ_X86

#define GPTQ_AVX512 __attribute__((target("avx2,fma,avx512f,avx512bw,avx512vl,avx512dq")))

GPTQ_AVX512 float abs_max_avx512(const float *x, int64_t n) {
  const __m512 magnitude = _mm512_castsi512_ps(_mm512_set1_epi32(0x7FFFFFFF));
  __m512 m = _mm512_setzero_ps();
  __mmask16 nan = 0;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 a = _mm512_and_ps(_mm512_loadu_ps(x + i), magnitude);
    nan |= _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q);
    m = _mm512_max_ps(a, m);
  }
  if (nan != 0) return std::numeric_limits<float>::quiet_NaN();
  return std::max(_mm512_reduce_max_ps(m), abs_max_portable(x + i, n - i));
}

// As quantize_block_portable: max_ps(a, m) returns m where a is NaN, as
// std::max(m, a) does; the division, the rounding and the truncating
// conversion are the same IEEE operations.
GPTQ_AVX512 float quantize_block_avx512(const float *v, int8_t *q, int32_t *qsum) {
  const __m512 magnitude = _mm512_castsi512_ps(_mm512_set1_epi32(0x7FFFFFFF));
  const __m512 v0 = _mm512_loadu_ps(v), v1 = _mm512_loadu_ps(v + 16);
  const __m512 m = _mm512_max_ps(_mm512_and_ps(v1, magnitude),
                                 _mm512_max_ps(_mm512_and_ps(v0, magnitude), _mm512_setzero_ps()));
  const float scale = _mm512_reduce_max_ps(m) / 127.0f;
  if (scale == 0.0f) {
    std::fill(q, q + 32, int8_t{0});
    *qsum = 0;
    return scale;
  }
  const __m512 s = _mm512_set1_ps(scale), round = _mm512_set1_ps(kRound);
  const __m512i q0 = _mm512_cvttps_epi32(_mm512_sub_ps(_mm512_add_ps(_mm512_div_ps(v0, s), round), round));
  const __m512i q1 = _mm512_cvttps_epi32(_mm512_sub_ps(_mm512_add_ps(_mm512_div_ps(v1, s), round), round));
  // A NaN became INT32_MIN; its low byte, 0, is what the narrowing keeps.
  _mm_storeu_si128(reinterpret_cast<__m128i *>(q), _mm512_cvtepi32_epi8(q0));
  _mm_storeu_si128(reinterpret_cast<__m128i *>(q + 16), _mm512_cvtepi32_epi8(q1));
  // Sums of the narrowed codes, sign-extended back.
  const __m512i w0 = _mm512_cvtepi8_epi32(_mm512_cvtepi32_epi8(q0)),
                w1 = _mm512_cvtepi8_epi32(_mm512_cvtepi32_epi8(q1));
  *qsum = _mm512_reduce_add_epi32(_mm512_add_epi32(w0, w1));
  return scale;
}

#define GPTQ_AVX2 __attribute__((target("avx2")))

GPTQ_AVX2 float abs_max_avx2(const float *x, int64_t n) {
  const __m256 magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  __m256 m = _mm256_setzero_ps();
  int nan = 0;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 a = _mm256_and_ps(_mm256_loadu_ps(x + i), magnitude);
    nan |= _mm256_movemask_ps(_mm256_cmp_ps(a, a, _CMP_UNORD_Q));
    m = _mm256_max_ps(a, m);
  }
  if (nan != 0) return std::numeric_limits<float>::quiet_NaN();
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, m);
  return std::max(*std::max_element(lanes, lanes + 8), abs_max_portable(x + i, n - i));
}

// As quantize_block_avx512, eight lanes at a time. AVX2 has no truncating
// narrowing, so the low byte of each code is picked by a byte shuffle, and
// sign-extended back from it for the sum.
GPTQ_AVX2 float quantize_block_avx2(const float *v, int8_t *q, int32_t *qsum) {
  const __m256 magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  __m256 part[4];
  __m256 m = _mm256_setzero_ps();
  for (int p = 0; p < 4; ++p) {
    part[p] = _mm256_loadu_ps(v + 8 * p);
    m = _mm256_max_ps(_mm256_and_ps(part[p], magnitude), m);
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, m);
  float amax = lanes[0];
  for (int l = 1; l < 8; ++l) amax = std::max(amax, lanes[l]);
  const float scale = amax / 127.0f;
  if (scale == 0.0f) {
    std::fill(q, q + 32, int8_t{0});
    *qsum = 0;
    return scale;
  }
  const __m256 s = _mm256_set1_ps(scale), round = _mm256_set1_ps(kRound);
  // Byte 0 of each 32-bit lane to the low 4 bytes of each 128-bit half.
  const __m256i low_bytes = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                             -1, -1, 0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1,
                                             -1, -1, -1, -1);
  __m256i sum = _mm256_setzero_si256();
  for (int p = 0; p < 4; ++p) {
    const __m256i c = _mm256_cvttps_epi32(
        _mm256_sub_ps(_mm256_add_ps(_mm256_div_ps(part[p], s), round), round));
    const __m256i bytes = _mm256_shuffle_epi8(c, low_bytes);
    const int32_t lo = _mm256_extract_epi32(bytes, 0), hi = _mm256_extract_epi32(bytes, 4);
    std::memcpy(q + 8 * p, &lo, 4);
    std::memcpy(q + 8 * p + 4, &hi, 4);
    sum = _mm256_add_epi32(sum, _mm256_srai_epi32(_mm256_slli_epi32(c, 24), 24));
  }
  alignas(32) int32_t words[8];
  _mm256_store_si256(reinterpret_cast<__m256i *>(words), sum);
  int32_t total = 0;
  for (int32_t w : words) total += w;
  *qsum = total;
  return scale;
}

#endif  // GPTQ_X86

const Isa kIsa = cpu_isa();

float abs_max(const float *x, int64_t n) {
#ifdef GPTQ_X86
  if (kIsa >= Isa::kAvx512) return abs_max_avx512(x, n);
  if (kIsa == Isa::kAvx2) return abs_max_avx2(x, n);
#endif
  return abs_max_portable(x, n);
}

float quantize_block(const float *v, int8_t *q, int32_t *qsum) {
#ifdef GPTQ_X86
  if (kIsa >= Isa::kAvx512) return quantize_block_avx512(v, q, qsum);
  if (kIsa == Isa::kAvx2) return quantize_block_avx2(v, q, qsum);
#endif
  return quantize_block_portable(v, q, qsum);
}

}  // namespace

void prepare_input(const CpuMatmulWeights &w, const float *x, int64_t rows, bool int8,
                   PreparedInput &out) {
  const int64_t kp = w.kp, slots = w.slots(), blocks = kp / 32;
  // Rows of x already in the padded order (every column in order, none
  // padded) are rounded where they lie: the int8 kernels read only the
  // rounded values, so they need neither the copy nor max |x|.
  const bool ordered = w.kp == w.k && w.source_runs.size() == 1 && w.source_runs[0].column == 0;
  if (int8 && ordered) {
    out.rows = x;
    out.x_absmax = 0.0f;
  } else {
    out.x.resize(static_cast<size_t>(rows * kp));
    for (int64_t m = 0; m < rows; ++m) {
      float *dst = &out.x[m * kp];
      const float *src = x + m * w.k;
      for (const SourceRun &run : w.source_runs) {
        if (run.column >= 0)
          std::copy_n(src + run.column, run.length, dst + run.begin);
        else
          std::fill_n(dst + run.begin, run.length, 0.0f);
      }
    }
    out.rows = out.x.data();
    out.x_absmax = abs_max(out.x.data(), rows * kp);
  }
  if (!int8) return;
  out.xq.resize(static_cast<size_t>(rows * kp));
  out.xscale.resize(static_cast<size_t>(rows * blocks));
  out.xsum.resize(static_cast<size_t>(rows * slots));
  const bool uniform = w.uniform_zero >= 0;
  if (uniform) out.xzero.resize(static_cast<size_t>(rows * blocks));
  for (int64_t m = 0; m < rows; ++m)
    for (int64_t t = 0; t < slots; ++t) {
      // The zero term uses the sums of the rounded activations, so that the
      // rounding error multiplies (code − zero), centred on 0, rather than the
      // code itself: y = scale·Σ x̃·(c − z) exactly, with x̃ the rounded x.
      float sum = 0.0f;
      for (int64_t b = w.group_begin[t] / 32; b < w.group_begin[t + 1] / 32; ++b) {
        int32_t qsum = 0;
        const float scale = quantize_block(out.rows + m * kp + b * 32, &out.xq[m * kp + b * 32], &qsum);
        out.xscale[m * blocks + b] = scale;
        if (uniform) out.xzero[m * blocks + b] = -w.uniform_zero * qsum;
        if (scale != 0.0f) sum += scale * static_cast<float>(qsum);
      }
      out.xsum[m * slots + t] = sum;
    }
}

}  // namespace gptq::cpu
