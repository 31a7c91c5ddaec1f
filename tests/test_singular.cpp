// Singular and indefinite Hessians: all-zero input columns, fewer tokens than
// features, duplicated columns, and Hessians that no damping can rescue. The
// layer must always quantize to finite weights, and the stats must say what
// happened (damping raised, or the round-to-nearest fallback).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "test_util.h"

using namespace gptq_test;

namespace {

struct Outcome {
  QTensor q;
  gptq_quant_stats stats{};
};

Outcome quantize_with(const gptq_config &cfg, const std::vector<float> &x, int64_t tokens,
                      const std::vector<float> &w, int64_t out, int64_t in) {
  Outcome o;
  o.stats.struct_size = sizeof o.stats;
  o.q = quantize_layer(cfg, x, w, tokens, out, in, &o.stats);
  return o;
}

void expect_finite_and_in_range(const Outcome &o, int64_t out, int64_t in, int bits) {
  ASSERT_TRUE(o.q);
  EXPECT_TRUE(std::isfinite(o.stats.loss));
  for (float v : dequantized(o.q.get(), out, in)) ASSERT_TRUE(std::isfinite(v));
  for (uint8_t c : codes_of(o.q.get(), out, in)) ASSERT_LT(c, 1 << bits);
}

TEST(Singular, DeadInputColumns) {
  const int64_t out = 32, in = 96, tokens = 256;
  std::vector<float> x = correlated_activations(tokens, in, 5);
  const int dead[] = {0, 17, 40, 95};
  for (int64_t t = 0; t < tokens; ++t)
    for (int j : dead) x[t * in + j] = 0.0f;
  const std::vector<float> w = layer_weights(out, in, 6);
  for (int act : {0, 1}) {
    gptq_config cfg = default_config();
    cfg.group_size = 32;
    cfg.act_order = act;
    Outcome o = quantize_with(cfg, x, tokens, w, out, in);
    expect_finite_and_in_range(o, out, in, cfg.bits);
    EXPECT_EQ(o.stats.dead_columns, 4);
    EXPECT_EQ(o.stats.fell_back_to_rtn, 0);
    // Dead columns' weights are treated as 0 (symmetric: code = zero → 0).
    const std::vector<float> d = dequantized(o.q.get(), out, in);
    for (int64_t r = 0; r < out; ++r)
      for (int j : dead) EXPECT_EQ(d[r * in + j], 0.0f) << "row " << r << " dead col " << j;
  }
}

TEST(Singular, FewerTokensThanFeatures) {
  const int64_t out = 16, in = 256, tokens = 20;  // rank(H) <= 20
  const std::vector<float> x = correlated_activations(tokens, in, 8);
  const std::vector<float> w = layer_weights(out, in, 9);
  for (int bits : {2, 4, 8}) {
    gptq_config cfg = default_config();
    cfg.bits = bits;
    cfg.sym = 0;
    cfg.act_order = 1;
    Outcome o = quantize_with(cfg, x, tokens, w, out, in);
    expect_finite_and_in_range(o, out, in, bits);
    EXPECT_EQ(o.stats.fell_back_to_rtn, 0);
  }
}

TEST(Singular, DuplicatedColumns) {
  const int64_t out = 16, in = 128, tokens = 512;
  std::vector<float> x = correlated_activations(tokens, in, 10);
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t j = 64; j < in; ++j) x[t * in + j] = x[t * in + (j - 64)];  // exact copies
  const std::vector<float> w = layer_weights(out, in, 11);
  for (gptq_precision p : {GPTQ_PRECISION_F32, GPTQ_PRECISION_F64}) {
    gptq_config cfg = default_config();
    cfg.precision = p;
    cfg.act_order = 1;  // duplicated columns tie on diag H: the stable order decides
    Outcome o = quantize_with(cfg, x, tokens, w, out, in);
    expect_finite_and_in_range(o, out, in, cfg.bits);
  }
}

TEST(Singular, ZeroDampingOnSingularHessianRetriesThenSucceeds) {
  // damp 0 on a rank-deficient H: the first Cholesky fails (or yields an
  // unusable factor), the damping is raised and the layer still gets GPTQ.
  const int64_t out = 8, in = 64, tokens = 8;
  const std::vector<float> x = correlated_activations(tokens, in, 12);
  const std::vector<float> w = layer_weights(out, in, 13);
  gptq_config cfg = default_config();
  cfg.damp_percent = 0.0f;
  cfg.damp_increment = 0.01f;
  cfg.precision = GPTQ_PRECISION_F64;
  Outcome o = quantize_with(cfg, x, tokens, w, out, in);
  expect_finite_and_in_range(o, out, in, cfg.bits);
  EXPECT_EQ(o.stats.fell_back_to_rtn, 0);
  EXPECT_GE(o.stats.damp_retries, 1);
  EXPECT_NEAR(o.stats.damp_percent_used, 0.01 * o.stats.damp_retries, 1e-9);
}

// Imports a hand-made Hessian and quantizes; returns the outcome.
Outcome quantize_with_hessian(const gptq_config &cfg, const std::vector<double> &h,
                              const std::vector<float> &w, int64_t out, int64_t in) {
  Outcome o;
  o.stats.struct_size = sizeof o.stats;
  Ctx ctx = make_ctx(out, in, cfg);
  EXPECT_EQ(gptq_ctx_import_hessian(ctx.get(), h.data(), in * in, 1), GPTQ_OK) << gptq_last_error();
  gptq_qtensor *q = nullptr;
  EXPECT_EQ(gptq_quantize(ctx.get(), w.data(), GPTQ_DTYPE_F32, out, in, &q, &o.stats), GPTQ_OK)
      << gptq_last_error();
  o.q.reset(q);
  return o;
}

TEST(Singular, IndefiniteHessianNeedsRaisedDamping) {
  // diag(1, …, 1, −0.011): mean diag ≈ 0.984; 1% damping leaves the last
  // pivot negative, 1.25% makes it positive. Exactly one retry.
  const int64_t out = 8, in = 64;
  std::vector<double> h(in * in, 0.0);
  for (int64_t j = 0; j < in; ++j) h[j * in + j] = 1.0;
  h[in * in - 1] = -0.011;
  gptq_config cfg = default_config();
  cfg.precision = GPTQ_PRECISION_F64;
  Outcome o = quantize_with_hessian(cfg, h, layer_weights(out, in, 14), out, in);
  expect_finite_and_in_range(o, out, in, cfg.bits);
  EXPECT_EQ(o.stats.fell_back_to_rtn, 0);
  EXPECT_EQ(o.stats.damp_retries, 1);
  EXPECT_NEAR(o.stats.damp_percent_used, 0.0125, 1e-6);
}

TEST(Singular, HopelessHessianFallsBackToRoundToNearest) {
  // H = −I: no damping below 100% of a negative mean can make it positive.
  const int64_t out = 16, in = 64;
  std::vector<double> h(in * in, 0.0);
  for (int64_t j = 0; j < in; ++j) h[j * in + j] = -1.0;
  const std::vector<float> w = layer_weights(out, in, 15);
  std::vector<std::string> warnings;
  gptq_config cfg = default_config();
  cfg.group_size = 32;
  cfg.damp_increment = 0.05f;
  cfg.log = [](gptq_log_level level, const char *message, void *user) {
    if (level == GPTQ_LOG_WARN) static_cast<std::vector<std::string> *>(user)->push_back(message);
  };
  cfg.log_user_data = &warnings;
  Outcome o = quantize_with_hessian(cfg, h, w, out, in);
  expect_finite_and_in_range(o, out, in, cfg.bits);
  EXPECT_EQ(o.stats.fell_back_to_rtn, 1);
  EXPECT_EQ(o.stats.damp_retries, 20);  // 0.01, 0.06, …, 0.96
  ASSERT_FALSE(warnings.empty());
  EXPECT_NE(warnings.back().find("round-to-nearest"), std::string::npos) << warnings.back();

  // The fallback is exactly round-to-nearest: each code is the nearest level
  // of its group's min/max grid, with no error feedback.
  const std::vector<uint8_t> codes = codes_of(o.q.get(), out, in);
  for (int64_t r = 0; r < out; ++r)
    for (int64_t g0 = 0; g0 < in; g0 += 32) {
      float hi = 0;
      for (int64_t j = g0; j < g0 + 32; ++j) hi = std::max(hi, std::abs(w[r * in + j]));
      const float s = 2 * hi / 15;
      for (int64_t j = g0; j < g0 + 32; ++j) {
        const float c = std::min(std::max(std::nearbyint(w[r * in + j] / s) + 8.0f, 0.0f), 15.0f);
        EXPECT_EQ(codes[r * in + j], static_cast<uint8_t>(c)) << "row " << r << " col " << j;
      }
    }
}

// The solver builds its Cholesky factor inside the Hessian's own storage
// (below the diagonal, and on the diagonal until it is done): after every
// outcome — first try, raised damping, round-to-nearest fallback, dead
// columns, act-order, both precisions — the Hessian must read back exactly as
// before, and a second quantize must give the same tensor.
TEST(Singular, FactorizationLeavesTheHessianAsItWas) {
  const int64_t out = 16, in = 96;
  struct Case {
    const char *name;
    int tokens;  // 0: import −I (no damping helps)
    float damp;
    int act_order;
    bool dead;
  };
  const Case cases[] = {{"first try", 300, 0.01f, 0, false},
                        {"act-order, dead columns", 300, 0.01f, 1, true},
                        {"raised damping", 10, 0.0f, 1, false},
                        {"round-to-nearest fallback", 0, 0.01f, 0, false}};
  const std::vector<float> w = layer_weights(out, in, 21);
  for (const Case &c : cases)
    for (gptq_precision precision : {GPTQ_PRECISION_F32, GPTQ_PRECISION_F64}) {
      SCOPED_TRACE(std::string(c.name) + (precision == GPTQ_PRECISION_F64 ? ", f64" : ", f32"));
      gptq_config cfg = default_config();
      cfg.group_size = 32;
      cfg.block_size = 32;
      cfg.act_order = c.act_order;
      cfg.damp_percent = c.damp;
      cfg.damp_increment = 0.05f;
      cfg.precision = precision;
      Ctx ctx = make_ctx(out, in, cfg);
      ASSERT_TRUE(ctx);
      if (c.tokens > 0) {
        std::vector<float> x = correlated_activations(c.tokens, in, 22);
        if (c.dead)
          for (int64_t t = 0; t < c.tokens; ++t) x[t * in + 5] = x[t * in + 60] = 0.0f;
        ASSERT_EQ(gptq_add_batch(ctx.get(), x.data(), GPTQ_DTYPE_F32, c.tokens, in, 1), GPTQ_OK);
      } else {
        std::vector<double> h(in * in, 0.0);
        for (int64_t j = 0; j < in; ++j) h[j * in + j] = -1.0;
        ASSERT_EQ(gptq_ctx_import_hessian(ctx.get(), h.data(), in * in, 1), GPTQ_OK);
      }
      std::vector<double> before(in * in), after(in * in);
      int64_t samples = 0;
      ASSERT_EQ(gptq_ctx_export_hessian(ctx.get(), before.data(), in * in, &samples), GPTQ_OK);
      QTensor first, second;
      gptq_quant_stats stats{};
      stats.struct_size = sizeof stats;
      for (QTensor *q : {&first, &second}) {
        gptq_qtensor *raw = nullptr;
        ASSERT_EQ(gptq_quantize(ctx.get(), w.data(), GPTQ_DTYPE_F32, out, in, &raw, &stats),
                  GPTQ_OK)
            << gptq_last_error();
        q->reset(raw);
        ASSERT_EQ(gptq_ctx_export_hessian(ctx.get(), after.data(), in * in, &samples), GPTQ_OK);
        EXPECT_EQ(std::memcmp(before.data(), after.data(), before.size() * sizeof(double)), 0);
      }
      EXPECT_EQ(stats.fell_back_to_rtn, c.tokens == 0 ? 1 : 0);
      EXPECT_EQ(stats.damp_retries > 0, c.tokens != 300);
      EXPECT_EQ(codes_of(first.get(), out, in), codes_of(second.get(), out, in));
      const std::vector<float> d1 = dequantized(first.get(), out, in);
      const std::vector<float> d2 = dequantized(second.get(), out, in);
      EXPECT_EQ(std::memcmp(d1.data(), d2.data(), d1.size() * sizeof(float)), 0);
    }
}

TEST(Singular, NoRetriesWhenIncrementIsZero) {
  const int64_t out = 8, in = 32;
  std::vector<double> h(in * in, 0.0);
  for (int64_t j = 0; j < in; ++j) h[j * in + j] = -1.0;
  gptq_config cfg = default_config();
  cfg.damp_increment = 0.0f;
  Outcome o = quantize_with_hessian(cfg, h, layer_weights(out, in, 16), out, in);
  expect_finite_and_in_range(o, out, in, cfg.bits);
  EXPECT_EQ(o.stats.fell_back_to_rtn, 1);
  EXPECT_EQ(o.stats.damp_retries, 1);
}

}  // namespace
