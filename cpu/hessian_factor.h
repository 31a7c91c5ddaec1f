// The one factorization GPTQ needs: the Cholesky factor of the damped,
// permuted Hessian, taken in reversed order. With J the reversal permutation
// and A = J·Hp·J = L·Lᵀ, the matrix V = J·L·J is upper triangular with
// Hp = V·Vᵀ, and the factor GPTQ feeds errors through is U = V⁻¹ (the upper
// Cholesky factor of Hp⁻¹, H⁻¹ = UᵀU). U is never formed in full: the solver
// works with V directly and inverts only block-sized diagonal tiles (see
// gptq_solver.cpp). If the factorization fails, the damping is raised step
// by step.
//
// No K×K allocation: the Hessian keeps only its upper triangle, so L is
// built in the storage's free lower triangle (row-major) and its diagonal.
// The Hessian's diagonal is saved first and written back when the factor is
// destroyed (on every path, exceptions included), so the Hessian's value is
// unchanged after a solve. A fresh K×K array cost a first touch of every page
// per call (485 MB at K = 11008), and doubled the solve's peak memory beyond
// the weights.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "log.h"

namespace gptq::cpu {

template <typename T>
class HessianFactor {
 public:
  HessianFactor(T *storage, int64_t n);
  ~HessianFactor();
  HessianFactor(HessianFactor &&other) noexcept;
  HessianFactor(const HessianFactor &) = delete;
  HessianFactor &operator=(const HessianFactor &) = delete;
  HessianFactor &operator=(HessianFactor &&) = delete;

  // Row-major [n, n]: L in the lower triangle, diagonal included. Above the
  // diagonal is the Hessian.
  const T *l() const { return storage_; }
  bool ok = false;            // false: every attempt failed
  double damp_percent = 0.0;  // damping of the successful (or last) attempt
  int retries = 0;            // failed attempts

 private:
  T *storage_;
  int64_t n_;
  std::vector<T> diagonal_;  // the Hessian's, restored by the destructor
};

// storage: the Hessian, row-major [n, n], upper triangle meaningful; the
// strict lower triangle is overwritten. fill_lower(a) must write the lower
// triangle, diagonal included, of J·Hp·J, undamped, with a positive
// diagonal, row-major (a[i·n + j], j <= i), reading the Hessian only above
// the diagonal (its diagonal is the factor's from the first attempt on, so
// the caller brings its own copy); diag_mean is the mean of Hp's diagonal.
// Tries damp_percent, then adds damp_increment while the damping stays below
// 1 (one attempt only when damp_increment is 0).
template <typename T>
HessianFactor<T> hessian_factor(T *storage, int64_t n, double diag_mean,
                                const std::function<void(T *)> &fill_lower, double damp_percent,
                                double damp_increment, const Logger &logger);

}  // namespace gptq::cpu
