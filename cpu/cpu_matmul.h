// y = x·Wᵀ (+ bias) on the CPU for quantized W: dequantize W a tile of output
// rows at a time (bounded memory) and multiply each tile with sgemm.
#pragma once

#include <cstdint>

#include "gptq.h"
#include "qtensor.h"

namespace gptq::cpu {

void matmul_dequant_sgemm(const QTensorData &q, const void *x, gptq_dtype dtype, int64_t rows,
                          const void *bias, void *y);

}  // namespace gptq::cpu
