// The CPU backend: OpenBLAS + LAPACKE. Always available.
#include <algorithm>
#include <chrono>
#include <memory>
#include <vector>

#include "backend.h"
#include "cpu_hessian.h"
#include "cpu_matmul.h"
#include "dtype.h"
#include "error.h"
#include "gptq_solver.h"
#include "matmul_weights.h"
#include "thread_pool.h"

namespace gptq::cpu {

namespace {

class CpuBackend final : public Backend {
 public:
  gptq_backend kind() const override { return GPTQ_BACKEND_CPU; }
  const char *name() const override { return "cpu"; }

  std::unique_ptr<Hessian> create_hessian(int64_t dim, gptq_precision precision,
                                          void *) override {
    if (precision == GPTQ_PRECISION_F64) return std::make_unique<CpuHessian<double>>(dim);
    return std::make_unique<CpuHessian<float>>(dim);
  }

  QTensorData quantize(Hessian &hessian, const QuantizeJob &job, gptq_quant_stats &stats) override {
    if (auto *h32 = dynamic_cast<CpuHessian<float> *>(&hessian)) return run(*h32, job, stats);
    if (auto *h64 = dynamic_cast<CpuHessian<double> *>(&hessian)) return run(*h64, job, stats);
    throw Error(GPTQ_ERR_INTERNAL, "gptq_quantize: the Hessian does not belong to the CPU backend");
  }

  std::unique_ptr<PreparedWeights> prepare(const QTensorData &q, void *) override {
    return prepare_matmul_weights(q);
  }

  // The layout holds every code (CpuMatmulWeights::read_codes), so the
  // bytes go: an imported tensor keeps its codes once, at its bit width.
  // Its scales and zeros go as well where the layout holds each group's
  // (a group without columns, possible with act-order, has no slot), on
  // GPTQ's grid (GGUF grids keep mins or two-level scales beside them).
  // At group 32 and 4 bits that is 6 bytes a group of 16 bytes of codes.
  std::shared_ptr<const PreparedWeights> prepare_holding_codes(QTensorData &q, void *) override {
    std::shared_ptr<const CpuMatmulWeights> w = prepare_matmul_weights(q);
    q.code_source = w;
    decltype(q.codes)().swap(q.codes);
    if (w->slots() == q.groups && q.grid == GPTQ_GRID_GPTQ && q.mins.empty() &&
        q.sub_scales.empty()) {
      q.param_source = w;
      decltype(q.scales)().swap(q.scales);
      decltype(q.zeros)().swap(q.zeros);
    }
    return w;
  }

  void matmul(const QTensorData &q, const PreparedWeights &prepared, const void *x,
              gptq_dtype dtype, int64_t rows, const void *bias, void *y,
              const MatmulOptions &options) override {
    const auto *weights = dynamic_cast<const CpuMatmulWeights *>(&prepared);
    if (weights == nullptr)
      throw Error(GPTQ_ERR_INTERNAL, "gptq_matmul: the tensor was not prepared by the CPU backend");
    cpu_matmul(q, *weights, x, dtype, rows, bias, y, options);
  }

 private:
  template <typename T>
  static QTensorData run(CpuHessian<T> &hessian, const QuantizeJob &job, gptq_quant_stats &stats) {
    const int64_t k = hessian.dim();
    const int64_t n = job.out_features;
    LargeBuffer<T> w(static_cast<size_t>(n * k));
    // On both cores, in chunks of rows: the copy is the first touch of a
    // fresh N×K buffer, and its page faults cost more than the conversion.
    constexpr int64_t kRowsPerChunk = 64;
    const size_t row_bytes = dtype_size(job.dtype, "gptq_quantize") * static_cast<size_t>(k);
    ThreadPool::instance().parallel_for(
        (n + kRowsPerChunk - 1) / kRowsPerChunk, job.config.num_threads, [&](int64_t chunk) {
          const int64_t r0 = chunk * kRowsPerChunk, r1 = std::min(n, r0 + kRowsPerChunk);
          convert_to<T>(static_cast<const char *>(job.weights) + r0 * row_bytes, job.dtype,
                        (r1 - r0) * k, &w[r0 * k]);
        });
    return gptq_solve<T>(hessian.storage(), std::move(w), job.out_features, k, job.config,
                         job.logger, stats);
  }
};

}  // namespace

}  // namespace gptq::cpu

namespace gptq {
Backend &cpu_backend() {
  static cpu::CpuBackend backend;
  return backend;
}
}  // namespace gptq
