// The GPTQ loop on the CPU: the reference algorithm (see gptq_quantize in
// gptq.h for its exact semantics), arranged for speed: one factorization,
// the lazy block update as one BLAS GEMM per block, and each block's
// column-by-column work done row-parallel, with SIMD chosen at run time.
#pragma once

#include <cstdint>
#include <vector>

#include "gptq.h"
#include "large_buffer.h"
#include "log.h"
#include "qtensor.h"

namespace gptq::cpu {

// h_upper: the Hessian [K, K], row-major, upper triangle meaningful; the
// strict lower triangle is used as scratch and the diagonal is restored
// before returning or throwing, so the Hessian's value is unchanged.
// w: the weights [N, K] row-major in precision T, consumed. Fills the
// algorithmic fields of stats (loss, damping, retries, fallback, dead
// columns).
template <typename T>
QTensorData gptq_solve(T *h_upper, LargeBuffer<T> w, int64_t out_features, int64_t in_features,
                       const gptq_config &config, const Logger &logger, gptq_quant_stats &stats);

}  // namespace gptq::cpu
