// x's side of the CPU matmul kernels: a few rows of x in the weights' padded
// column order and, for the int8 kernels, rounded to int8 per 32-column
// block, with the blocks' scales and each group slot's sum of the rounded
// values (for the zeros), or, where the weights share one zero, each
// block's sum times that zero.
#pragma once

#include <cstdint>
#include <vector>

#include "matmul_weights.h"

namespace gptq::cpu {

struct PreparedInput {
  std::vector<float> x;       // [rows, kp], reordered and zero-padded
  // x's rows in the padded order: x's data, or, for the int8 kernels when
  // the order is x's own, the caller's rows themselves (x then unused).
  const float *rows = nullptr;
  std::vector<int8_t> xq;     // [rows, kp]
  std::vector<float> xscale;  // [rows, kp/32]
  std::vector<float> xsum;    // [rows, slots]
  // [rows, kp/32], only for weights with a uniform zero z: −z times each
  // block's sum of the rounded values, where the kernels start its sums.
  std::vector<int32_t> xzero;
  float x_absmax = 0.0f;      // max |x|; NaN when x holds a NaN (float32 kernels only)
};

// Rows [0, rows) of x ([rows, w.k]) into `out`; the int8 fields only when
// `int8`. The SIMD builds give exactly what the portable code gives.
void prepare_input(const CpuMatmulWeights &w, const float *x, int64_t rows, bool int8,
                   PreparedInput &out);

}  // namespace gptq::cpu
