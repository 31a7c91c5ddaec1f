#include "model/linear.h"

#include <cblas.h>

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <string>
#include <utility>

#include "common/checked_size.h"
#include "model/parallel.h"

namespace gptqtool {

namespace {

// A quantized layer over up to kSplitMaxRows rows of x (a decode step's)
// runs as one single-threaded gptq_matmul_ex per tool thread, each on its
// own range of output features, rather than as one call on the library's
// threads. Between a step's matmuls the tool's threads run attention and
// the elementwise passes, and two pools taking turns on the same cores wait
// for each other at every handover (bench/RESULTS.md, "Prefetching the
// codes, blocked keys, one set of threads"); with one pool the step has a
// single set of threads. Ranges rather than rows of x, so that each thread
// reads only its share of the weights and its kernel passes take all rows
// at once. On the CPU each feature's value does not depend on the range at
// these row counts (gptq.h), so the split changes no result. A range is
// kept to at least kSplitMinFeatures features: below that a thread's call
// costs more than its share of the work.
constexpr int64_t kSplitMaxRows = 32;
constexpr int64_t kSplitMinFeatures = 64;
// Ranges start at multiples of the kernels' tiles of output features, which
// the library then computes without waste.
constexpr int64_t kFeatureTile = 16;

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
  on_cpu_ = gptq_qtensor_backend(q_.get()) == GPTQ_BACKEND_CPU;
  if (!bias_.empty() && static_cast<int64_t>(bias_.size()) != out_) {
    throw ToolError("internal: bias length does not match the quantized layer");
  }
}

void Linear::forward(const float *x, int64_t rows, float *y) const {
  forward(x, rows, y, nullptr);
}

void Linear::forward(const float *x, int64_t rows, float *y, const ColumnsReady &ready,
                     int64_t unit) const {
  if (q_ != nullptr) {
    gptq_matmul_options opts;
    gptq_matmul_options_default(&opts);
    opts.int8_activations = matmul_.int8_activations ? 1 : 0;
    opts.num_threads = matmul_.threads;
    // Range boundaries at multiples of both the caller's unit and a tile.
    const int64_t step = std::lcm(std::max<int64_t>(unit, 1), kFeatureTile);
    const int64_t steps = (out_ + step - 1) / step;
    const int64_t parts = std::min<int64_t>(
        {worker_count(), steps, std::max<int64_t>(1, out_ / kSplitMinFeatures)});
    if (on_cpu_ && parts > 1 && rows <= kSplitMaxRows) {
      opts.num_threads = 1;
      parallel_for(parts, [&](int64_t part, int) {
        const int64_t c0 = std::min(out_, part * steps / parts * step),
                      c1 = std::min(out_, (part + 1) * steps / parts * step);
        if (c0 == c1) return;
        gptq_matmul_options range = opts;
        range.out_begin = c0;
        range.out_end = c1;
        check_status(gptq_matmul_ex(q_.get(), x, GPTQ_DTYPE_F32, rows, in_,
                                    bias_.empty() ? nullptr : bias_.data(), y, rows * out_,
                                    &range),
                     "gptq_matmul_ex");
        if (ready) ready(c0, c1);
      });
      return;
    }
    check_status(gptq_matmul_ex(q_.get(), x, GPTQ_DTYPE_F32, rows, in_,
                                bias_.empty() ? nullptr : bias_.data(), y, rows * out_, &opts),
                 "gptq_matmul_ex");
  } else {
    dense_forward(x, rows, y);
  }
  if (ready) ready(0, out_);
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
