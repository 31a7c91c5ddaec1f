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
#include "plugin_error.h"

namespace gptq_cuda {
namespace {

// Bound on the device staging buffers of one add_batch: a batch is streamed
// through in tiles of rows so that any batch size works in bounded memory.
constexpr size_t kTileBytes = size_t(64) << 20;

// Owning device allocation.
template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t count) {
    if (count > 0) check_cuda(cudaMalloc(reinterpret_cast<void **>(&ptr_), count * sizeof(T)), "cudaMalloc");
  }
  ~DeviceBuffer() {
    if (ptr_ != nullptr) cudaFree(ptr_);
  }
  DeviceBuffer(const DeviceBuffer &) = delete;
  DeviceBuffer &operator=(const DeviceBuffer &) = delete;
  T *get() const { return ptr_; }

 private:
  T *ptr_ = nullptr;
};

size_t dtype_bytes(gptq_dtype dtype) {
  switch (dtype) {
    case GPTQ_DTYPE_F32: return 4;
    case GPTQ_DTYPE_F16:
    case GPTQ_DTYPE_BF16: return 2;
  }
  throw PluginError(GPTQ_ERR_UNSUPPORTED, "hessian_add_batch: unknown dtype");
}

template <typename T>
__global__ void convert_kernel(const void *src, gptq_dtype dtype, int64_t count, T *dst) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i >= count) return;
  float v;
  if (dtype == GPTQ_DTYPE_F32) {
    v = static_cast<const float *>(src)[i];
  } else if (dtype == GPTQ_DTYPE_F16) {
    v = __half2float(__ushort_as_half(static_cast<const unsigned short *>(src)[i]));
  } else {
    v = __bfloat162float(__ushort_as_bfloat16(static_cast<const unsigned short *>(src)[i]));
  }
  dst[i] = static_cast<T>(v);
}

// Upper triangle (column-major, i <= j) of H ← keep·H + take·src.
template <typename T>
__global__ void merge_kernel(T *h, const double *src, int64_t n, double keep, double take) {
  const int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (idx >= n * n) return;
  const int64_t i = idx % n, j = idx / n;
  if (i > j) return;
  h[idx] = static_cast<T>(keep * static_cast<double>(h[idx]) + take * src[i * n + j]);
}

unsigned blocks_for(int64_t count, unsigned threads) {
  return static_cast<unsigned>((count + threads - 1) / threads);
}

template <typename T>
class CudaHessian final : public DeviceHessian {
 public:
  explicit CudaHessian(int64_t dim) : dim_(dim), h_(static_cast<size_t>(dim * dim)) {
    check_cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
    const cublasStatus_t s = cublasCreate(&blas_);
    if (s != CUBLAS_STATUS_SUCCESS) {
      cudaStreamDestroy(stream_);
      check_cublas(s, "cublasCreate");
    }
    // The destructor does not run for a constructor that throws.
    try {
      check_cublas(cublasSetStream(blas_, stream_), "cublasSetStream");
      check_cuda(cudaMemsetAsync(h_.get(), 0, sizeof(T) * dim * dim, stream_), "cudaMemsetAsync");
      sync("hessian_create");
    } catch (...) {
      cublasDestroy(blas_);
      cudaStreamDestroy(stream_);
      throw;
    }
  }
  ~CudaHessian() override {
    cublasDestroy(blas_);
    cudaStreamDestroy(stream_);
  }

  void add_batch(const void *x, gptq_dtype dtype, int64_t rows, bool device, double beta,
                 double alpha) override {
    const size_t in_bytes = dtype_bytes(dtype);
    const bool direct = device && std::is_same<T, float>::value && dtype == GPTQ_DTYPE_F32;
    const int64_t n = dim_;
    // Row-major x [rows, n] is, column-major, xᵀ with leading dimension n, so
    // syrk without transpose on it gives xᵀx.
    if (direct) {
      syrk(static_cast<const T *>(x), rows, beta, alpha);
      sync("hessian_add_batch");
      return;
    }
    // All staging memory is allocated before H is touched, so running out of
    // device memory leaves H unchanged.
    const int64_t per_row = static_cast<int64_t>(std::max(in_bytes, sizeof(T))) * n;
    const int64_t tile_rows =
        std::max<int64_t>(1, std::min<int64_t>(rows, static_cast<int64_t>(kTileBytes) / per_row));
    DeviceBuffer<char> staged(device ? 0 : static_cast<size_t>(tile_rows * n) * in_bytes);
    DeviceBuffer<T> converted(static_cast<size_t>(tile_rows * n));
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
      convert_kernel<T><<<blocks_for(count * n, 256), 256, 0, stream_>>>(src, dtype, count * n,
                                                                         converted.get());
      check_cuda(cudaGetLastError(), "convert_kernel launch");
      syrk(converted.get(), count, b, alpha);
      b = 1.0;
    }
    sync("hessian_add_batch");
  }

  void merge(const double *src, double keep, double take) override {
    const int64_t n = dim_;
    DeviceBuffer<double> d_src(static_cast<size_t>(n * n));
    check_cuda(cudaMemcpyAsync(d_src.get(), src, sizeof(double) * n * n, cudaMemcpyHostToDevice,
                               stream_),
               "cudaMemcpyAsync");
    merge_kernel<T><<<blocks_for(n * n, 256), 256, 0, stream_>>>(h_.get(), d_src.get(), n, keep,
                                                                 take);
    check_cuda(cudaGetLastError(), "merge_kernel launch");
    sync("hessian_merge");
  }

  void export_to(double *dst) const override {
    const int64_t n = dim_;
    std::vector<T> host(static_cast<size_t>(n * n));
    check_cuda(cudaMemcpyAsync(host.data(), h_.get(), sizeof(T) * n * n, cudaMemcpyDeviceToHost,
                               stream_),
               "cudaMemcpyAsync");
    sync("hessian_export");
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
    if constexpr (std::is_same<T, float>::value)
      check_cublas(cublasSsyrk(blas_, CUBLAS_FILL_MODE_UPPER, CUBLAS_OP_N, n, k, &a, x, n, &b,
                               h_.get(), n),
                   "cublasSsyrk");
    else
      check_cublas(cublasDsyrk(blas_, CUBLAS_FILL_MODE_UPPER, CUBLAS_OP_N, n, k, &a, x, n, &b,
                               h_.get(), n),
                   "cublasDsyrk");
  }

  // Waits for the stream, so errors of asynchronous work surface in the call
  // that queued it.
  void sync(const char *entry) const {
    const cudaError_t err = cudaStreamSynchronize(stream_);
    if (err != cudaSuccess) check_cuda(err, (std::string(entry) + ": cudaStreamSynchronize").c_str());
  }

  int64_t dim_;
  DeviceBuffer<T> h_;  // column-major [dim, dim], upper triangle meaningful
  cudaStream_t stream_ = nullptr;
  cublasHandle_t blas_ = nullptr;
};

}  // namespace

std::unique_ptr<DeviceHessian> make_device_hessian(int64_t dim, gptq_precision precision) {
  if (precision == GPTQ_PRECISION_F64) return std::make_unique<CudaHessian<double>>(dim);
  return std::make_unique<CudaHessian<float>>(dim);
}

}  // namespace gptq_cuda
