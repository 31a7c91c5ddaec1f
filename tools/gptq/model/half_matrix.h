// A matrix of 16-bit floats (F16 or BF16 bits) kept as the checkpoint stores
// it, and its product with float32 activations. An lm_head or embedding
// table stored in 16 bits stays in 16 bits: half the memory of float32, and
// half the bytes a decode step reads, which for an lm_head is the whole
// matrix for a token or a few. Every value widens to float32 exactly, so the
// product is that of the widened float32 weights up to summation order.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/huge_page_allocator.h"
#include "formats/safetensors.h"

namespace gptqtool {

class ModelDir;

struct HalfMatrix {
  int64_t rows = 0, cols = 0;
  TensorDType dtype = TensorDType::F16;  // F16 or BF16
  // [rows, cols], row-major; on huge pages (an lm_head's is read whole
  // every decode step)
  HugePageVector<uint16_t> bits;

  // Rows [r0, r1) widened to float32 into out[(r1 − r0)·cols], row after row.
  void widen_rows(int64_t r0, int64_t r1, float *out) const;
  void row(int64_t r, float *out) const { widen_rows(r, r + 1, out); }
};

// Tensor `tensor` of `dir`, checked to be [rows, cols], when it is stored as
// F16 or BF16; null when it is stored in another dtype or absent.
std::shared_ptr<const HalfMatrix> load_half_matrix(const ModelDir &dir, const std::string &tensor,
                                                   int64_t rows, int64_t cols);

// y[m·ldy + n] = Σ_k x[m·cols + k]·W[n][k] for the rows m < x_rows of x and
// the output features n0 <= n < n1 (W's rows); y's other features are not
// touched. Each value is summed the same way whatever the range, the number
// of rows of x and the CPU's vector width: 16 partial sums (k mod 16, each in
// increasing k), then added pairwise (i and i + 8, i + 4, i + 2, i + 1).
void half_matmul(const HalfMatrix &w, const float *x, int64_t x_rows, int64_t n0, int64_t n1,
                 float *y, int64_t ldy);

}  // namespace gptqtool
