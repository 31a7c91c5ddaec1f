// The CPU backend's Hessian: H = 2/n Σ x xᵀ as a running mean (weights from
// the context), accumulated with BLAS syrk on tiles of rows (only the upper
// triangle is maintained).
#pragma once

#include <vector>

#include "backend.h"

namespace gptq::cpu {

template <typename T>
class CpuHessian final : public Hessian {
 public:
  explicit CpuHessian(int64_t dim);

  int64_t dim() const override { return dim_; }
  void add_batch(const void *x, gptq_dtype dtype, int64_t rows, Memory memory, double beta,
                 double alpha) override;
  void merge(const double *h, double keep, double take) override;
  void export_to(double *h) const override;

  // Row-major [dim, dim]; only the upper triangle (j >= i) is meaningful.
  // Writable: the solver builds its Cholesky factor below the diagonal and
  // restores the diagonal (see hessian_factor.h).
  T *storage() { return upper_.data(); }

 private:
  int64_t dim_;
  std::vector<T> upper_;  // row-major [dim, dim]; entries below the diagonal are stale
};

}  // namespace gptq::cpu
