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

void matmul_dequant_sgemm(const QTensorData &q, const float *x, int64_t rows, int64_t c0,
                          int64_t c1, float *y, int64_t ldy) {
  const int64_t k = q.in_features;
  std::vector<float> tile(static_cast<size_t>(std::min(kDequantRows, c1 - c0) * k));
  for (int64_t n0 = c0; n0 < c1; n0 += kDequantRows) {
    const int64_t count = std::min(kDequantRows, c1 - n0);
    // Dequantize the tile on all cores (16 rows a task), then one sgemm.
    ThreadPool::instance().parallel_for((count + 15) / 16, 0, [&](int64_t t) {
      const int64_t r0 = n0 + t * 16, r1 = std::min(n0 + count, r0 + 16);
      dequantize_rows(q, r0, r1, tile.data() + (r0 - n0) * k);
    });
    // y[:, n0 - c0 : n0 - c0 + count] = x · tileᵀ
    gemm(true, static_cast<int>(rows), static_cast<int>(count), static_cast<int>(k), 1.0f, x,
         static_cast<int>(k), tile.data(), static_cast<int>(k), 0.0f, y + (n0 - c0),
         static_cast<int>(ldy));
  }
}

namespace {

// The kernel path over output features [c0, c1): y points at feature c0 of
// row 0, rows ldy apart. Whole tiles go straight to y, spread over the
// threads; a tile the range cuts (at most one at each end) is computed
// whole into a scratch tile and its features in the range copied, so each
// feature's value is the one a whole call gives.
void matmul_kernels(const CpuMatmulWeights &w, const float *xf, int64_t rows, bool int8,
                    int64_t c0, int64_t c1, float *y, int64_t ldy, int num_threads) {
  const int64_t k = w.k;
  // Tiles wholly inside the range: [first, last).
  const int64_t first = (c0 + kTileRows - 1) / kTileRows;
  const int64_t last = c1 == w.n ? w.tiles : c1 / kTileRows;
  std::vector<int64_t> cut;  // tiles the range cuts
  if (c0 % kTileRows != 0) cut.push_back(c0 / kTileRows);
  if (c1 != w.n && c1 % kTileRows != 0 && (cut.empty() || cut[0] != c1 / kTileRows))
    cut.push_back(c1 / kTileRows);
  const int64_t tasks = last > first ? (last - first + kTilesPerTask - 1) / kTilesPerTask : 0;
  auto run = [&](const KernelInput &in, int64_t tile0, int64_t tile1, float *out, int64_t ld) {
    for (int64_t m0 = 0; m0 < in.rows; m0 += kKernelRows) {
      const KernelInput part = rows_of(w, in, m0, std::min(kKernelRows, in.rows - m0));
      if (int8)
        matmul_tiles_int8(w, part, tile0, tile1, out + m0 * ld, ld);
      else
        matmul_tiles_f32(w, part, tile0, tile1, out + m0 * ld, ld);
    }
  };
  // Reused by the calling thread's later calls: a decode step makes
  // hundreds, and fresh buffers would be zero-filled each time.
  thread_local PreparedInput in;
  thread_local std::vector<float> scratch;
  // x is prepared kInputBlockRows rows at a time, and each task runs its
  // few tiles over all of them, kKernelRows at a time: its slab of weights
  // comes from memory once per block and from cache after.
  for (int64_t b0 = 0; b0 < rows; b0 += kInputBlockRows) {
    const int64_t count = std::min(kInputBlockRows, rows - b0);
    prepare_input(w, xf + b0 * k, count, int8, in);
    // The int8 fields only when this call filled them (the buffers may hold
    // an earlier call's rows).
    const KernelInput block{count,
                            in.rows,
                            int8 ? in.xsum.data() : nullptr,
                            int8 ? in.xq.data() : nullptr,
                            int8 ? in.xscale.data() : nullptr,
                            int8 && w.uniform_zero >= 0 ? in.xzero.data() : nullptr,
                            in.x_absmax};
    float *out = y + b0 * ldy;
    ThreadPool::instance().parallel_for(tasks, num_threads, [&](int64_t t) {
      const int64_t tile0 = first + t * kTilesPerTask,
                    tile1 = std::min(last, tile0 + kTilesPerTask);
      run(block, tile0, tile1, out + (tile0 * kTileRows - c0), ldy);
    });
    for (const int64_t tile : cut) {
      scratch.resize(static_cast<size_t>(count * kTileRows));
      run(block, tile, tile + 1, scratch.data(), kTileRows);
      const int64_t f0 = std::max(c0, tile * kTileRows),
                    f1 = std::min({c1, tile * kTileRows + kTileRows, w.n});
      for (int64_t m = 0; m < count; ++m)
        std::copy(scratch.begin() + m * kTileRows + (f0 - tile * kTileRows),
                  scratch.begin() + m * kTileRows + (f1 - tile * kTileRows),
                  out + m * ldy + (f0 - c0));
    }
  }
}

}  // namespace

void cpu_matmul(const QTensorData &q, const CpuMatmulWeights &w, const void *x, gptq_dtype dtype,
                int64_t rows, const void *bias, void *y, const MatmulOptions &options) {
  const int64_t n = q.out_features;
  const int64_t k = q.in_features;
  const int64_t c0 = options.out_begin, c1 = options.out_end == 0 ? n : options.out_end;
  const int64_t width = c1 - c0;
  if (!cpu_isa_error().empty()) throw Error(GPTQ_ERR_INVALID_CONFIG, cpu_isa_error());

  std::vector<float> x_converted;
  const float *xf = static_cast<const float *>(x);
  if (dtype != GPTQ_DTYPE_F32) {
    x_converted.resize(static_cast<size_t>(rows * k));
    convert_to_float(x, dtype, rows * k, x_converted.data());
    xf = x_converted.data();
  }
  // Feature c0 of row 0 of the float32 result, rows ldy apart: y itself, or
  // a [rows, width] staging array converted into y's range at the end.
  std::vector<float> y_staging;
  float *yf = static_cast<float *>(y) + c0;
  int64_t ldy = n;
  if (dtype != GPTQ_DTYPE_F32) {
    y_staging.resize(static_cast<size_t>(rows * width));
    yf = y_staging.data();
    ldy = width;
  }

  // int8 activations take the kernels at any batch size: their integer
  // multiplies outrun dequantize + sgemm in float32 even for a prefill of
  // hundreds of rows (bench/RESULTS.md). float32 ones take them up to
  // kSmallBatch rows.
  const bool int8 = options.int8_activations && w.bits <= 4 && int8_kernels_available();
  if (rows > kSmallBatch && !int8)
    matmul_dequant_sgemm(q, xf, rows, c0, c1, yf, ldy);
  else
    matmul_kernels(w, xf, rows, int8, c0, c1, yf, ldy, options.num_threads);

  if (bias != nullptr) {
    std::vector<float> bias_f(static_cast<size_t>(n));
    convert_to_float(bias, dtype, n, bias_f.data());
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = c0; c < c1; ++c) yf[r * ldy + (c - c0)] += bias_f[c];
  }
  if (dtype != GPTQ_DTYPE_F32) {
    const size_t element = dtype_size(dtype, "gptq_matmul");
    for (int64_t r = 0; r < rows; ++r)
      convert_from_float(yf + r * ldy, width, dtype,
                         static_cast<char *>(y) + (r * n + c0) * static_cast<int64_t>(element));
  }
}

}  // namespace gptq::cpu
