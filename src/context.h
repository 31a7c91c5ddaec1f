// The layer context behind the opaque gptq_ctx handle, and the one
// definition of the running mean its Hessian is: the context counts the
// samples and hands each backend the weights to apply.
#pragma once

#include <memory>

#include "backend.h"
#include "gptq.h"
#include "log.h"

namespace gptq {

// H ← beta·H + alpha·xᵀx: with n samples so far and s more, the mean of the
// reference, H·n/(n+s) + (2/(n+s))·xᵀx.
struct BatchWeights {
  double beta;
  double alpha;
};
// The caller has checked that seen + added does not overflow.
inline BatchWeights batch_weights(int64_t seen, int64_t added) {
  const double total = static_cast<double>(seen + added);
  return {static_cast<double>(seen) / total, 2.0 / total};
}

// H ← keep·H + take·H': the sample-weighted mean of two Hessians.
struct MergeWeights {
  double keep;
  double take;
};
inline MergeWeights merge_weights(int64_t seen, int64_t added) {
  const double total = static_cast<double>(seen + added);
  return {static_cast<double>(seen) / total, static_cast<double>(added) / total};
}

}  // namespace gptq

struct gptq_ctx {
  int64_t out_features = 0;
  int64_t in_features = 0;
  gptq_config config{};
  gptq::Logger logger;
  gptq::Backend *backend = nullptr;          // not owned; lives for the process
  std::unique_ptr<gptq::Hessian> hessian;    // owned; on the backend
  int64_t samples = 0;                       // calibration samples in the Hessian
};
