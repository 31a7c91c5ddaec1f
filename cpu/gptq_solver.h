// The GPTQ loop on the CPU: the reference algorithm (see gptq_quantize in
// gptq.h for its exact semantics), with lazy block updates as BLAS GEMMs.
#pragma once

#include <cstdint>
#include <vector>

#include "gptq.h"
#include "log.h"
#include "qtensor.h"

namespace gptq::cpu {

// h: the full symmetric Hessian [K, K]; w: weights [N, K]; both row-major in
// precision T and consumed (modified in place). Fills the algorithmic fields
// of stats (loss, damping, retries, fallback, dead columns).
template <typename T>
QTensorData gptq_solve(std::vector<T> h, std::vector<T> w, int64_t out_features,
                       int64_t in_features, const gptq_config &config, const Logger &logger,
                       gptq_quant_stats &stats);

}  // namespace gptq::cpu
