#include "cpu_matmul.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "blas.h"
#include "dtype.h"
#include "error.h"
#include "isa.h"
#include "matmul_input.h"
#include "matmul_kernels.h"
#include "thread_pool.h"

namespace gptq::cpu {

namespace {
// Output features dequantized at once on the sgemm path: 512 rows of a
// 4096-wide layer is 8 MiB, enough for sgemm to run at full rate.
constexpr int64_t kDequantRows = 512;
// 16-row tiles per task on the kernel path (64 output rows): enough work to
// amortize a task, small enough to balance two to a few dozen threads.
constexpr int64_t kTilesPerTask = 4;
// Rows of x prepared at once on the kernel path: 64 rows of a 28672-wide
// layer are 9 MiB of float32 and int8 copies.
constexpr int64_t kInputBlockRows = 64;
}  // namespace

void matmul_dequant_sgemm(const QTensorData &q, const float *x, int64_t rows, float *y) {
  const int64_t n = q.out_features;
  const int64_t k = q.in_features;
  std::vector<float> tile(static_cast<size_t>(std::min(kDequantRows, n) * k));
  for (int64_t n0 = 0; n0 < n; n0 += kDequantRows) {
    const int64_t count = std::min(kDequantRows, n - n0);
    // Dequantize the tile on all cores (16 rows a task), then one sgemm.
    ThreadPool::instance().parallel_for((count + 15) / 16, 0, [&](int64_t t) {
      const int64_t r0 = n0 + t * 16, r1 = std::min(n0 + count, r0 + 16);
      dequantize_rows(q, r0, r1, tile.data() + (r0 - n0) * k);
    });
    // y[:, n0:n0+count] = x · tileᵀ
    gemm(true, static_cast<int>(rows), static_cast<int>(count), static_cast<int>(k), 1.0f, x,
         static_cast<int>(k), tile.data(), static_cast<int>(k), 0.0f, y + n0, static_cast<int>(n));
  }
}

void cpu_matmul(const QTensorData &q, const CpuMatmulWeights &w, const void *x, gptq_dtype dtype,
                int64_t rows, const void *bias, void *y, const MatmulOptions &options) {
  const int64_t n = q.out_features;
  const int64_t k = q.in_features;
  if (!cpu_isa_error().empty()) throw Error(GPTQ_ERR_INVALID_CONFIG, cpu_isa_error());

  std::vector<float> x_converted;
  const float *xf = static_cast<const float *>(x);
  if (dtype != GPTQ_DTYPE_F32) {
    x_converted.resize(static_cast<size_t>(rows * k));
    convert_to_float(x, dtype, rows * k, x_converted.data());
    xf = x_converted.data();
  }
  std::vector<float> y_staging;
  float *yf = static_cast<float *>(y);
  if (dtype != GPTQ_DTYPE_F32) {
    y_staging.resize(static_cast<size_t>(rows * n));
    yf = y_staging.data();
  }

  // int8 activations take the kernels at any batch size: their integer
  // multiplies outrun dequantize + sgemm in float32 even for a prefill of
  // hundreds of rows (bench/RESULTS.md). float32 ones take them up to
  // kSmallBatch rows.
  const bool int8 = options.int8_activations && w.bits <= 4 && int8_kernels_available();
  if (rows > kSmallBatch && !int8) {
    matmul_dequant_sgemm(q, xf, rows, yf);
  } else {
    // Reused by the calling thread's later calls: a decode step makes
    // hundreds, and fresh buffers would be zero-filled each time.
    thread_local PreparedInput in;
    const int64_t tasks = (w.tiles + kTilesPerTask - 1) / kTilesPerTask;
    // x is prepared kInputBlockRows rows at a time, and each task runs its
    // few tiles over all of them, kKernelRows at a time: its slab of weights
    // comes from memory once per block and from cache after.
    for (int64_t b0 = 0; b0 < rows; b0 += kInputBlockRows) {
      const int64_t count = std::min(kInputBlockRows, rows - b0);
      prepare_input(w, xf + b0 * k, count, int8, in);
      // The int8 fields only when this call filled them (the buffers may hold
      // an earlier call's rows).
      const KernelInput block{count,
                              in.x.data(),
                              int8 ? in.xsum.data() : nullptr,
                              int8 ? in.xq.data() : nullptr,
                              int8 ? in.xscale.data() : nullptr,
                              in.x_absmax};
      float *out = yf + b0 * n;
      ThreadPool::instance().parallel_for(tasks, options.num_threads, [&](int64_t t) {
        const int64_t tile0 = t * kTilesPerTask, tile1 = std::min(w.tiles, tile0 + kTilesPerTask);
        for (int64_t m0 = 0; m0 < count; m0 += kKernelRows) {
          const KernelInput part = rows_of(w, block, m0, std::min(kKernelRows, count - m0));
          if (int8)
            matmul_tiles_int8(w, part, tile0, tile1, out + m0 * n, n);
          else
            matmul_tiles_f32(w, part, tile0, tile1, out + m0 * n, n);
        }
      });
    }
  }

  if (bias != nullptr) {
    std::vector<float> bias_f(static_cast<size_t>(n));
    convert_to_float(bias, dtype, n, bias_f.data());
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < n; ++c) yf[r * n + c] += bias_f[c];
  }
  if (dtype != GPTQ_DTYPE_F32) convert_from_float(yf, rows * n, dtype, y);
}

}  // namespace gptq::cpu
