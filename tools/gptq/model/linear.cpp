#include "model/linear.h"

#include <cblas.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>

#include "common/checked_size.h"
#include "model/parallel.h"

namespace gptqtool {

namespace {

// With int8 activations, a quantized layer over a decode step's few rows
// of x (up to kSplitMaxRows, and at least kSplitMinRowsPerThread a thread)
// runs as one single-threaded gptq_matmul_ex per tool thread, each on its
// share of the rows, rather than one call on the library's own threads.
// Between a step's matmuls the tool's threads run attention and the
// elementwise passes, and two pools taking turns on the same cores wait
// for each other at every handover (bench/RESULTS.md, "Prefetching the
// codes, blocked keys, one set of threads"); with one pool the step has a
// single set of threads.
// Each thread reads the whole layer, which at these row counts costs less
// than the handovers: the kernels are busy multiplying, and the second
// read of a layer mostly hits the shared cache. With int8 activations the
// CPU backend computes each row of x of a 2- to 4-bit tensor on its own
// (gptq.h), so the split changes no result; otherwise the rows a call
// holds may choose its kernels, and those calls stay whole.
constexpr int64_t kSplitMinRowsPerThread = 2;
constexpr int64_t kSplitMaxRows = 32;

}  // namespace

Linear::Linear(int64_t out, int64_t in, std::vector<float> weight, std::vector<float> bias)
    : out_(out), in_(in), weight_(std::move(weight)), bias_(std::move(bias)) {
  if (static_cast<int64_t>(weight_.size()) != checked_mul(out, in, "linear layer size") ||
      (!bias_.empty() && static_cast<int64_t>(bias_.size()) != out)) {
    throw ToolError("internal: linear layer built with inconsistent sizes");
  }
}

Linear::Linear(std::shared_ptr<gptq_qtensor> q, std::vector<float> bias)
    : bias_(std::move(bias)), q_(std::move(q)) {
  gptq_qtensor_info info;
  check_status(gptq_qtensor_get_info(q_.get(), &info), "gptq_qtensor_get_info");
  out_ = info.out_features;
  in_ = info.in_features;
  rows_independent_with_int8_ = info.bits <= 4 && gptq_qtensor_backend(q_.get()) == GPTQ_BACKEND_CPU;
  if (!bias_.empty() && static_cast<int64_t>(bias_.size()) != out_) {
    throw ToolError("internal: bias length does not match the quantized layer");
  }
}

void Linear::forward(const float *x, int64_t rows, float *y) const {
  forward(x, rows, y, nullptr);
}

void Linear::forward(const float *x, int64_t rows, float *y, const RowsReady &ready) const {
  if (q_ != nullptr) {
    gptq_matmul_options opts;
    gptq_matmul_options_default(&opts);
    opts.int8_activations = matmul_.int8_activations ? 1 : 0;
    opts.num_threads = matmul_.threads;
    const int64_t parts = std::min<int64_t>(worker_count(), rows / kSplitMinRowsPerThread);
    if (matmul_.int8_activations && rows_independent_with_int8_ && parts > 1 &&
        rows <= kSplitMaxRows) {
      opts.num_threads = 1;
      parallel_for(parts, [&](int64_t part, int) {
        const int64_t r0 = part * rows / parts, r1 = (part + 1) * rows / parts;
        check_status(gptq_matmul_ex(q_.get(), x + r0 * in_, GPTQ_DTYPE_F32, r1 - r0, in_,
                                    bias_.empty() ? nullptr : bias_.data(), y + r0 * out_,
                                    (r1 - r0) * out_, &opts),
                     "gptq_matmul_ex");
        if (ready) ready(r0, r1);
      });
      return;
    }
    check_status(gptq_matmul_ex(q_.get(), x, GPTQ_DTYPE_F32, rows, in_,
                                bias_.empty() ? nullptr : bias_.data(), y, rows * out_, &opts),
                 "gptq_matmul_ex");
  } else {
    dense_forward(x, rows, y);
  }
  if (ready) ready(0, rows);
}

void Linear::dense_forward(const float *x, int64_t rows, float *y) const {
  // BLAS takes int dimensions.
  if (rows < 0 || rows > INT32_MAX || out_ > INT32_MAX || in_ > INT32_MAX) {
    throw ToolError("a linear layer of " + std::to_string(out_) + " x " + std::to_string(in_) +
                    " over " + std::to_string(rows) + " rows is beyond BLAS's int dimensions");
  }
  if (rows == 1) {
    // One row is a matrix-vector product: sgemv streams W once, where
    // sgemm's packing would copy it first.
    float beta = 0.0f;
    if (!bias_.empty()) {
      std::copy(bias_.begin(), bias_.end(), y);
      beta = 1.0f;
    }
    cblas_sgemv(CblasRowMajor, CblasNoTrans, static_cast<int>(out_), static_cast<int>(in_), 1.0f,
                weight_.data(), static_cast<int>(in_), x, 1, beta, y, 1);
    return;
  }
  float beta = 0.0f;
  if (!bias_.empty()) {
    for (int64_t r = 0; r < rows; ++r) {
      std::copy(bias_.begin(), bias_.end(), y + r * out_);
    }
    beta = 1.0f;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows),
              static_cast<int>(out_), static_cast<int>(in_), 1.0f, x, static_cast<int>(in_),
              weight_.data(), static_cast<int>(in_), beta, y, static_cast<int>(out_));
}

}  // namespace gptqtool
