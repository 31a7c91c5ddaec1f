// SIMD kernels for y = x·Wᵀ over CpuMatmulWeights, for a few rows of x at a
// time. x has already been reordered into the weights' padded column order.
#pragma once

#include <cstdint>

#include "matmul_weights.h"

namespace gptq::cpu {

// Rows of x the kernels handle in one pass over the weights.
constexpr int64_t kKernelRows = 4;

struct KernelInput {
  int64_t rows;         // <= kKernelRows
  const float *x;       // [rows, kp], reordered and zero-padded
  const float *xsum;    // [rows, slots]: Σ x over each group slot (for zeros)
  // int8 path only: x rounded per 32-block, and the blocks' scales.
  const int8_t *xq;     // [rows, kp]
  const float *xscale;  // [rows, kp/32]
  // int8 path, 4-bit, AVX-512: the same values rearranged in units of four
  // 32-blocks (128 columns) of a group, in the order one 64-byte load of
  // packed codes unpacks to (the low 16 columns of each block, then the high
  // 16), and each unit's block scales repeated over the 4 lanes of its block.
  int64_t units;        // units per row of x
  const int8_t *xq4;    // [rows, units, 128]
  const float *xscale4; // [rows, units, 16]
};

// Four-block units of group slot t: the first floor(blocks / 4) blocks.
inline int64_t slot_units(const CpuMatmulWeights &w, int64_t t) {
  return (w.group_begin[t + 1] - w.group_begin[t]) / 128;
}

// y[m·ldy + r] = Σ_p x[m][p]·scale·(code − zero) for output rows [r0, r1).
void matmul_rows_f32(const CpuMatmulWeights &w, const KernelInput &in, int64_t r0, int64_t r1,
                     float *y, int64_t ldy);
// Same with int8 activations (2-, 3-, 4-bit only).
void matmul_rows_int8(const CpuMatmulWeights &w, const KernelInput &in, int64_t r0, int64_t r1,
                      float *y, int64_t ldy);

// True when the int8 kernels have a SIMD build on this CPU.
bool int8_kernels_available();

}  // namespace gptq::cpu
