// SIMD kernels for y = x·Wᵀ over CpuMatmulWeights, for a few rows of x at a
// time and a range of 16-row tiles of W. x has already been reordered into
// the weights' padded column order.
#pragma once

#include <cstdint>

#include "matmul_weights.h"

namespace gptq::cpu {

// Rows of x one call of the tile functions below takes. The VNNI kernel
// multiplies all of them in one pass over the weights (its integer sums need
// one register per row); the others hold four rows' sums in registers and
// take the rows four at a time, over the same few tiles while those are
// still in cache. Eight decoded sequences thus stream the weights once.
constexpr int64_t kKernelRows = 8;

struct KernelInput {
  int64_t rows;    // <= kKernelRows for the tile functions
  const float *x;  // [rows, kp], reordered and zero-padded
  // int8 path only: x rounded per 32-block, the blocks' scales, and the sum
  // of the rounded values over each group slot (for the zeros).
  const float *xsum;    // [rows, slots]
  const int8_t *xq;     // [rows, kp]
  const float *xscale;  // [rows, kp/32]
  // With the weights' uniform_zero z (else null): [rows, kp/32], −z times
  // each block's sum of the rounded values; the kernels start each block's
  // integer sum there, which makes it Σ (code − z)·xq, and leave xsum unread.
  const int32_t *xzero;
  // max |x| over these rows (NaN when x holds one): the float32 nibble
  // kernels (AVX-512, AVX2), whose partial sums are up to 2^16 times the
  // plain ones, run only below kNibbleXLimit (see there).
  float x_absmax;
};

// With |x| < 2^64 and at most 2^30 padded columns, every partial sum of the
// nibble kernels stays below 2^64 · 2^16 · 15 · 2^28 < 2^127: finite whenever
// x is. Larger activations (no network has them) take the plain kernel.
constexpr float kNibbleXLimit = 0x1p64f;
constexpr int64_t kNibbleMaxColumns = int64_t(1) << 30;

// y[m·ldy + r − kTileRows·tile0] = Σ_p x[m][p]·scale·(code − zero) for the output
// rows r of tiles [tile0, tile1) (rows past out_features are not written):
// y points at the first output of tile0.
void matmul_tiles_f32(const CpuMatmulWeights &w, const KernelInput &in, int64_t tile0,
                      int64_t tile1, float *y, int64_t ldy);
// Same with int8 activations (2-, 3-, 4-bit only):
// Σ_groups scale·(Σ_blocks xscale·Σ code·xq − zero·xsum), or with a uniform
// zero z (in.xzero) Σ_groups scale·Σ_blocks xscale·Σ (code − z)·xq.
void matmul_tiles_int8(const CpuMatmulWeights &w, const KernelInput &in, int64_t tile0,
                       int64_t tile1, float *y, int64_t ldy);

// Rows [m0, m0 + count) of an input.
KernelInput rows_of(const CpuMatmulWeights &w, const KernelInput &in, int64_t m0, int64_t count);

// True when the int8 kernels have a SIMD build on this CPU.
bool int8_kernels_available();

}  // namespace gptq::cpu
