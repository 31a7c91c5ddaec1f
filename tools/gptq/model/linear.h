// One linear layer y = x·Wᵀ + b of the model being run: dense float32
// weights (the original model, or a quantized layer dequantized back), dense
// 16-bit weights as a checkpoint stores them (an lm_head, which may be the
// embedding table's own; model/half_matrix.h), or a quantized tensor run
// through the library's gptq_matmul.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "common/library_call.h"
#include "model/half_matrix.h"

namespace gptqtool {

// How a quantized layer's gptq_matmul_ex runs (see gptq_matmul_options).
struct MatmulChoice {
  bool int8_activations = false;  // the int8-activation kernels (2-4 bits, CPU)
  int32_t threads = 0;            // 0 = one per core
};

class Linear {
 public:
  Linear() = default;
  // Dense: weight is [out, in] row-major; bias empty or [out].
  Linear(int64_t out, int64_t in, std::vector<float> weight, std::vector<float> bias);
  // Dense with float32 weights shared (a tied lm_head is the embedding table).
  Linear(int64_t out, int64_t in, std::shared_ptr<const std::vector<float>> weight,
         std::vector<float> bias);
  // Dense with 16-bit weights, shared (a tied lm_head is the embedding table).
  Linear(std::shared_ptr<const HalfMatrix> weight, std::vector<float> bias);
  // Quantized: the tensor is shared (a finished gptq_qtensor is read-only).
  Linear(std::shared_ptr<gptq_qtensor> q, std::vector<float> bias);

  int64_t out_features() const { return out_; }
  int64_t in_features() const { return in_; }
  bool quantized() const { return q_ != nullptr; }
  bool half() const { return half_ != nullptr; }  // dense 16-bit weights
  // Dense float32 weights only (a 16-bit or quantized layer has none).
  const std::vector<float> &weight() const;
  // Any dense layer's weights as float32: weight(), or the 16-bit weights
  // widened into *scratch, which the returned reference is then to.
  const std::vector<float> &weight_f32(std::vector<float> *scratch) const;
  const std::vector<float> &bias() const { return bias_; }
  const gptq_qtensor *qtensor() const { return q_.get(); }  // quantized only, else null

  // For a quantized layer: how its products run (dense layers ignore it).
  void set_matmul(const MatmulChoice &choice) { matmul_ = choice; }

  // y [rows, out] = x [rows, in] · Wᵀ + b.
  void forward(const float *x, int64_t rows, float *y) const;

  // Output features [c0, c1) of every row of y, finished.
  using ColumnsReady = std::function<void(int64_t c0, int64_t c1)>;
  // forward, then ready() over all of y's features: where the product is
  // split over the tool's threads by ranges of output features (linear.cpp),
  // each thread calls it for its own range as soon as that is done,
  // concurrently with the others, so that an elementwise step after the
  // product needs no pass of its own; otherwise once, for [0, out), on the
  // calling thread. Ranges start and end at multiples of `unit` (or at out),
  // for steps that take features in units (an activation over interleaved
  // gate and up features).
  void forward(const float *x, int64_t rows, float *y, const ColumnsReady &ready,
               int64_t unit = 1) const;

 private:
  gptq_matmul_options matmul_options() const;
  // Output features [c0, c1) of y on the calling thread (quantized on the
  // CPU, or 16-bit).
  void range_forward(const float *x, int64_t rows, float *y, int64_t c0, int64_t c1) const;
  void dense_forward(const float *x, int64_t rows, float *y) const;
  void half_forward(const float *x, int64_t rows, float *y) const;
  void add_bias(int64_t rows, int64_t c0, int64_t c1, float *y) const;
  void check_blas_dimensions(int64_t rows) const;

  int64_t out_ = 0, in_ = 0;
  std::shared_ptr<const std::vector<float>> weight_;  // dense float32 only
  std::shared_ptr<const HalfMatrix> half_;
  std::vector<float> bias_;
  std::shared_ptr<gptq_qtensor> q_;
  // A quantized layer on the CPU backend, whose products can be computed as
  // ranges of output features (gptq_matmul_options.out_begin).
  bool on_cpu_ = false;
  MatmulChoice matmul_;
};

}  // namespace gptqtool
