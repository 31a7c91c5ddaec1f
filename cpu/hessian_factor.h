// The one factorization GPTQ needs: the Cholesky factor of the damped,
// permuted Hessian, taken in reversed order. With J the reversal permutation
// and A = J·Hp·J = L·Lᵀ, the matrix V = J·L·J is upper triangular with
// Hp = V·Vᵀ, and the factor GPTQ feeds errors through is U = V⁻¹ (the upper
// Cholesky factor of Hp⁻¹, H⁻¹ = UᵀU). U is never formed in full: the solver
// works with V directly and inverts only block-sized diagonal tiles (see
// gptq_solver.cpp). If the factorization fails, the damping is raised step
// by step.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "large_buffer.h"

#include "log.h"

namespace gptq::cpu {

template <typename T>
struct HessianFactor {
  bool ok = false;            // false: every attempt failed
  int64_t n = 0;
  LargeBuffer<T> l;           // column-major [n, n]; lower triangle holds L
  double damp_percent = 0.0;  // damping of the successful (or last) attempt
  int retries = 0;            // failed attempts
};

// fill_reversed(a) must write the lower triangle (column-major, a[i + j·n]
// for i >= j) of J·Hp·J, undamped, with a positive diagonal; diag_mean is the
// mean of Hp's diagonal. Tries damp_percent, then adds damp_increment while
// the damping stays below 1 (one attempt only when damp_increment is 0).
template <typename T>
HessianFactor<T> hessian_factor(int64_t n, double diag_mean,
                                const std::function<void(T *)> &fill_reversed,
                                double damp_percent, double damp_increment, const Logger &logger);

}  // namespace gptq::cpu
