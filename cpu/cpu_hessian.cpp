#include "cpu_hessian.h"

#include <algorithm>
#include <type_traits>

#include "blas.h"
#include "dtype.h"

namespace gptq::cpu {

namespace {
// Rows converted per syrk call when the input is not already in precision T:
// bounds the temporary to rows_per_tile · dim elements instead of a full copy.
constexpr int64_t kRowsPerTile = 256;
}  // namespace

template <typename T>
CpuHessian<T>::CpuHessian(int64_t dim) : dim_(dim), upper_(static_cast<size_t>(dim * dim), T(0)) {}

template <typename T>
void CpuHessian<T>::add_batch(const void *x, gptq_dtype dtype, int64_t rows, Memory,
                              double beta, double alpha_weight) {
  const int n = static_cast<int>(dim_);
  // The running mean's rescale is folded into the first syrk call as its
  // beta.
  const T keep = static_cast<T>(beta);
  const T alpha = static_cast<T>(alpha_weight);

  if (std::is_same<T, float>::value && dtype == GPTQ_DTYPE_F32) {
    syrk_upper_at_a(n, static_cast<int>(rows), alpha, static_cast<const T *>(x), keep,
                    upper_.data());
  } else {
    // Allocate before touching H, so a failed allocation leaves it intact.
    std::vector<T> tile(static_cast<size_t>(std::min(rows, kRowsPerTile) * dim_));
    const size_t row_bytes = dtype_size(dtype, "gptq_add_batch") * static_cast<size_t>(dim_);
    T syrk_beta = keep;
    for (int64_t r0 = 0; r0 < rows; r0 += kRowsPerTile) {
      const int64_t count = std::min(kRowsPerTile, rows - r0);
      convert_to<T>(static_cast<const char *>(x) + r0 * row_bytes, dtype, count * dim_,
                    tile.data());
      syrk_upper_at_a(n, static_cast<int>(count), alpha, tile.data(), syrk_beta,
                      upper_.data());
      syrk_beta = T(1);
    }
  }
}

template <typename T>
void CpuHessian<T>::merge(const double *h, double keep, double take) {
  for (int64_t i = 0; i < dim_; ++i)
    for (int64_t j = i; j < dim_; ++j) {
      T &dst = upper_[i * dim_ + j];
      dst = static_cast<T>(keep * static_cast<double>(dst) + take * h[i * dim_ + j]);
    }
}

template <typename T>
void CpuHessian<T>::export_to(double *h) const {
  for (int64_t i = 0; i < dim_; ++i)
    for (int64_t j = i; j < dim_; ++j) {
      const double v = static_cast<double>(upper_[i * dim_ + j]);
      h[i * dim_ + j] = v;
      h[j * dim_ + i] = v;
    }
}

template class CpuHessian<float>;
template class CpuHessian<double>;

}  // namespace gptq::cpu
