#include "inverse_factor.h"

#include <cmath>
#include <string>

#include "blas.h"

namespace gptq::cpu {

template <typename T>
InverseFactor<T> inverse_factor(const std::vector<T> &h, int64_t n, double damp_percent,
                                double damp_increment, const Logger &logger) {
  const int64_t nn = n * n;
  double diag_sum = 0.0;
  for (int64_t i = 0; i < n; ++i) diag_sum += static_cast<double>(h[i * n + i]);
  const double diag_mean = diag_sum / static_cast<double>(n);

  InverseFactor<T> result;
  std::vector<T> a(static_cast<size_t>(nn));
  double percent = damp_percent;
  for (;;) {
    // A = J H J is H's flat array reversed (H is symmetric, so row- and
    // column-major agree); then damp its diagonal.
    for (int64_t i = 0; i < nn; ++i) a[i] = h[nn - 1 - i];
    const T damp = static_cast<T>(percent * diag_mean);
    for (int64_t i = 0; i < n; ++i) a[i * n + i] += damp;

    const int info_chol = potrf_lower(static_cast<int>(n), a.data());
    const int info_inv = info_chol == 0 ? trtri_lower(static_cast<int>(n), a.data()) : -1;
    result.damp_percent = percent;
    if (info_chol == 0 && info_inv == 0) {
      // a holds L⁻¹ column-major (lower). U = J L⁻¹ J, row-major:
      // U[i][j] = L⁻¹(n−1−i, n−1−j) = a[(n−1−i) + (n−1−j)·n].
      result.u.assign(static_cast<size_t>(nn), T(0));
      bool finite = true;
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = i; j < n; ++j) {
          const T v = a[(n - 1 - i) + (n - 1 - j) * n];
          finite = finite && std::isfinite(v) && (i != j || v > T(0));
          result.u[i * n + j] = v;
        }
      // A factorization that "succeeds" on tiny pivots can overflow in the
      // inverse, or underflow to a zero diagonal; that is a failure too (GPTQ
      // divides by U's diagonal and would spread Inf/NaN into W).
      if (finite) {
        result.ok = true;
        return result;
      }
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

template InverseFactor<float> inverse_factor<float>(const std::vector<float> &, int64_t, double,
                                                    double, const Logger &);
template InverseFactor<double> inverse_factor<double>(const std::vector<double> &, int64_t, double,
                                                      double, const Logger &);

}  // namespace gptq::cpu
