// U, the upper Cholesky factor of the damped inverse Hessian (H⁻¹ = UᵀU),
// which GPTQ's error feedback uses. One Cholesky and one triangular inverse:
// with J the reversal permutation, U = J · chol(J H J)⁻¹ · J. If the
// factorization fails, the damping is raised step by step.
#pragma once

#include <cstdint>
#include <vector>

#include "log.h"

namespace gptq::cpu {

template <typename T>
struct InverseFactor {
  bool ok = false;              // false: every attempt failed
  std::vector<T> u;             // row-major [n, n], upper triangle; zeros below
  double damp_percent = 0.0;    // damping of the successful (or last) attempt
  int retries = 0;              // failed attempts
};

// h: full symmetric row-major [n, n] with a positive diagonal (dead columns
// already fixed). Tries damp_percent, then adds damp_increment while the
// damping stays below 1 (one attempt only when damp_increment is 0).
template <typename T>
InverseFactor<T> inverse_factor(const std::vector<T> &h, int64_t n, double damp_percent,
                                double damp_increment, const Logger &logger);

}  // namespace gptq::cpu
