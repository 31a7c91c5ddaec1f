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
void CpuHessian<T>::add_batch(const void *x, gptq_dtype dtype, int64_t rows, int64_t samples) {
  const int n = static_cast<int>(dim_);
  // The reference's running mean: H ← H·n_old/n_new, then H += (2/n_new)·xᵀx.
  // The rescale is folded into the first syrk call as its beta.
  const int64_t total = samples_ + samples;
  const T keep = static_cast<T>(static_cast<double>(samples_) / static_cast<double>(total));
  const T alpha = static_cast<T>(2.0 / static_cast<double>(total));

  if (std::is_same<T, float>::value && dtype == GPTQ_DTYPE_F32) {
    syrk_upper_at_a(n, static_cast<int>(rows), alpha, static_cast<const T *>(x), keep,
                    upper_.data());
  } else {
    // Allocate before touching H, so a failed allocation leaves it intact.
    std::vector<T> tile(static_cast<size_t>(std::min(rows, kRowsPerTile) * dim_));
    const size_t row_bytes = dtype_size(dtype, "gptq_add_batch") * static_cast<size_t>(dim_);
    T beta = keep;
    for (int64_t r0 = 0; r0 < rows; r0 += kRowsPerTile) {
      const int64_t count = std::min(kRowsPerTile, rows - r0);
      convert_to<T>(static_cast<const char *>(x) + r0 * row_bytes, dtype, count * dim_,
                    tile.data());
      syrk_upper_at_a(n, static_cast<int>(count), alpha, tile.data(), beta, upper_.data());
      beta = T(1);
    }
  }
  samples_ = total;
}

template <typename T>
void CpuHessian<T>::merge(const double *h, int64_t samples) {
  const int64_t total = samples_ + samples;
  const double keep = static_cast<double>(samples_) / static_cast<double>(total);
  const double take = static_cast<double>(samples) / static_cast<double>(total);
  for (int64_t i = 0; i < dim_; ++i)
    for (int64_t j = i; j < dim_; ++j) {
      T &dst = upper_[i * dim_ + j];
      dst = static_cast<T>(keep * static_cast<double>(dst) + take * h[i * dim_ + j]);
    }
  samples_ = total;
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
