#include "hessian_factor.h"

#include <cmath>
#include <string>

#include "blas.h"

namespace gptq::cpu {

namespace {

// A factorization that "succeeds" on tiny pivots is a failure too: GPTQ
// divides by U's diagonal, 1/L's diagonal, and an overflow there would spread
// Inf/NaN into the weights. Only the diagonal needs looking at: every entry
// L[i][j] of row i enters the pivot of row i, A[i][i] − Σ_j L[i][j]², so a
// non-finite entry anywhere in the row (the input being finite) makes that
// pivot −Inf or NaN: LAPACK then fails, or L[i][i] = sqrt(pivot) is NaN.
template <typename T>
bool usable(const T *l, int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    const T d = l[j * n + j];
    if (!(d > T(0)) || !std::isfinite(d) || !std::isfinite(T(1) / d)) return false;
  }
  return true;
}

}  // namespace

template <typename T>
HessianFactor<T>::HessianFactor(T *storage, int64_t n)
    : storage_(storage), n_(n), diagonal_(static_cast<size_t>(n)) {
  for (int64_t i = 0; i < n; ++i) diagonal_[i] = storage[i * n + i];
}

template <typename T>
HessianFactor<T>::~HessianFactor() {
  if (storage_ != nullptr)
    for (int64_t i = 0; i < n_; ++i) storage_[i * n_ + i] = diagonal_[i];
}

template <typename T>
HessianFactor<T>::HessianFactor(HessianFactor &&other) noexcept
    : ok(other.ok),
      damp_percent(other.damp_percent),
      retries(other.retries),
      storage_(other.storage_),
      n_(other.n_),
      diagonal_(std::move(other.diagonal_)) {
  other.storage_ = nullptr;
}

template <typename T>
HessianFactor<T> hessian_factor(T *storage, int64_t n, double diag_mean,
                                const std::function<void(T *)> &fill_lower, double damp_percent,
                                double damp_increment, const Logger &logger) {
  HessianFactor<T> result(storage, n);
  double percent = damp_percent;
  for (;;) {
    fill_lower(storage);
    const T damp = static_cast<T>(percent * diag_mean);
    for (int64_t i = 0; i < n; ++i) storage[i * n + i] += damp;
    result.damp_percent = percent;
    if (potrf_lower_rowmajor(static_cast<int>(n), storage) == 0 && usable(storage, n)) {
      result.ok = true;
      return result;
    }
    ++result.retries;
    const double next = percent + damp_increment;
    logger.log(GPTQ_LOG_DEBUG,
               "Cholesky factorization failed with damp_percent " + std::to_string(percent) +
                   (damp_increment > 0.0 && next < 1.0 ? "; retrying with " + std::to_string(next)
                                                       : "; no further damping to try"));
    if (!(damp_increment > 0.0) || !(next < 1.0)) return result;
    percent = next;
  }
}

template class HessianFactor<float>;
template class HessianFactor<double>;
template HessianFactor<float> hessian_factor<float>(float *, int64_t, double,
                                                    const std::function<void(float *)> &, double,
                                                    double, const Logger &);
template HessianFactor<double> hessian_factor<double>(double *, int64_t, double,
                                                      const std::function<void(double *)> &, double,
                                                      double, const Logger &);

}  // namespace gptq::cpu
