#include "matmul_kernels.h"

#include <cmath>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define GPTQ_X86 1
#endif

namespace gptq::cpu {

namespace {

inline uint8_t code_at(const CpuMatmulWeights &w, const uint8_t *row, int64_t p) {
  if (w.bits != 4) return row[p];
  const uint8_t byte = row[(p / 32) * 16 + (p % 32) % 16];
  return (p % 32) < 16 ? (byte & 0x0f) : (byte >> 4);
}

// Portable builds: the reference for what the SIMD builds compute.
void f32_portable(const CpuMatmulWeights &w, const KernelInput &in, int64_t r0, int64_t r1, float *y,
                  int64_t ldy) {
  const int64_t slots = w.slots();
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t *row = &w.codes[r * w.row_bytes()];
    for (int64_t m = 0; m < in.rows; ++m) {
      const float *x = in.x + m * w.kp;
      float acc = 0.0f;
      for (int64_t t = 0; t < slots; ++t) {
        const float z = w.zero[r * slots + t];
        float dot = 0.0f;
        for (int64_t p = w.group_begin[t]; p < w.group_begin[t + 1]; ++p)
          dot += x[p] * (static_cast<float>(code_at(w, row, p)) - z);
        acc += w.scale[r * slots + t] * dot;
      }
      y[m * ldy + r] = acc;
    }
  }
}

void int8_portable(const CpuMatmulWeights &w, const KernelInput &in, int64_t r0, int64_t r1, float *y,
                   int64_t ldy) {
  const int64_t slots = w.slots();
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t *row = &w.codes[r * w.row_bytes()];
    for (int64_t m = 0; m < in.rows; ++m) {
      const int8_t *xq = in.xq + m * w.kp;
      float acc = 0.0f;
      for (int64_t t = 0; t < slots; ++t) {
        float group = 0.0f;
        for (int64_t b = w.group_begin[t]; b < w.group_begin[t + 1]; b += 32) {
          int32_t dot = 0;
          for (int64_t p = b; p < b + 32; ++p) dot += static_cast<int32_t>(code_at(w, row, p)) * xq[p];
          group += in.xscale[m * (w.kp / 32) + b / 32] * static_cast<float>(dot);
        }
        acc += w.scale[r * slots + t] * (group - w.zero[r * slots + t] * in.xsum[m * slots + t]);
      }
      y[m * ldy + r] = acc;
    }
  }
}

#ifdef GPTQ_X86

__attribute__((target("avx2,fma"))) inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// 32 codes of one chunk as four vectors of 8 floats, zero subtracted.
__attribute__((target("avx2,fma"))) inline void unpack32(const CpuMatmulWeights &w, const uint8_t *row,
                                                         int64_t chunk, __m256 z, __m256 c[4]) {
  __m128i lo, hi;
  if (w.bits == 4) {
    const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i *>(row + chunk * 16));
    const __m128i mask = _mm_set1_epi8(0x0f);
    lo = _mm_and_si128(bytes, mask);
    hi = _mm_and_si128(_mm_srli_epi16(bytes, 4), mask);
  } else {
    lo = _mm_loadu_si128(reinterpret_cast<const __m128i *>(row + chunk * 32));
    hi = _mm_loadu_si128(reinterpret_cast<const __m128i *>(row + chunk * 32 + 16));
  }
  c[0] = _mm256_sub_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(lo)), z);
  c[1] = _mm256_sub_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(lo, 8))), z);
  c[2] = _mm256_sub_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(hi)), z);
  c[3] = _mm256_sub_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(hi, 8))), z);
}

template <int kRows>
__attribute__((target("avx2,fma"))) void f32_avx2_rows(const CpuMatmulWeights &w, const KernelInput &in,
                                                       int64_t r0, int64_t r1, float *y, int64_t ldy) {
  const int64_t slots = w.slots();
  // Per row of x, as many independent accumulators as registers allow, so
  // that no FMA waits on the previous chunk's.
  constexpr int kAcc = kRows == 1 ? 4 : kRows == 2 ? 2 : 1;
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t *row = &w.codes[r * w.row_bytes()];
    float acc[kRows] = {};
    for (int64_t t = 0; t < slots; ++t) {
      const __m256 z = _mm256_set1_ps(w.zero[r * slots + t]);
      __m256 dot[kRows][kAcc];
      for (int m = 0; m < kRows; ++m)
        for (int j = 0; j < kAcc; ++j) dot[m][j] = _mm256_setzero_ps();
      for (int64_t chunk = w.group_begin[t] / 32; chunk < w.group_begin[t + 1] / 32; ++chunk) {
        __m256 c[4];
        unpack32(w, row, chunk, z, c);
        for (int m = 0; m < kRows; ++m) {
          const float *x = in.x + m * w.kp + chunk * 32;
          for (int j = 0; j < 4; ++j)
            dot[m][j % kAcc] = _mm256_fmadd_ps(_mm256_loadu_ps(x + 8 * j), c[j], dot[m][j % kAcc]);
        }
      }
      const float s = w.scale[r * slots + t];
      for (int m = 0; m < kRows; ++m) {
        __m256 sum = dot[m][0];
        for (int j = 1; j < kAcc; ++j) sum = _mm256_add_ps(sum, dot[m][j]);
        acc[m] += s * hsum(sum);
      }
    }
    for (int m = 0; m < kRows; ++m) y[m * ldy + r] = acc[m];
  }
}

void f32_avx2(const CpuMatmulWeights &w, const KernelInput &in, int64_t r0, int64_t r1, float *y,
              int64_t ldy) {
  switch (in.rows) {
    case 1: return f32_avx2_rows<1>(w, in, r0, r1, y, ldy);
    case 2: return f32_avx2_rows<2>(w, in, r0, r1, y, ldy);
    case 3: return f32_avx2_rows<3>(w, in, r0, r1, y, ldy);
    default: return f32_avx2_rows<4>(w, in, r0, r1, y, ldy);
  }
}

// 32 codes of one chunk as 32 unsigned bytes in order.
__attribute__((target("avx2,fma"))) inline __m256i codes32(const CpuMatmulWeights &w, const uint8_t *row,
                                                           int64_t chunk) {
  if (w.bits == 4) {
    const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i *>(row + chunk * 16));
    const __m128i mask = _mm_set1_epi8(0x0f);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(bytes, 4), mask), _mm_and_si128(bytes, mask));
  }
  return _mm256_loadu_si256(reinterpret_cast<const __m256i *>(row + chunk * 32));
}

// Codes (≤ 15) times int8 activations: maddubs cannot saturate (15·127·2).

#define GPTQ_INT8_KERNEL(NAME, TARGET, DOT)                                                          \
  template <int kRows>                                                                              \
  TARGET void NAME##_rows(const CpuMatmulWeights &w, const KernelInput &in, int64_t r0, int64_t r1, \
                          float *y, int64_t ldy) {                                                  \
    const int64_t slots = w.slots();                                                                \
    const int64_t blocks = w.kp / 32;                                                               \
    /* Two accumulators per row of x (even and odd chunks) when registers     \
       allow, so that consecutive FMAs do not wait on each other. */          \
    constexpr int kAcc = kRows <= 2 ? 2 : 1;                                                        \
    for (int64_t r = r0; r < r1; ++r) {                                                             \
      const uint8_t *row = &w.codes[r * w.row_bytes()];                                             \
      float acc[kRows] = {};                                                                        \
      for (int64_t t = 0; t < slots; ++t) {                                                         \
        __m256 group[kRows][kAcc];                                                                  \
        for (int m = 0; m < kRows; ++m)                                                             \
          for (int j = 0; j < kAcc; ++j) group[m][j] = _mm256_setzero_ps();                        \
        for (int64_t chunk = w.group_begin[t] / 32; chunk < w.group_begin[t + 1] / 32; ++chunk) {  \
          const __m256i c = codes32(w, row, chunk);                                                 \
          for (int m = 0; m < kRows; ++m) {                                                         \
            const __m256i xq =                                                                      \
                _mm256_loadu_si256(reinterpret_cast<const __m256i *>(in.xq + m * w.kp + chunk * 32)); \
            const __m256i sum = DOT;                                                                \
            __m256 &g = group[m][chunk % kAcc];                                                     \
            g = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), _mm256_set1_ps(in.xscale[m * blocks + chunk]), g); \
          }                                                                                         \
        }                                                                                           \
        const float s = w.scale[r * slots + t], z = w.zero[r * slots + t];                          \
        for (int m = 0; m < kRows; ++m) {                                                           \
          __m256 sum = group[m][0];                                                                 \
          for (int j = 1; j < kAcc; ++j) sum = _mm256_add_ps(sum, group[m][j]);                    \
          acc[m] += s * (hsum(sum) - z * in.xsum[m * slots + t]);                                   \
        }                                                                                           \
      }                                                                                             \
      for (int m = 0; m < kRows; ++m) y[m * ldy + r] = acc[m];                                      \
    }                                                                                               \
  }                                                                                                 \
  void NAME(const CpuMatmulWeights &w, const KernelInput &in, int64_t r0, int64_t r1, float *y,     \
            int64_t ldy) {                                                                          \
    switch (in.rows) {                                                                              \
      case 1: return NAME##_rows<1>(w, in, r0, r1, y, ldy);                                         \
      case 2: return NAME##_rows<2>(w, in, r0, r1, y, ldy);                                         \
      case 3: return NAME##_rows<3>(w, in, r0, r1, y, ldy);                                         \
      default: return NAME##_rows<4>(w, in, r0, r1, y, ldy);                                        \
    }                                                                                               \
  }

GPTQ_INT8_KERNEL(int8_avx2, __attribute__((target("avx2,fma"))),
                 _mm256_madd_epi16(_mm256_maddubs_epi16(c, xq), _mm256_set1_epi16(1)))
GPTQ_INT8_KERNEL(int8_vnni, __attribute__((target("avx2,fma,avx512vl,avx512vnni"))),
                 _mm256_dpbusd_epi32(_mm256_setzero_si256(), c, xq))

// 4-bit codes, int8 activations, AVX-512 VNNI: one 64-byte load unpacks to
// 128 codes of a group, two dpbusd multiply them with the four blocks'
// activations, and the blocks' scales are applied lane-wise, so the float
// accumulator of a row is touched once per 128 codes and reduced once per
// output row (no per-group horizontal sums). Blocks of a group beyond its
// last full unit of four take the AVX2 route.
template <int kRows>
__attribute__((target("avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni"))) void int8_avx512_rows(
    const CpuMatmulWeights &w, const KernelInput &in, int64_t r0, int64_t r1, float *y, int64_t ldy) {
  const int64_t slots = w.slots();
  const int64_t blocks = w.kp / 32;
  const __m512i mask = _mm512_set1_epi8(0x0f);
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t *row = &w.codes[r * w.row_bytes()];
    __m512 acc[kRows];
    float tail[kRows] = {};
    for (int m = 0; m < kRows; ++m) acc[m] = _mm512_setzero_ps();
    int64_t unit = 0;
    for (int64_t t = 0; t < slots; ++t) {
      const float s = w.scale[r * slots + t], z = w.zero[r * slots + t];
      const int64_t units = slot_units(w, t);
      const int64_t block0 = w.group_begin[t] / 32;
      __m512 group[kRows];
      for (int m = 0; m < kRows; ++m) group[m] = _mm512_setzero_ps();
      for (int64_t i = 0; i < units; ++i) {
        const __m512i v = _mm512_loadu_si512(row + (block0 + 4 * i) * 16);
        const __m512i lo = _mm512_and_si512(v, mask);
        const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), mask);
        for (int m = 0; m < kRows; ++m) {
          const int8_t *xq = in.xq4 + (m * in.units + unit + i) * 128;
          __m512i d = _mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, _mm512_loadu_si512(xq));
          d = _mm512_dpbusd_epi32(d, hi, _mm512_loadu_si512(xq + 64));
          group[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d),
                                     _mm512_loadu_ps(in.xscale4 + (m * in.units + unit + i) * 16), group[m]);
        }
      }
      unit += units;
      // Leftover blocks (groups that are not a multiple of 128 columns).
      __m256 rest[kRows];
      for (int m = 0; m < kRows; ++m) rest[m] = _mm256_setzero_ps();
      for (int64_t chunk = block0 + 4 * units; chunk < w.group_begin[t + 1] / 32; ++chunk) {
        const __m256i c = codes32(w, row, chunk);
        for (int m = 0; m < kRows; ++m) {
          const __m256i xq = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(in.xq + m * w.kp + chunk * 32));
          rest[m] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_dpbusd_epi32(_mm256_setzero_si256(), c, xq)),
                                    _mm256_set1_ps(in.xscale[m * blocks + chunk]), rest[m]);
        }
      }
      const __m512 sv = _mm512_set1_ps(s);
      for (int m = 0; m < kRows; ++m) {
        acc[m] = _mm512_fmadd_ps(group[m], sv, acc[m]);
        tail[m] += s * (hsum(rest[m]) - z * in.xsum[m * slots + t]);
      }
    }
    for (int m = 0; m < kRows; ++m) y[m * ldy + r] = _mm512_reduce_add_ps(acc[m]) + tail[m];
  }
}

// 4-bit codes, float32 activations, AVX-512: the same 128-code units as the
// int8 kernel, each 16 codes widened to floats, zero subtracted, multiplied
// with x; accumulated per group in two independent vectors and scaled once
// per group, with one reduction per output row.
template <int kRows>
__attribute__((target("avx2,fma,avx512f,avx512bw,avx512vl"))) void f32_avx512_rows(
    const CpuMatmulWeights &w, const KernelInput &in, int64_t r0, int64_t r1, float *y, int64_t ldy) {
  const int64_t slots = w.slots();
  const __m512i mask = _mm512_set1_epi8(0x0f);
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t *row = &w.codes[r * w.row_bytes()];
    __m512 acc[kRows];
    float tail[kRows] = {};
    for (int m = 0; m < kRows; ++m) acc[m] = _mm512_setzero_ps();
    for (int64_t t = 0; t < slots; ++t) {
      const float s = w.scale[r * slots + t], zs = w.zero[r * slots + t];
      const __m512 z = _mm512_set1_ps(zs);
      const int64_t units = slot_units(w, t);
      const int64_t block0 = w.group_begin[t] / 32;
      __m512 g_lo[kRows], g_hi[kRows];
      for (int m = 0; m < kRows; ++m) g_lo[m] = g_hi[m] = _mm512_setzero_ps();
      for (int64_t i = 0; i < units; ++i) {
        const int64_t block = block0 + 4 * i;
        const __m512i v = _mm512_loadu_si512(row + block * 16);
        const __m512i lo = _mm512_and_si512(v, mask);
        const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), mask);
#define GPTQ_F32_LANE(J)                                                                                   \
  {                                                                                                        \
    const __m512 cl = _mm512_sub_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(lo, J))), z); \
    const __m512 ch = _mm512_sub_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(hi, J))), z); \
    for (int m = 0; m < kRows; ++m) {                                                                      \
      const float *x = in.x + m * w.kp + (block + J) * 32;                                                 \
      g_lo[m] = _mm512_fmadd_ps(_mm512_loadu_ps(x), cl, g_lo[m]);                                          \
      g_hi[m] = _mm512_fmadd_ps(_mm512_loadu_ps(x + 16), ch, g_hi[m]);                                     \
    }                                                                                                      \
  }
        GPTQ_F32_LANE(0)
        GPTQ_F32_LANE(1)
        GPTQ_F32_LANE(2)
        GPTQ_F32_LANE(3)
#undef GPTQ_F32_LANE
      }
      // Leftover blocks (groups that are not a multiple of 128 columns).
      __m256 rest[kRows];
      for (int m = 0; m < kRows; ++m) rest[m] = _mm256_setzero_ps();
      const __m256 z8 = _mm256_set1_ps(zs);
      for (int64_t chunk = block0 + 4 * units; chunk < w.group_begin[t + 1] / 32; ++chunk) {
        __m256 c[4];
        unpack32(w, row, chunk, z8, c);
        for (int m = 0; m < kRows; ++m) {
          const float *x = in.x + m * w.kp + chunk * 32;
          for (int j = 0; j < 4; ++j) rest[m] = _mm256_fmadd_ps(_mm256_loadu_ps(x + 8 * j), c[j], rest[m]);
        }
      }
      const __m512 sv = _mm512_set1_ps(s);
      for (int m = 0; m < kRows; ++m) {
        acc[m] = _mm512_fmadd_ps(_mm512_add_ps(g_lo[m], g_hi[m]), sv, acc[m]);
        tail[m] += s * hsum(rest[m]);
      }
    }
    for (int m = 0; m < kRows; ++m) y[m * ldy + r] = _mm512_reduce_add_ps(acc[m]) + tail[m];
  }
}

void f32_avx512(const CpuMatmulWeights &w, const KernelInput &in, int64_t r0, int64_t r1, float *y,
                int64_t ldy) {
  switch (in.rows) {
    case 1: return f32_avx512_rows<1>(w, in, r0, r1, y, ldy);
    case 2: return f32_avx512_rows<2>(w, in, r0, r1, y, ldy);
    case 3: return f32_avx512_rows<3>(w, in, r0, r1, y, ldy);
    default: return f32_avx512_rows<4>(w, in, r0, r1, y, ldy);
  }
}

void int8_avx512(const CpuMatmulWeights &w, const KernelInput &in, int64_t r0, int64_t r1, float *y,
                 int64_t ldy) {
  switch (in.rows) {
    case 1: return int8_avx512_rows<1>(w, in, r0, r1, y, ldy);
    case 2: return int8_avx512_rows<2>(w, in, r0, r1, y, ldy);
    case 3: return int8_avx512_rows<3>(w, in, r0, r1, y, ldy);
    default: return int8_avx512_rows<4>(w, in, r0, r1, y, ldy);
  }
}

enum class Isa { kPortable, kAvx2, kVnni };

bool has_avx512() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("fma");
}

const bool kAvx512 = has_avx512();

Isa detect() {
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return Isa::kPortable;
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni"))
    return Isa::kVnni;
  return Isa::kAvx2;
}

const Isa kIsa = detect();

#endif  // GPTQ_X86

}  // namespace

void matmul_rows_f32(const CpuMatmulWeights &w, const KernelInput &in, int64_t r0, int64_t r1, float *y,
                     int64_t ldy) {
#ifdef GPTQ_X86
  if (kAvx512 && w.bits == 4) return f32_avx512(w, in, r0, r1, y, ldy);
  if (kIsa != Isa::kPortable) return f32_avx2(w, in, r0, r1, y, ldy);
#endif
  f32_portable(w, in, r0, r1, y, ldy);
}

void matmul_rows_int8(const CpuMatmulWeights &w, const KernelInput &in, int64_t r0, int64_t r1, float *y,
                      int64_t ldy) {
#ifdef GPTQ_X86
  if (kIsa == Isa::kVnni) return w.bits == 4 ? int8_avx512(w, in, r0, r1, y, ldy) : int8_vnni(w, in, r0, r1, y, ldy);
  if (kIsa == Isa::kAvx2) return int8_avx2(w, in, r0, r1, y, ldy);
#endif
  int8_portable(w, in, r0, r1, y, ldy);
}

bool int8_kernels_available() {
#ifdef GPTQ_X86
  return kIsa != Isa::kPortable;
#else
  return false;
#endif
}

}  // namespace gptq::cpu
