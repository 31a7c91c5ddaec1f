#include "cuda_hessian.h"

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <string>
#include <type_traits>
#include <vector>

#include "cuda_status.h"
#include "device_context.h"
#include "device_convert.h"
#include "plugin_error.h"

namespace gptq_cuda {
namespace {

// Bound on the device staging buffers of one add_batch: a batch is streamed
// through in tiles of rows so that any batch size works in bounded memory.
constexpr size_t kTileBytes = size_t(64) << 20;

// Upper triangle (column-major, i <= j) of H ← keep·H + take·src.
template <typename T>
__global__ void merge_kernel(T *h, const double *src, int64_t n, double keep, double take) {
  const int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (idx >= n * n) return;
  const int64_t i = idx % n, j = idx / n;
  if (i > j) return;
  h[idx] = static_cast<T>(keep * static_cast<double>(h[idx]) + take * src[i * n + j]);
}

template <typename T>
class CudaHessian final : public DeviceHessian {
 public:
  CudaHessian(int64_t dim, void *stream)
      : dim_(dim), stream_(as_stream(stream)), h_(static_cast<size_t>(dim * dim), stream_) {
    check_cuda(cudaMemsetAsync(h_.get(), 0, sizeof(T) * dim * dim, stream_), "cudaMemsetAsync");
  }

  int64_t dim() const override { return dim_; }
  gptq_precision precision() const override {
    return std::is_same<T, double>::value ? GPTQ_PRECISION_F64 : GPTQ_PRECISION_F32;
  }
  const void *data() const override { return h_.get(); }
  void *stream() const override { return stream_; }

  void add_batch(const void *x, gptq_dtype dtype, int64_t rows, bool device, double beta,
                 double alpha) override {
    const size_t in_bytes = dtype_bytes(dtype);
    const int64_t n = dim_;
    // Row-major x [rows, n] is, column-major, xᵀ with leading dimension n, so
    // syrk without transpose on it gives xᵀx.
    if (device && std::is_same<T, float>::value && dtype == GPTQ_DTYPE_F32) {
      syrk(static_cast<const T *>(x), rows, beta, alpha);
      return;
    }
    // All staging memory is allocated before H is touched, so running out of
    // device memory leaves H unchanged.
    const int64_t per_row = static_cast<int64_t>(std::max(in_bytes, sizeof(T))) * n;
    const int64_t tile_rows =
        std::max<int64_t>(1, std::min<int64_t>(rows, static_cast<int64_t>(kTileBytes) / per_row));
    DeviceArray<char> staged(device ? 0 : static_cast<size_t>(tile_rows * n) * in_bytes, stream_);
    DeviceArray<T> converted(static_cast<size_t>(tile_rows * n), stream_);
    double b = beta;
    for (int64_t r0 = 0; r0 < rows; r0 += tile_rows) {
      const int64_t count = std::min(tile_rows, rows - r0);
      const char *src = static_cast<const char *>(x) + static_cast<size_t>(r0 * n) * in_bytes;
      if (!device) {
        // From pageable memory this returns once the data is staged, so the
        // caller's buffer is free when add_batch returns.
        check_cuda(cudaMemcpyAsync(staged.get(), src, static_cast<size_t>(count * n) * in_bytes,
                                   cudaMemcpyHostToDevice, stream_),
                   "cudaMemcpyAsync");
        src = staged.get();
      }
      convert_on_device(src, dtype, count * n, converted.get(), stream_);
      syrk(converted.get(), count, b, alpha);
      b = 1.0;
    }
  }

  void merge(const double *src, double keep, double take) override {
    const int64_t n = dim_;
    DeviceArray<double> d_src(static_cast<size_t>(n * n), stream_);
    check_cuda(cudaMemcpyAsync(d_src.get(), src, sizeof(double) * n * n, cudaMemcpyHostToDevice,
                               stream_),
               "cudaMemcpyAsync");
    merge_kernel<T><<<blocks_for(n * n, 256), 256, 0, stream_>>>(h_.get(), d_src.get(), n, keep,
                                                                 take);
    check_launch("merge_kernel");
    sync_stream(stream_, "hessian_merge");
  }

  void export_to(double *dst) const override {
    const int64_t n = dim_;
    std::vector<T> host(static_cast<size_t>(n * n));
    check_cuda(cudaMemcpyAsync(host.data(), h_.get(), sizeof(T) * n * n, cudaMemcpyDeviceToHost,
                               stream_),
               "cudaMemcpyAsync");
    sync_stream(stream_, "hessian_export");
    // Column-major upper: element (i, j), i <= j, lives at i + j·n.
    for (int64_t j = 0; j < n; ++j)
      for (int64_t i = 0; i <= j; ++i) {
        const double v = static_cast<double>(host[i + j * n]);
        dst[i * n + j] = v;
        dst[j * n + i] = v;
      }
  }

 private:
  void syrk(const T *x, int64_t rows, double beta, double alpha) {
    const T a = static_cast<T>(alpha), b = static_cast<T>(beta);
    const int n = static_cast<int>(dim_), k = static_cast<int>(rows);
    cublasHandle_t blas = blas_handle(stream_);
    if constexpr (std::is_same<T, float>::value)
      check_cublas(cublasSsyrk(blas, CUBLAS_FILL_MODE_UPPER, CUBLAS_OP_N, n, k, &a, x, n, &b,
                               h_.get(), n),
                   "cublasSsyrk");
    else
      check_cublas(cublasDsyrk(blas, CUBLAS_FILL_MODE_UPPER, CUBLAS_OP_N, n, k, &a, x, n, &b,
                               h_.get(), n),
                   "cublasDsyrk");
  }

  int64_t dim_;
  cudaStream_t stream_;
  DeviceArray<T> h_;  // column-major [dim, dim], upper triangle meaningful
};

}  // namespace

std::unique_ptr<DeviceHessian> make_device_hessian(int64_t dim, gptq_precision precision,
                                                   void *stream) {
  if (precision == GPTQ_PRECISION_F64) return std::make_unique<CudaHessian<double>>(dim, stream);
  return std::make_unique<CudaHessian<float>>(dim, stream);
}

}  // namespace gptq_cuda
