#include "matmul_kernels.h"

#include <algorithm>
#include <cstring>

#include "half.h"
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

// Portable builds: the reference for what the SIMD builds compute, in the
// same order of operations per group.
void f32_portable(const CpuMatmulWeights &w, const KernelInput &in, int64_t tile0, int64_t tile1,
                  float *y, int64_t ldy) {
  const int64_t slots = w.slots();
  for (int64_t r = tile0 * kTileRows; r < std::min(w.n, tile1 * kTileRows); ++r) {
    const int64_t tile = r / kTileRows, i = r % kTileRows;
    for (int64_t m = 0; m < in.rows; ++m) {
      const float *x = in.x + m * w.kp;
      float acc = 0.0f;
      for (int64_t t = 0; t < slots; ++t) {
        const int64_t at = (tile * slots + t) * kTileRows + i;
        float dot = 0.0f;
        for (int64_t p = w.group_begin[t]; p < w.group_begin[t + 1]; ++p)
          dot += x[p] * (static_cast<float>(w.code(r, p)) -
                         static_cast<float>(w.tile_zeros(tile)[t * w.zero_step() + i]));
        acc += half_to_float(w.scale[at]) * dot;
      }
      y[m * ldy + r - tile0 * kTileRows] = acc;
    }
  }
}

void int8_portable(const CpuMatmulWeights &w, const KernelInput &in, int64_t tile0, int64_t tile1,
                   float *y, int64_t ldy) {
  const int64_t slots = w.slots(), blocks = w.kp / 32;
  for (int64_t r = tile0 * kTileRows; r < std::min(w.n, tile1 * kTileRows); ++r) {
    const int64_t tile = r / kTileRows, i = r % kTileRows;
    for (int64_t m = 0; m < in.rows; ++m) {
      const int8_t *xq = in.xq + m * w.kp;
      float acc = 0.0f;
      for (int64_t t = 0; t < slots; ++t) {
        const int64_t at = (tile * slots + t) * kTileRows + i;
        float group = 0.0f;
        for (int64_t b = w.group_begin[t] / 32; b < w.group_begin[t + 1] / 32; ++b) {
          int32_t dot = in.xzero != nullptr ? in.xzero[m * blocks + b] : 0;
          for (int64_t p = 32 * b; p < 32 * b + 32; ++p)
            dot += static_cast<int32_t>(w.code(r, p)) * xq[p];
          group += in.xscale[m * blocks + b] * static_cast<float>(dot);
        }
        if (in.xzero != nullptr)
          acc += half_to_float(w.scale[at]) * group;
        else
          acc += half_to_float(w.scale[at]) *
                 (group - static_cast<float>(w.tile_zeros(tile)[t * w.zero_step() + i]) *
                              in.xsum[m * slots + t]);
      }
      y[m * ldy + r - tile0 * kTileRows] = acc;
    }
  }
}

#ifdef GPTQ_X86

#define GPTQ_AVX2 __attribute__((target("avx2,fma,f16c")))
#define GPTQ_AVX512 __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq")))
#define GPTQ_VNNI __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")))

// Four consecutive int8 activations as one 32-bit value, for broadcasting.
inline int32_t four_bytes(const int8_t *p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// How far ahead of the chunk being read the kernels ask for codes. A task
// reads its tiles' codes once, front to back, and on their own the CPU's
// prefetchers kept the kernels waiting on memory, at one row of x and at
// eight alike (bench/RESULTS.md, "Prefetching the codes"). A few KiB ahead
// covers the memory's latency at the rate one core consumes codes; asking
// past the end of the tensor or of a task is harmless.
constexpr int64_t kCodePrefetchBytes = 4096;

inline void prefetch_codes(const uint8_t *src) {
  _mm_prefetch(reinterpret_cast<const char *>(src) + kCodePrefetchBytes, _MM_HINT_T0);
}

// Rows of tile `tile` that exist (the last tile may be partial).
inline int64_t valid_rows(const CpuMatmulWeights &w, int64_t tile, int64_t first) {
  return std::clamp<int64_t>(w.n - (tile * kTileRows + first), 0, kTileRows - first);
}

// ---- AVX-512 (16 rows of a tile per vector) ------------------------------

// A tile's 16 scales (fp16 bits) and zeros (integers) as floats, exactly.
GPTQ_AVX512 inline __m512 scales16(const uint16_t *p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(p)));
}
GPTQ_AVX512 inline __m512 zeros16(const uint16_t *p) {
  return _mm512_cvtepi32_ps(
      _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(p))));
}

template <int kCpb>
GPTQ_AVX512 inline __m512i field512(__m512i v, int f, __m512i mask) {
  if constexpr (kCpb == 1) return v;
  return _mm512_and_si512(f == 0 ? v : _mm512_srli_epi16(v, f * (8 / kCpb)), mask);
}

GPTQ_AVX512 inline void store16(float *dst, __m512 v, int64_t valid) {
  if (valid == kTileRows)
    _mm512_storeu_ps(dst, v);
  else
    _mm512_mask_storeu_ps(dst, static_cast<__mmask16>((1u << valid) - 1), v);
}

// int8 activations, VNNI: per chunk and bit field, one dpbusd multiplies 16
// rows × 4 codes with 4 activations broadcast to every row; the integer sums
// of a 32-column block get the block's activation scale, a group's sums its
// rows' scales and zeros, lane-wise. kUniformZero (KernelInput::xzero): a
// block's integer sums start at −zero·Σ x̃, and a group's take only scales.
template <int kRows, int kCpb, bool kUniformZero>
GPTQ_VNNI void int8_vnni_tiles(const CpuMatmulWeights &w, const KernelInput &in, int64_t tile0,
                               int64_t tile1, float *y, int64_t ldy) {
  constexpr int kChunksPerBlock = 8 / kCpb;
  const __m512i mask = _mm512_set1_epi8(static_cast<char>((1 << (8 / kCpb)) - 1));
  const int64_t slots = w.slots(), blocks = w.kp / 32;
  for (int64_t tile = tile0; tile < tile1; ++tile) {
    const uint8_t *src = w.tile_codes(tile);
    const uint16_t *scale = &w.scale[tile * slots * kTileRows],
                *zero = w.tile_zeros(tile);
    __m512 acc[kRows];
    for (int m = 0; m < kRows; ++m) acc[m] = _mm512_setzero_ps();
    for (int64_t t = 0; t < slots; ++t) {
      __m512 group[kRows];
      for (int m = 0; m < kRows; ++m) group[m] = _mm512_setzero_ps();
      for (int64_t b = w.group_begin[t] / 32; b < w.group_begin[t + 1] / 32; ++b) {
        // Two integer accumulators per row of x up to four rows, so that
        // consecutive dpbusd do not wait on each other; one past that,
        // where the rows themselves interleave enough and registers run out.
        constexpr int kDots = kRows <= 4 ? 2 : 1;
        __m512i dot[kRows][kDots];
        for (int m = 0; m < kRows; ++m)
          for (int a = 0; a < kDots; ++a)
            dot[m][a] = kUniformZero && a == 0 ? _mm512_set1_epi32(in.xzero[m * blocks + b])
                                               : _mm512_setzero_si512();
        for (int j = 0; j < kChunksPerBlock; ++j, src += kChunkBytes) {
          prefetch_codes(src);
          const __m512i v = _mm512_loadu_si512(src);
          for (int f = 0; f < kCpb; ++f) {
            const __m512i c = field512<kCpb>(v, f, mask);
            const int64_t col = 32 * b + 4 * (j * kCpb + f);
            for (int m = 0; m < kRows; ++m) {
              __m512i &d = dot[m][(j * kCpb + f) % kDots];
              d = _mm512_dpbusd_epi32(d, c, _mm512_set1_epi32(four_bytes(in.xq + m * w.kp + col)));
            }
          }
        }
        for (int m = 0; m < kRows; ++m) {
          const __m512i sum = kDots == 2 ? _mm512_add_epi32(dot[m][0], dot[m][kDots - 1]) : dot[m][0];
          group[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum),
                                     _mm512_set1_ps(in.xscale[m * blocks + b]), group[m]);
        }
      }
      const __m512 s = scales16(scale + t * kTileRows);
      if constexpr (kUniformZero) {
        for (int m = 0; m < kRows; ++m) acc[m] = _mm512_fmadd_ps(s, group[m], acc[m]);
      } else {
        const __m512 z = zeros16(zero + t * w.zero_step());
        for (int m = 0; m < kRows; ++m)
          acc[m] = _mm512_fmadd_ps(
              s, _mm512_fnmadd_ps(z, _mm512_set1_ps(in.xsum[m * slots + t]), group[m]), acc[m]);
      }
    }
    for (int m = 0; m < kRows; ++m)
      store16(y + m * ldy + (tile - tile0) * kTileRows, acc[m], valid_rows(w, tile, 0));
  }
}

// float32 activations: per chunk, bit field and byte, the 16 rows' codes
// become floats (OR-ing a code into the mantissa of 2^23 gives 2^23 + code
// exactly; subtracting 2^23 + zero gives code − zero exactly) and one FMA
// multiplies them with one activation broadcast to every row. Four
// accumulators per row of x (one per byte) keep the FMAs independent.
// (A 16-entry vpermps table lookup instead of the OR and subtract was
// slower on Zen 4: bench/RESULTS.md.)
template <int kRows, int kCpb>
GPTQ_AVX512 void f32_avx512_tiles(const CpuMatmulWeights &w, const KernelInput &in, int64_t tile0,
                                  int64_t tile1, float *y, int64_t ldy) {
  constexpr int kField = 8 / kCpb;
  constexpr int64_t kWidth = 4 * kCpb;
  const __m512i mask = _mm512_set1_epi32((1 << kField) - 1);
  const __m512i magic = _mm512_set1_epi32(0x4B000000);  // 2^23
  const int64_t slots = w.slots();
  for (int64_t tile = tile0; tile < tile1; ++tile) {
    const uint8_t *src = w.tile_codes(tile);
    const uint16_t *scale = &w.scale[tile * slots * kTileRows],
                *zero = w.tile_zeros(tile);
    __m512 acc[kRows];
    for (int m = 0; m < kRows; ++m) acc[m] = _mm512_setzero_ps();
    for (int64_t t = 0; t < slots; ++t) {
      const __m512 z =
          _mm512_add_ps(zeros16(zero + t * w.zero_step()), _mm512_set1_ps(8388608.0f));
      __m512 dot[kRows][4];
      for (int m = 0; m < kRows; ++m)
        for (int q = 0; q < 4; ++q) dot[m][q] = _mm512_setzero_ps();
      for (int64_t chunk = w.group_begin[t] / kWidth; chunk < w.group_begin[t + 1] / kWidth;
           ++chunk, src += kChunkBytes) {
        prefetch_codes(src);
        const __m512i v = _mm512_loadu_si512(src);
        for (int f = 0; f < kCpb; ++f)
          for (int q = 0; q < 4; ++q) {
            const int shift = 8 * q + f * kField;
            const __m512i bits = shift == 0 ? v : _mm512_srli_epi32(v, shift);
            const __m512 c = _mm512_sub_ps(
                _mm512_castsi512_ps(_mm512_ternarylogic_epi32(bits, mask, magic, 0xEA)), z);
            const int64_t col = chunk * kWidth + 4 * f + q;
            for (int m = 0; m < kRows; ++m)
              dot[m][q] = _mm512_fmadd_ps(c, _mm512_set1_ps(in.x[m * w.kp + col]), dot[m][q]);
          }
      }
      const __m512 s = scales16(scale + t * kTileRows);
      for (int m = 0; m < kRows; ++m)
        acc[m] = _mm512_fmadd_ps(
            s,
            _mm512_add_ps(_mm512_add_ps(dot[m][0], dot[m][1]), _mm512_add_ps(dot[m][2], dot[m][3])),
            acc[m]);
    }
    for (int m = 0; m < kRows; ++m)
      store16(y + m * ldy + (tile - tile0) * kTileRows, acc[m], valid_rows(w, tile, 0));
  }
}

// (bits & mask) | 2^23 as a float, minus z: 2^k·(code − zero) when mask is
// 0xF << k and z = 2^23 + 2^k·zero.
GPTQ_AVX512 inline __m512 nibble_in_place(__m512i bits, __m512i mask, __m512i magic, __m512 z) {
  return _mm512_sub_ps(_mm512_castsi512_ps(_mm512_ternarylogic_epi32(bits, mask, magic, 0xEA)), z);
}

// float32 activations, codes in nibbles (3- and 4-bit), one or two rows of
// x: the same arithmetic as f32_avx512_tiles with a fifth fewer vector
// operations. A nibble at bit k of a lane, k + 4 <= 23, is turned into a
// float in place: (v & 0xF << k) | 2^23 is exactly 2^23 + 2^k·code, and
// subtracting 2^23 + 2^k·zero leaves 2^k·(code − zero), exact. Five of a
// chunk's eight nibbles lie that way (bits 0, 4, 8, 12, 16); one shift by 20
// brings the other three to bits 0, 4 and 8. So a chunk takes one shift, not
// seven. Products are summed per k, and a group's sums are scaled back by
// 2^−k (exact) before its scale is applied: the result is the plain
// kernel's up to summation order. The 2^16 factor bounds |x|: callers take
// this kernel only when max |x| < kNibbleXLimit. (For 2-bit fields the same
// trick would need 2^20; those and byte codes keep the plain kernel.)
template <int kRows>
GPTQ_AVX512 void f32_avx512_nibble_tiles(const CpuMatmulWeights &w, const KernelInput &in,
                                         int64_t tile0, int64_t tile1, float *y, int64_t ldy) {
  // Class of each nibble by its bit position after extraction: k = 0, 4, 8,
  // 12, 16 → accumulator 0..4. Columns of the chunk (4·field + byte):
  // unshifted: bits 0 → col 0, 4 → col 4, 8 → col 1, 12 → col 5, 16 → col 2;
  // shifted by 20: bits 0 → col 6, 4 → col 3, 8 → col 7.
  const __m512i magic = _mm512_set1_epi32(0x4B000000);  // 2^23
  const __m512i mask0 = _mm512_set1_epi32(0xF), mask4 = _mm512_set1_epi32(0xF0),
                mask8 = _mm512_set1_epi32(0xF00), mask12 = _mm512_set1_epi32(0xF000),
                mask16 = _mm512_set1_epi32(0xF0000);
  const int64_t slots = w.slots();
  for (int64_t tile = tile0; tile < tile1; ++tile) {
    const uint8_t *src = w.tile_codes(tile);
    const uint16_t *scale = &w.scale[tile * slots * kTileRows],
                *zero = w.tile_zeros(tile);
    __m512 acc[kRows];
    for (int m = 0; m < kRows; ++m) acc[m] = _mm512_setzero_ps();
    for (int64_t t = 0; t < slots; ++t) {
      const __m512 zr = zeros16(zero + t * w.zero_step()), two23 = _mm512_set1_ps(8388608.0f);
      const __m512 z0 = _mm512_add_ps(zr, two23),
                   z4 = _mm512_fmadd_ps(zr, _mm512_set1_ps(16.0f), two23),
                   z8 = _mm512_fmadd_ps(zr, _mm512_set1_ps(256.0f), two23),
                   z12 = _mm512_fmadd_ps(zr, _mm512_set1_ps(4096.0f), two23),
                   z16 = _mm512_fmadd_ps(zr, _mm512_set1_ps(65536.0f), two23);
      __m512 dot[kRows][5];
      for (int m = 0; m < kRows; ++m)
        for (int a = 0; a < 5; ++a) dot[m][a] = _mm512_setzero_ps();
      for (int64_t chunk = w.group_begin[t] / 8; chunk < w.group_begin[t + 1] / 8;
           ++chunk, src += kChunkBytes) {
        prefetch_codes(src);
        const __m512i v = _mm512_loadu_si512(src);
        const __m512i u = _mm512_srli_epi32(v, 20);
        const __m512 c0 = nibble_in_place(v, mask0, magic, z0),
                     c4 = nibble_in_place(v, mask4, magic, z4),
                     c1 = nibble_in_place(v, mask8, magic, z8),
                     c5 = nibble_in_place(v, mask12, magic, z12),
                     c2 = nibble_in_place(v, mask16, magic, z16),
                     c6 = nibble_in_place(u, mask0, magic, z0),
                     c3 = nibble_in_place(u, mask4, magic, z4),
                     c7 = nibble_in_place(u, mask8, magic, z8);
        const int64_t col = chunk * 8;
        for (int m = 0; m < kRows; ++m) {
          const float *x = in.x + m * w.kp + col;
          dot[m][0] = _mm512_fmadd_ps(c0, _mm512_set1_ps(x[0]), dot[m][0]);
          dot[m][1] = _mm512_fmadd_ps(c4, _mm512_set1_ps(x[4]), dot[m][1]);
          dot[m][2] = _mm512_fmadd_ps(c1, _mm512_set1_ps(x[1]), dot[m][2]);
          dot[m][3] = _mm512_fmadd_ps(c5, _mm512_set1_ps(x[5]), dot[m][3]);
          dot[m][4] = _mm512_fmadd_ps(c2, _mm512_set1_ps(x[2]), dot[m][4]);
          dot[m][0] = _mm512_fmadd_ps(c6, _mm512_set1_ps(x[6]), dot[m][0]);
          dot[m][1] = _mm512_fmadd_ps(c3, _mm512_set1_ps(x[3]), dot[m][1]);
          dot[m][2] = _mm512_fmadd_ps(c7, _mm512_set1_ps(x[7]), dot[m][2]);
        }
      }
      const __m512 s = scales16(scale + t * kTileRows);
      for (int m = 0; m < kRows; ++m) {
        __m512 sum = _mm512_fmadd_ps(dot[m][1], _mm512_set1_ps(0x1p-4f), dot[m][0]);
        sum = _mm512_fmadd_ps(dot[m][2], _mm512_set1_ps(0x1p-8f), sum);
        sum = _mm512_fmadd_ps(dot[m][3], _mm512_set1_ps(0x1p-12f), sum);
        sum = _mm512_fmadd_ps(dot[m][4], _mm512_set1_ps(0x1p-16f), sum);
        acc[m] = _mm512_fmadd_ps(s, sum, acc[m]);
      }
    }
    for (int m = 0; m < kRows; ++m)
      store16(y + m * ldy + (tile - tile0) * kTileRows, acc[m], valid_rows(w, tile, 0));
  }
}

// ---- AVX2 (a tile as two halves of 8 rows: bytes 32h..32h+31 of each
// chunk) ----------------------------------------------------------------------

template <int kCpb>
GPTQ_AVX2 inline __m256i field256(__m256i v, int f, __m256i mask) {
  if constexpr (kCpb == 1) return v;
  return _mm256_and_si256(f == 0 ? v : _mm256_srli_epi16(v, f * (8 / kCpb)), mask);
}

// Eight of a tile's scales and zeros as floats, exactly.
GPTQ_AVX2 inline __m256 scales8(const uint16_t *p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(p)));
}
GPTQ_AVX2 inline __m256 zeros8(const uint16_t *p) {
  return _mm256_cvtepi32_ps(_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i *>(p))));
}

GPTQ_AVX2 inline void store8(float *dst, __m256 v, int64_t valid) {
  if (valid >= 8) {
    _mm256_storeu_ps(dst, v);
    return;
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, v);
  std::copy(lanes, lanes + std::max<int64_t>(valid, 0), dst);
}

// int8 activations without VNNI: maddubs gives 16-bit sums of two products
// (at most 2·15·127 = 3810 for 4-bit codes), eight of which per 32-column
// block still fit 16 bits (30480), so they are added as 16-bit integers and
// widened once per block. The loop over a block's chunks stays a loop: fully
// unrolled, GCC regrouped the exact integer additions into trees whose
// partial sums spilled to the stack (bench/RESULTS.md, "The AVX2 int8
// kernel kept as a loop"). kUniformZero as for the VNNI kernel, the start
// added to each block's widened sums.
template <int kRows, int kCpb, bool kUniformZero>
GPTQ_AVX2 void int8_avx2_tiles(const CpuMatmulWeights &w, const KernelInput &in, int64_t tile0,
                               int64_t tile1, float *y, int64_t ldy) {
  constexpr int kChunksPerBlock = 8 / kCpb;
  const __m256i mask = _mm256_set1_epi8(static_cast<char>((1 << (8 / kCpb)) - 1));
  const __m256i ones = _mm256_set1_epi16(1);
  const int64_t slots = w.slots(), blocks = w.kp / 32;
  for (int64_t tile = tile0; tile < tile1; ++tile)
    for (int half = 0; half < 2; ++half) {
      const uint8_t *src = w.tile_codes(tile) + 32 * half;
      const uint16_t *scale = &w.scale[tile * slots * kTileRows + 8 * half];
      const uint16_t *zero = w.tile_zeros(tile) + 8 * half;
      __m256 acc[kRows];
      for (int m = 0; m < kRows; ++m) acc[m] = _mm256_setzero_ps();
      for (int64_t t = 0; t < slots; ++t) {
        __m256 group[kRows];
        for (int m = 0; m < kRows; ++m) group[m] = _mm256_setzero_ps();
        for (int64_t b = w.group_begin[t] / 32; b < w.group_begin[t + 1] / 32; ++b) {
          __m256i dot[kRows];
          for (int m = 0; m < kRows; ++m) dot[m] = _mm256_setzero_si256();
#pragma GCC unroll 1
          for (int j = 0; j < kChunksPerBlock; ++j, src += kChunkBytes) {
            prefetch_codes(src);
            const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(src));
            for (int f = 0; f < kCpb; ++f) {
              const __m256i c = field256<kCpb>(v, f, mask);
              const int64_t col = 32 * b + 4 * (j * kCpb + f);
              for (int m = 0; m < kRows; ++m)
                dot[m] = _mm256_add_epi16(
                    dot[m],
                    _mm256_maddubs_epi16(c, _mm256_set1_epi32(four_bytes(in.xq + m * w.kp + col))));
            }
          }
          for (int m = 0; m < kRows; ++m) {
            __m256i sum = _mm256_madd_epi16(dot[m], ones);
            if constexpr (kUniformZero)
              sum = _mm256_add_epi32(sum, _mm256_set1_epi32(in.xzero[m * blocks + b]));
            group[m] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum),
                                       _mm256_set1_ps(in.xscale[m * blocks + b]), group[m]);
          }
        }
        const __m256 s = scales8(scale + t * kTileRows);
        if constexpr (kUniformZero) {
          for (int m = 0; m < kRows; ++m) acc[m] = _mm256_fmadd_ps(s, group[m], acc[m]);
        } else {
          const __m256 z = zeros8(zero + t * w.zero_step());
          for (int m = 0; m < kRows; ++m)
            acc[m] = _mm256_fmadd_ps(
                s, _mm256_fnmadd_ps(z, _mm256_set1_ps(in.xsum[m * slots + t]), group[m]), acc[m]);
        }
      }
      for (int m = 0; m < kRows; ++m)
        store8(y + m * ldy + (tile - tile0) * kTileRows + 8 * half, acc[m],
               valid_rows(w, tile, 8 * half));
    }
}

template <int kRows, int kCpb>
GPTQ_AVX2 void f32_avx2_tiles(const CpuMatmulWeights &w, const KernelInput &in, int64_t tile0,
                              int64_t tile1, float *y, int64_t ldy) {
  constexpr int kField = 8 / kCpb;
  constexpr int64_t kWidth = 4 * kCpb;
  // Registers allow four accumulators per row of x for one row, two for more.
  constexpr int kAcc = kRows == 1 ? 4 : 2;
  const __m256i mask = _mm256_set1_epi32((1 << kField) - 1);
  const __m256i magic = _mm256_set1_epi32(0x4B000000);  // 2^23
  const int64_t slots = w.slots();
  for (int64_t tile = tile0; tile < tile1; ++tile)
    for (int half = 0; half < 2; ++half) {
      const uint8_t *src = w.tile_codes(tile) + 32 * half;
      const uint16_t *scale = &w.scale[tile * slots * kTileRows + 8 * half];
      const uint16_t *zero = w.tile_zeros(tile) + 8 * half;
      __m256 acc[kRows];
      for (int m = 0; m < kRows; ++m) acc[m] = _mm256_setzero_ps();
      for (int64_t t = 0; t < slots; ++t) {
        const __m256 z =
            _mm256_add_ps(zeros8(zero + t * w.zero_step()), _mm256_set1_ps(8388608.0f));
        __m256 dot[kRows][kAcc];
        for (int m = 0; m < kRows; ++m)
          for (int a = 0; a < kAcc; ++a) dot[m][a] = _mm256_setzero_ps();
        for (int64_t chunk = w.group_begin[t] / kWidth; chunk < w.group_begin[t + 1] / kWidth;
             ++chunk, src += kChunkBytes) {
          prefetch_codes(src);
          const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(src));
          for (int f = 0; f < kCpb; ++f)
            for (int q = 0; q < 4; ++q) {
              const int shift = 8 * q + f * kField;
              const __m256i bits = shift == 0 ? v : _mm256_srli_epi32(v, shift);
              const __m256 c = _mm256_sub_ps(
                  _mm256_castsi256_ps(_mm256_or_si256(_mm256_and_si256(bits, mask), magic)), z);
              const int64_t col = chunk * kWidth + 4 * f + q;
              for (int m = 0; m < kRows; ++m)
                dot[m][q % kAcc] =
                    _mm256_fmadd_ps(c, _mm256_set1_ps(in.x[m * w.kp + col]), dot[m][q % kAcc]);
            }
        }
        const __m256 s = scales8(scale + t * kTileRows);
        for (int m = 0; m < kRows; ++m) {
          __m256 sum = dot[m][0];
          for (int a = 1; a < kAcc; ++a) sum = _mm256_add_ps(sum, dot[m][a]);
          acc[m] = _mm256_fmadd_ps(s, sum, acc[m]);
        }
      }
      for (int m = 0; m < kRows; ++m)
        store8(y + m * ldy + (tile - tile0) * kTileRows + 8 * half, acc[m],
               valid_rows(w, tile, 8 * half));
    }
}

// The AVX-512 nibble kernel's arithmetic (see f32_avx512_nibble_tiles) for
// one row of x on AVX2, a tile as two halves of 8 rows: four operations per
// 8 codes (and, or, subtract, FMA) instead of five, one shift per chunk half.
GPTQ_AVX2 inline __m256 nibble_in_place256(__m256i bits, __m256i mask, __m256i magic, __m256 z) {
  return _mm256_sub_ps(_mm256_castsi256_ps(_mm256_or_si256(_mm256_and_si256(bits, mask), magic)),
                       z);
}

GPTQ_AVX2 void f32_avx2_nibble_tiles(const CpuMatmulWeights &w, const KernelInput &in,
                                     int64_t tile0, int64_t tile1, float *y, int64_t ldy) {
  const __m256i magic = _mm256_set1_epi32(0x4B000000);  // 2^23
  const __m256i mask0 = _mm256_set1_epi32(0xF), mask4 = _mm256_set1_epi32(0xF0),
                mask8 = _mm256_set1_epi32(0xF00), mask12 = _mm256_set1_epi32(0xF000),
                mask16 = _mm256_set1_epi32(0xF0000);
  const int64_t slots = w.slots();
  for (int64_t tile = tile0; tile < tile1; ++tile)
    for (int half = 0; half < 2; ++half) {
      const uint8_t *src = w.tile_codes(tile) + 32 * half;
      const uint16_t *scale = &w.scale[tile * slots * kTileRows + 8 * half];
      const uint16_t *zero = w.tile_zeros(tile) + 8 * half;
      __m256 acc = _mm256_setzero_ps();
      for (int64_t t = 0; t < slots; ++t) {
        const __m256 zr = zeros8(zero + t * w.zero_step()), two23 = _mm256_set1_ps(8388608.0f);
        const __m256 z0 = _mm256_add_ps(zr, two23),
                     z4 = _mm256_fmadd_ps(zr, _mm256_set1_ps(16.0f), two23),
                     z8 = _mm256_fmadd_ps(zr, _mm256_set1_ps(256.0f), two23),
                     z12 = _mm256_fmadd_ps(zr, _mm256_set1_ps(4096.0f), two23),
                     z16 = _mm256_fmadd_ps(zr, _mm256_set1_ps(65536.0f), two23);
        __m256 d0 = _mm256_setzero_ps(), d4 = d0, d8 = d0, d12 = d0, d16 = d0;
        for (int64_t chunk = w.group_begin[t] / 8; chunk < w.group_begin[t + 1] / 8;
             ++chunk, src += kChunkBytes) {
          prefetch_codes(src);
          const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(src));
          const __m256i u = _mm256_srli_epi32(v, 20);
          const float *x = in.x + chunk * 8;
          d0 = _mm256_fmadd_ps(nibble_in_place256(v, mask0, magic, z0), _mm256_set1_ps(x[0]), d0);
          d4 = _mm256_fmadd_ps(nibble_in_place256(v, mask4, magic, z4), _mm256_set1_ps(x[4]), d4);
          d8 = _mm256_fmadd_ps(nibble_in_place256(v, mask8, magic, z8), _mm256_set1_ps(x[1]), d8);
          d12 =
              _mm256_fmadd_ps(nibble_in_place256(v, mask12, magic, z12), _mm256_set1_ps(x[5]), d12);
          d16 =
              _mm256_fmadd_ps(nibble_in_place256(v, mask16, magic, z16), _mm256_set1_ps(x[2]), d16);
          d0 = _mm256_fmadd_ps(nibble_in_place256(u, mask0, magic, z0), _mm256_set1_ps(x[6]), d0);
          d4 = _mm256_fmadd_ps(nibble_in_place256(u, mask4, magic, z4), _mm256_set1_ps(x[3]), d4);
          d8 = _mm256_fmadd_ps(nibble_in_place256(u, mask8, magic, z8), _mm256_set1_ps(x[7]), d8);
        }
        __m256 sum = _mm256_fmadd_ps(d4, _mm256_set1_ps(0x1p-4f), d0);
        sum = _mm256_fmadd_ps(d8, _mm256_set1_ps(0x1p-8f), sum);
        sum = _mm256_fmadd_ps(d12, _mm256_set1_ps(0x1p-12f), sum);
        sum = _mm256_fmadd_ps(d16, _mm256_set1_ps(0x1p-16f), sum);
        acc = _mm256_fmadd_ps(scales8(scale + t * kTileRows), sum, acc);
      }
      store8(y + (tile - tile0) * kTileRows + 8 * half, acc, valid_rows(w, tile, 8 * half));
    }
  (void)ldy;  // one row of x
}

using TileKernel = void (*)(const CpuMatmulWeights &, const KernelInput &, int64_t, int64_t,
                            float *, int64_t);

// Every instantiation of a tile kernel, indexed [rows of x − 1][codes per
// byte 1, 2, 4], up to four rows and (the VNNI kernel) up to eight.
#define GPTQ_TILE_KERNEL_ROW(FN, R) {FN<R, 1>, FN<R, 2>, FN<R, 4>}
#define GPTQ_TILE_KERNELS(FN)                                                         \
  {GPTQ_TILE_KERNEL_ROW(FN, 1), GPTQ_TILE_KERNEL_ROW(FN, 2), GPTQ_TILE_KERNEL_ROW(FN, 3), \
   GPTQ_TILE_KERNEL_ROW(FN, 4)}
#define GPTQ_TILE_KERNELS_8(FN)                                                       \
  {GPTQ_TILE_KERNEL_ROW(FN, 1), GPTQ_TILE_KERNEL_ROW(FN, 2), GPTQ_TILE_KERNEL_ROW(FN, 3), \
   GPTQ_TILE_KERNEL_ROW(FN, 4), GPTQ_TILE_KERNEL_ROW(FN, 5), GPTQ_TILE_KERNEL_ROW(FN, 6), \
   GPTQ_TILE_KERNEL_ROW(FN, 7), GPTQ_TILE_KERNEL_ROW(FN, 8)}

template <int kMaxRows>
TileKernel pick(const TileKernel (&table)[kMaxRows][3], int64_t rows, int cpb) {
  const int r = static_cast<int>(std::clamp<int64_t>(rows, 1, kMaxRows)) - 1;
  return table[r][cpb == 1 ? 0 : cpb == 2 ? 1 : 2];
}

// The int8 kernels for weights with a zero of their own per group and row,
// and for weights that share one (KernelInput::xzero).
template <int kRows, int kCpb>
constexpr auto int8_vnni_varying = int8_vnni_tiles<kRows, kCpb, false>;
template <int kRows, int kCpb>
constexpr auto int8_vnni_uniform = int8_vnni_tiles<kRows, kCpb, true>;
template <int kRows, int kCpb>
constexpr auto int8_avx2_varying = int8_avx2_tiles<kRows, kCpb, false>;
template <int kRows, int kCpb>
constexpr auto int8_avx2_uniform = int8_avx2_tiles<kRows, kCpb, true>;
constexpr TileKernel kInt8Vnni[2][8][3] = {GPTQ_TILE_KERNELS_8(int8_vnni_varying),
                                           GPTQ_TILE_KERNELS_8(int8_vnni_uniform)};
constexpr TileKernel kInt8Avx2[2][4][3] = {GPTQ_TILE_KERNELS(int8_avx2_varying),
                                           GPTQ_TILE_KERNELS(int8_avx2_uniform)};
constexpr TileKernel kF32Avx512[4][3] = GPTQ_TILE_KERNELS(f32_avx512_tiles);
constexpr TileKernel kF32Avx2[4][3] = GPTQ_TILE_KERNELS(f32_avx2_tiles);

#endif  // GPTQ_X86

// The level every kernel of this file runs at (see isa.h).
const Isa kIsa = cpu_isa();

// Rows of x the kernels below hold in registers at once.
constexpr int64_t kRegisterRows = 4;

void f32_rows(const CpuMatmulWeights &w, const KernelInput &in, int64_t tile0, int64_t tile1,
              float *y, int64_t ldy) {
#ifdef GPTQ_X86
  if (kIsa >= Isa::kAvx512) {
    if (w.codes_per_byte == 2 && in.rows <= 2 && in.x_absmax < kNibbleXLimit &&
        w.kp <= kNibbleMaxColumns)
      return (in.rows == 1 ? f32_avx512_nibble_tiles<1>
                           : f32_avx512_nibble_tiles<2>)(w, in, tile0, tile1, y, ldy);
    return pick(kF32Avx512, in.rows, w.codes_per_byte)(w, in, tile0, tile1, y, ldy);
  }
  if (kIsa == Isa::kAvx2) {
    if (w.codes_per_byte == 2 && in.rows == 1 && in.x_absmax < kNibbleXLimit &&
        w.kp <= kNibbleMaxColumns)
      return f32_avx2_nibble_tiles(w, in, tile0, tile1, y, ldy);
    return pick(kF32Avx2, in.rows, w.codes_per_byte)(w, in, tile0, tile1, y, ldy);
  }
#endif
  f32_portable(w, in, tile0, tile1, y, ldy);
}

}  // namespace

void matmul_tiles_f32(const CpuMatmulWeights &w, const KernelInput &in, int64_t tile0,
                      int64_t tile1, float *y, int64_t ldy) {
  for (int64_t m0 = 0; m0 < in.rows; m0 += kRegisterRows)
    f32_rows(w, rows_of(w, in, m0, std::min(kRegisterRows, in.rows - m0)), tile0, tile1,
             y + m0 * ldy, ldy);
}

void matmul_tiles_int8(const CpuMatmulWeights &w, const KernelInput &in, int64_t tile0,
                       int64_t tile1, float *y, int64_t ldy) {
#ifdef GPTQ_X86
  const int uniform = in.xzero != nullptr ? 1 : 0;
  if (kIsa == Isa::kAvx512Vnni)
    return pick(kInt8Vnni[uniform], in.rows, w.codes_per_byte)(w, in, tile0, tile1, y, ldy);
  if (kIsa >= Isa::kAvx2) {
    for (int64_t m0 = 0; m0 < in.rows; m0 += kRegisterRows) {
      const KernelInput part = rows_of(w, in, m0, std::min(kRegisterRows, in.rows - m0));
      pick(kInt8Avx2[uniform], part.rows, w.codes_per_byte)(w, part, tile0, tile1, y + m0 * ldy,
                                                            ldy);
    }
    return;
  }
#endif
  int8_portable(w, in, tile0, tile1, y, ldy);
}

KernelInput rows_of(const CpuMatmulWeights &w, const KernelInput &in, int64_t m0, int64_t count) {
  const int64_t blocks = w.kp / 32;
  KernelInput part = in;
  part.rows = count;
  part.x = in.x + m0 * w.kp;
  if (in.xq != nullptr) {
    part.xq = in.xq + m0 * w.kp;
    part.xscale = in.xscale + m0 * blocks;
    part.xsum = in.xsum + m0 * w.slots();
    if (in.xzero != nullptr) part.xzero = in.xzero + m0 * blocks;
  }
  return part;
}

bool int8_kernels_available() { return kIsa != Isa::kPortable; }

}  // namespace gptq::cpu
