#include "cuda_matmul.h"

#include <cublas_v2.h>

#include <algorithm>
#include <cstdint>

#include "cuda_status.h"
#include "device_context.h"
#include "device_convert.h"
#include "matmul_kernels.h"

namespace gptq_cuda {
namespace {

// Rows of W dequantized at a time for the float32 GEMM of larger batches:
// about 256 MB of scratch.
constexpr int64_t kSlabElements = int64_t(64) << 20;

void compute(const DeviceWeights &w, const gptq_plugin_qtensor &q, const void *x,
             gptq_dtype dtype, int64_t rows, const void *bias, void *y, cudaStream_t stream) {
  const int64_t n = w.n, k = w.k;
  if (dtype != GPTQ_DTYPE_F32 && w.tiled4 != nullptr) {
    const Tiled4Layout &t = *w.tiled4;
    // The kernel reads x eight elements (16 bytes) at a time from the
    // sorted, padded column order; anything else is gathered into that form
    // first.
    const bool aligned = reinterpret_cast<uintptr_t>(x) % 16 == 0 && k % 8 == 0;
    if (!t.gather_x && aligned) {
      tiled4_matmul(t, n, x, k, dtype, rows, bias, y, stream);
      return;
    }
    DeviceArray<uint16_t> gathered(static_cast<size_t>(rows * t.padded_k), stream);
    gather_columns(x, rows, k, t.column_of.as<int32_t>(), t.padded_k, gathered.get(), stream);
    tiled4_matmul(t, n, gathered.get(), t.padded_k, dtype, rows, bias, y, stream);
    return;
  }

  const GenericLayout &g = w.generic(q, stream);
  if (rows <= 8) {
    generic_matmul_rows(g, n, k, x, dtype, rows, bias, y, stream);
    return;
  }
  // More rows: dequantized slabs of W and float32 GEMM.
  DeviceArray<float> x32(dtype == GPTQ_DTYPE_F32 ? 0 : static_cast<size_t>(rows * k), stream);
  const float *xf = static_cast<const float *>(x);
  if (dtype != GPTQ_DTYPE_F32) {
    convert_on_device(x, dtype, rows * k, x32.get(), stream);
    xf = x32.get();
  }
  const bool direct = dtype == GPTQ_DTYPE_F32 && bias == nullptr;
  DeviceArray<float> y32(direct ? 0 : static_cast<size_t>(rows * n), stream);
  float *yf = direct ? static_cast<float *>(y) : y32.get();
  const int64_t slab_rows = std::min(n, std::max<int64_t>(256, kSlabElements / k));
  DeviceArray<float> slab(static_cast<size_t>(slab_rows * k), stream);
  cublasHandle_t blas = blas_handle(stream);
  const float one = 1.0f, zero = 0.0f;
  for (int64_t r0 = 0; r0 < n; r0 += slab_rows) {
    const int64_t r1 = std::min(n, r0 + slab_rows);
    dequantize_rows(g, n, k, r0, r1, slab.get(), stream);
    // Column-major: yᵀ[r0:r1, :] = slab (k × (r1−r0))ᵀ · xᵀ (k × rows).
    check_cublas(cublasSgemm(blas, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(r1 - r0),
                             static_cast<int>(rows), static_cast<int>(k), &one, slab.get(),
                             static_cast<int>(k), xf, static_cast<int>(k), &zero, yf + r0,
                             static_cast<int>(n)),
                 "cublasSgemm");
  }
  if (!direct) finish_output(y32.get(), rows, n, bias, dtype, y, stream);
}

}  // namespace

void run_matmul(const DeviceWeights &w, const gptq_plugin_qtensor &q, const void *x,
                gptq_dtype dtype, int64_t rows, const void *bias, void *y, bool device,
                cudaStream_t stream) {
  if (device) {
    compute(w, q, x, dtype, rows, bias, y, stream);
    return;
  }
  const size_t size = dtype_bytes(dtype);
  const size_t x_bytes = static_cast<size_t>(rows * w.k) * size;
  const size_t y_bytes = static_cast<size_t>(rows * w.n) * size;
  DeviceArray<char> xs(x_bytes, stream), ys(y_bytes, stream);
  DeviceArray<char> bs(bias != nullptr ? static_cast<size_t>(w.n) * size : 0, stream);
  check_cuda(cudaMemcpyAsync(xs.get(), x, x_bytes, cudaMemcpyHostToDevice, stream),
             "cudaMemcpyAsync");
  if (bias != nullptr)
    check_cuda(cudaMemcpyAsync(bs.get(), bias, static_cast<size_t>(w.n) * size,
                               cudaMemcpyHostToDevice, stream),
               "cudaMemcpyAsync");
  compute(w, q, xs.get(), dtype, rows, bias != nullptr ? bs.get() : nullptr, ys.get(), stream);
  check_cuda(cudaMemcpyAsync(y, ys.get(), y_bytes, cudaMemcpyDeviceToHost, stream),
             "cudaMemcpyAsync");
  sync_stream(stream, "matmul");
}

}  // namespace gptq_cuda
