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
// these row counts (gptq.h), so the split changes no result; the same holds
// for 16-bit dense weights (half_matmul). A range is
// kept to at least kSplitMinFeatures features: below that a thread's call
// costs more than its share of the work.
constexpr int64_t kSplitMaxRows = 32;
constexpr int64_t kSplitMinFeatures = 64;
// Ranges start at multiples of the kernels' tiles of output features, which
// the library then computes without waste.
constexpr int64_t kFeatureTile = 16;
// Output features of 16-bit weights widened at a time for sgemm (a 576-wide
// layer's panel is 576 KiB).
constexpr int64_t kPanelRows = 256;

}  // namespace

Linear::Linear(int64_t out, int64_t in, std::vector<float> weight, std::vector<float> bias)
    : Linear(out, in, std::make_shared<const std::vector<float>>(std::move(weight)),
             std::move(bias)) {}

Linear::Linear(int64_t out, int64_t in, std::shared_ptr<const std::vector<float>> weight,
               std::vector<float> bias)
    : out_(out), in_(in), weight_(std::move(weight)), bias_(std::move(bias)) {
  if (weight_ == nullptr ||
      static_cast<int64_t>(weight_->size()) != checked_mul(out, in, "linear layer size") ||
      (!bias_.empty() && static_cast<int64_t>(bias_.size()) != out)) {
    throw ToolError("internal: linear layer built with inconsistent sizes");
  }
}

Linear::Linear(std::shared_ptr<const HalfMatrix> weight, std::vector<float> bias)
    : out_(weight->rows), in_(weight->cols), half_(std::move(weight)), bias_(std::move(bias)) {
  if (!bias_.empty() && static_cast<int64_t>(bias_.size()) != out_) {
    throw ToolError("internal: bias length does not match the 16-bit linear layer");
  }
}

const std::vector<float> &Linear::weight() const {
  if (half_ != nullptr) throw ToolError("internal: a 16-bit linear layer has no float32 weights");
  static const std::vector<float> none;
  return weight_ != nullptr ? *weight_ : none;
}

const std::vector<float> &Linear::weight_f32(std::vector<float> *scratch) const {
  if (half_ == nullptr) return weight();
  scratch->resize(static_cast<size_t>(checked_mul(out_, in_, "linear layer size")));
  half_->widen_rows(0, out_, scratch->data());
  return *scratch;
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
  if ((half_ != nullptr || (q_ != nullptr && on_cpu_)) && rows <= kSplitMaxRows) {
    // Range boundaries at multiples of both the caller's unit and a tile.
    const int64_t step = std::lcm(std::max<int64_t>(unit, 1), kFeatureTile);
    const int64_t steps = (out_ + step - 1) / step;
    const int64_t parts = std::min<int64_t>(
        {worker_count(), steps, std::max<int64_t>(1, out_ / kSplitMinFeatures)});
    if (parts > 1) {
      parallel_for(parts, [&](int64_t part, int) {
        const int64_t c0 = std::min(out_, part * steps / parts * step),
                      c1 = std::min(out_, (part + 1) * steps / parts * step);
        if (c0 == c1) return;
        range_forward(x, rows, y, c0, c1);
        if (ready) ready(c0, c1);
      });
      return;
    }
  }
  if (q_ != nullptr) {
    const gptq_matmul_options opts = matmul_options();
    check_status(gptq_matmul_ex(q_.get(), x, GPTQ_DTYPE_F32, rows, in_,
                                bias_.empty() ? nullptr : bias_.data(), y, rows * out_, &opts),
                 "gptq_matmul_ex");
  } else if (half_ != nullptr) {
    half_forward(x, rows, y);
  } else {
    dense_forward(x, rows, y);
  }
  if (ready) ready(0, out_);
}

gptq_matmul_options Linear::matmul_options() const {
  gptq_matmul_options opts;
  gptq_matmul_options_default(&opts);
  opts.int8_activations = matmul_.int8_activations ? 1 : 0;
  opts.num_threads = matmul_.threads;
  return opts;
}

void Linear::range_forward(const float *x, int64_t rows, float *y, int64_t c0, int64_t c1) const {
  if (q_ != nullptr) {
    gptq_matmul_options range = matmul_options();
    range.num_threads = 1;
    range.out_begin = c0;
    range.out_end = c1;
    check_status(gptq_matmul_ex(q_.get(), x, GPTQ_DTYPE_F32, rows, in_,
                                bias_.empty() ? nullptr : bias_.data(), y, rows * out_, &range),
                 "gptq_matmul_ex");
    return;
  }
  half_matmul(*half_, x, rows, c0, c1, y, out_);
  add_bias(rows, c0, c1, y);
}

void Linear::add_bias(int64_t rows, int64_t c0, int64_t c1, float *y) const {
  if (bias_.empty()) return;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = c0; c < c1; ++c) y[r * out_ + c] += bias_[static_cast<size_t>(c)];
}

void Linear::half_forward(const float *x, int64_t rows, float *y) const {
  if (rows <= kSplitMaxRows) {
    half_matmul(*half_, x, rows, 0, out_, y, out_);
    add_bias(rows, 0, out_, y);
    return;
  }
  // Many rows (a prompt, a window of text): widened panels of W through
  // sgemm, whose blocking the row-by-row kernel does not have.
  check_blas_dimensions(rows);
  const int64_t panel_rows = std::min(out_, kPanelRows);
  std::vector<float> panel(static_cast<size_t>(checked_mul(panel_rows, in_, "16-bit weight panel")));
  for (int64_t n0 = 0; n0 < out_; n0 += kPanelRows) {
    const int64_t n1 = std::min(out_, n0 + kPanelRows);
    half_->widen_rows(n0, n1, panel.data());
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows),
                static_cast<int>(n1 - n0), static_cast<int>(in_), 1.0f, x, static_cast<int>(in_),
                panel.data(), static_cast<int>(in_), 0.0f, y + n0, static_cast<int>(out_));
  }
  add_bias(rows, 0, out_, y);
}

void Linear::check_blas_dimensions(int64_t rows) const {
  // BLAS takes int dimensions.
  if (rows < 0 || rows > INT32_MAX || out_ > INT32_MAX || in_ > INT32_MAX) {
    throw ToolError("a linear layer of " + std::to_string(out_) + " x " + std::to_string(in_) +
                    " over " + std::to_string(rows) + " rows is beyond BLAS's int dimensions");
  }
}

void Linear::dense_forward(const float *x, int64_t rows, float *y) const {
  check_blas_dimensions(rows);
  if (rows == 1) {
    // One row is a matrix-vector product: sgemv streams W once, where
    // sgemm's packing would copy it first.
    float beta = 0.0f;
    if (!bias_.empty()) {
      std::copy(bias_.begin(), bias_.end(), y);
      beta = 1.0f;
    }
    cblas_sgemv(CblasRowMajor, CblasNoTrans, static_cast<int>(out_), static_cast<int>(in_), 1.0f,
                weight().data(), static_cast<int>(in_), x, 1, beta, y, 1);
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
              weight().data(), static_cast<int>(in_), beta, y, static_cast<int>(out_));
}

}  // namespace gptqtool
