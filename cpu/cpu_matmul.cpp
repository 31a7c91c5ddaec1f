#include "cpu_matmul.h"

#include <algorithm>
#include <vector>

#include "blas.h"
#include "dtype.h"

namespace gptq::cpu {

namespace {
// Output features dequantized at once: 256 rows of a 4096-wide layer is 4 MiB.
constexpr int64_t kTileRows = 256;
}  // namespace

void matmul_dequant_sgemm(const QTensorData &q, const void *x, gptq_dtype dtype, int64_t rows,
                          const void *bias, void *y) {
  const int64_t n = q.out_features;
  const int64_t k = q.in_features;

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
  std::vector<float> bias_f;
  if (bias != nullptr) {
    bias_f.resize(static_cast<size_t>(n));
    convert_to_float(bias, dtype, n, bias_f.data());
  }

  std::vector<float> tile(static_cast<size_t>(std::min(kTileRows, n) * k));
  for (int64_t n0 = 0; n0 < n; n0 += kTileRows) {
    const int64_t count = std::min(kTileRows, n - n0);
    dequantize_rows(q, n0, n0 + count, tile.data());
    // y[:, n0:n0+count] = x · tileᵀ
    gemm(true, static_cast<int>(rows), static_cast<int>(count), static_cast<int>(k), 1.0f, xf,
         static_cast<int>(k), tile.data(), static_cast<int>(k), 0.0f, yf + n0, static_cast<int>(n));
  }
  if (bias != nullptr)
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < n; ++c) yf[r * n + c] += bias_f[c];
  if (dtype != GPTQ_DTYPE_F32) convert_from_float(yf, rows * n, dtype, y);
}

}  // namespace gptq::cpu
