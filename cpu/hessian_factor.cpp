#include "hessian_factor.h"

#include <cmath>
#include <string>

#include "blas.h"

namespace gptq::cpu {

namespace {

// A factorization that "succeeds" on tiny pivots is a failure too: GPTQ
// divides by U's diagonal, 1/L's diagonal, and an overflow there would spread
// Inf/NaN into the weights.
template <typename T>
bool usable(const LargeBuffer<T> &l, int64_t n) {
  bool ok = true;
  for (int64_t j = 0; j < n; ++j) {
    const T *col = l.data() + j * n;
    ok = ok && col[j] > T(0) && std::isfinite(T(1) / col[j]);
    for (int64_t i = j; i < n; ++i) ok = ok && std::isfinite(col[i]);
  }
  return ok;
}

}  // namespace

template <typename T>
HessianFactor<T> hessian_factor(int64_t n, double diag_mean,
                                const std::function<void(T *)> &fill_reversed,
                                double damp_percent, double damp_increment, const Logger &logger) {
  HessianFactor<T> result;
  result.n = n;
  result.l = LargeBuffer<T>(static_cast<size_t>(n * n));
  T *a = result.l.data();
  double percent = damp_percent;
  for (;;) {
    fill_reversed(a);
    const T damp = static_cast<T>(percent * diag_mean);
    for (int64_t i = 0; i < n; ++i) a[i * n + i] += damp;
    result.damp_percent = percent;
    if (potrf_lower(static_cast<int>(n), a) == 0 && usable(result.l, n)) {
      result.ok = true;
      return result;
    }
    ++result.retries;
    const double next = percent + damp_increment;
    logger.log(GPTQ_LOG_DEBUG, "Cholesky factorization failed with damp_percent " +
                                   std::to_string(percent) +
                                   (damp_increment > 0.0 && next < 1.0
                                        ? "; retrying with " + std::to_string(next)
                                        : "; no further damping to try"));
    if (!(damp_increment > 0.0) || !(next < 1.0)) return result;
    percent = next;
  }
}

template HessianFactor<float> hessian_factor<float>(int64_t, double,
                                                    const std::function<void(float *)> &, double,
                                                    double, const Logger &);
template HessianFactor<double> hessian_factor<double>(int64_t, double,
                                                      const std::function<void(double *)> &,
                                                      double, double, const Logger &);

}  // namespace gptq::cpu
