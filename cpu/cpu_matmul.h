// y = x·Wᵀ (+ bias) on the CPU for quantized W. Up to kSmallBatch rows run
// the SIMD kernels over the packed codes (f32 or int8 activations); larger
// batches dequantize W a tile of output rows at a time and use sgemm, which
// is compute-bound there anyway.
#pragma once

#include <cstdint>

#include "backend.h"
#include "gptq.h"
#include "matmul_weights.h"
#include "qtensor.h"

namespace gptq::cpu {

// Up to 32 rows the kernels (one pass over the weights per 8 rows) beat
// dequantize + sgemm on every shape measured (bench/RESULTS.md).
constexpr int64_t kSmallBatch = 32;

void cpu_matmul(const QTensorData &q, const CpuMatmulWeights &weights, const void *x,
                gptq_dtype dtype, int64_t rows, const void *bias, void *y,
                const MatmulOptions &options);

// The large-batch path, also the reference the kernels are tested against:
// output features [c0, c1) into y (feature c0 of row 0; rows ldy apart).
void matmul_dequant_sgemm(const QTensorData &q, const float *x, int64_t rows, int64_t c0,
                          int64_t c1, float *y, int64_t ldy);

}  // namespace gptq::cpu
