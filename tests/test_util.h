// Shared helpers for the GoogleTest suites: RAII handles over the C API,
// deterministic realistic data, and shorthand for running a whole layer.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "gptq.h"

namespace gptq_test {

struct CtxDeleter {
  void operator()(gptq_ctx *c) const { gptq_ctx_destroy(c); }
};
struct QDeleter {
  void operator()(gptq_qtensor *q) const { gptq_qtensor_destroy(q); }
};
using Ctx = std::unique_ptr<gptq_ctx, CtxDeleter>;
using QTensor = std::unique_ptr<gptq_qtensor, QDeleter>;

inline gptq_config default_config() {
  gptq_config c;
  gptq_config_default(&c);
  return c;
}

inline Ctx make_ctx(int64_t out, int64_t in, const gptq_config &cfg) {
  gptq_ctx *c = nullptr;
  const gptq_status s = gptq_ctx_create(out, in, &cfg, &c);
  EXPECT_EQ(s, GPTQ_OK) << gptq_last_error();
  return Ctx(c);
}

// Activations with the structure real LLM inputs have: channels mixed by a
// random matrix (so the Hessian is far from diagonal), a few outlier channels
// tens of times larger than the rest, and a per-channel scale spread.
inline std::vector<float> correlated_activations(int64_t tokens, int64_t in, uint32_t seed,
                                                 int outliers = 4, float outlier_scale = 20.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int64_t latent = std::max<int64_t>(4, in / 4);
  std::vector<float> mix(static_cast<size_t>(latent * in));
  for (auto &v : mix) v = normal(rng) / std::sqrt(static_cast<float>(latent));
  std::vector<float> channel_scale(static_cast<size_t>(in));
  std::uniform_real_distribution<float> spread(0.3f, 1.7f);
  for (auto &s : channel_scale) s = spread(rng);
  for (int i = 0; i < outliers && i < in; ++i)
    channel_scale[static_cast<size_t>((i * 7919 + 13) % in)] *= outlier_scale;
  std::vector<float> z(static_cast<size_t>(latent));
  std::vector<float> x(static_cast<size_t>(tokens * in));
  for (int64_t t = 0; t < tokens; ++t) {
    for (auto &v : z) v = normal(rng);
    for (int64_t j = 0; j < in; ++j) {
      float acc = 0.1f * normal(rng);  // a little independent noise per channel
      for (int64_t l = 0; l < latent; ++l) acc += z[l] * mix[l * in + j];
      x[t * in + j] = acc * channel_scale[j];
    }
  }
  return x;
}

// Weights like a trained layer's: small Gaussian values plus rare outliers.
inline std::vector<float> layer_weights(int64_t out, int64_t in, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  std::vector<float> w(static_cast<size_t>(out * in));
  for (auto &v : w) {
    v = normal(rng);
    if (unit(rng) < 0.002f) v *= 8.0f;
  }
  return w;
}

// ‖X·Wᵀ − X·Qᵀ‖² (Frobenius), in double.
inline double output_error(const std::vector<float> &x, const std::vector<float> &w,
                           const std::vector<float> &q, int64_t tokens, int64_t out,
                           int64_t in) {
  double total = 0.0;
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t o = 0; o < out; ++o) {
      double d = 0.0;
      for (int64_t j = 0; j < in; ++j)
        d += static_cast<double>(x[t * in + j]) * (static_cast<double>(w[o * in + j]) - q[o * in + j]);
      total += d * d;
    }
  return total;
}

// The quality tests' layer: 128 × 512 weights, calibrated on 2048 tokens of
// correlated activations with outlier channels and judged on 512 more.
struct HeldOutLayer {
  static constexpr int64_t out = 128, in = 512, calib = 2048, held_out = 512;
  std::vector<float> x_cal, x_eval, w;
};

inline HeldOutLayer held_out_layer() {
  const int64_t in = HeldOutLayer::in, calib = HeldOutLayer::calib;
  const std::vector<float> all =
      correlated_activations(calib + HeldOutLayer::held_out, in, 1234, 8, 30.0f);
  HeldOutLayer l;
  l.x_cal.assign(all.begin(), all.begin() + calib * in);
  l.x_eval.assign(all.begin() + calib * in, all.end());
  l.w = layer_weights(HeldOutLayer::out, in, 99);
  return l;
}

// Feeds x in one batch (samples = 1), quantizes w, returns the tensor.
inline QTensor quantize_layer(const gptq_config &cfg, const std::vector<float> &x,
                              const std::vector<float> &w, int64_t tokens, int64_t out,
                              int64_t in, gptq_quant_stats *stats = nullptr) {
  Ctx ctx = make_ctx(out, in, cfg);
  if (!ctx) return QTensor();
  EXPECT_EQ(gptq_add_batch(ctx.get(), x.data(), GPTQ_DTYPE_F32, tokens, in, 1), GPTQ_OK)
      << gptq_last_error();
  gptq_qtensor *q = nullptr;
  EXPECT_EQ(gptq_quantize(ctx.get(), w.data(), GPTQ_DTYPE_F32, out, in, &q, stats), GPTQ_OK)
      << gptq_last_error();
  return QTensor(q);
}

inline std::vector<float> dequantized(const gptq_qtensor *q, int64_t out, int64_t in) {
  std::vector<float> d(static_cast<size_t>(out * in));
  EXPECT_EQ(gptq_qtensor_dequantize(q, d.data(), out * in), GPTQ_OK) << gptq_last_error();
  return d;
}

inline std::vector<uint8_t> codes_of(const gptq_qtensor *q, int64_t out, int64_t in) {
  std::vector<uint8_t> c(static_cast<size_t>(out * in));
  EXPECT_EQ(gptq_qtensor_codes(q, c.data(), out * in), GPTQ_OK) << gptq_last_error();
  return c;
}

}  // namespace gptq_test
