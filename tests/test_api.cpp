// The API around the four core calls: sharded calibration (merge, Hessian
// export/import), f16/bf16 inputs, matmul against dequantize-then-multiply,
// callbacks, repeated quantization and sharing a tensor across threads.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <thread>

#include "half.h"
#include "test_util.h"

using namespace gptq_test;

namespace {

std::vector<double> hessian_of(const gptq_ctx *ctx, int64_t in, int64_t *samples = nullptr) {
  std::vector<double> h(static_cast<size_t>(in * in));
  int64_t n = 0;
  EXPECT_EQ(gptq_ctx_export_hessian(ctx, h.data(), in * in, &n), GPTQ_OK) << gptq_last_error();
  if (samples) *samples = n;
  return h;
}

double max_abs(const std::vector<double> &v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::abs(x));
  return m;
}

TEST(Version, MacrosMatchRuntime) {
  EXPECT_EQ(gptq_version_number(), static_cast<uint32_t>(GPTQ_VERSION_NUMBER));
  const std::string expect = std::to_string(GPTQ_VERSION_MAJOR) + "." + std::to_string(GPTQ_VERSION_MINOR) +
                             "." + std::to_string(GPTQ_VERSION_PATCH);
  EXPECT_EQ(std::string(gptq_version_string()), expect);
}

TEST(Hessian, RunningMeanWeightsBatchesBySamples) {
  // H = 2/n Σ xxᵀ with n counted in samples: batches (A, 1 sample) and
  // (B, 3 samples) give (2/4)(AᵀA + BᵀB).
  const int64_t in = 24;
  const std::vector<float> a = correlated_activations(10, in, 1), b = correlated_activations(7, in, 2);
  gptq_config cfg = default_config();
  cfg.precision = GPTQ_PRECISION_F64;
  Ctx ctx = make_ctx(4, in, cfg);
  ASSERT_EQ(gptq_add_batch(ctx.get(), a.data(), GPTQ_DTYPE_F32, 10, in, 1), GPTQ_OK);
  ASSERT_EQ(gptq_add_batch(ctx.get(), b.data(), GPTQ_DTYPE_F32, 7, in, 3), GPTQ_OK);
  int64_t n = 0;
  const std::vector<double> h = hessian_of(ctx.get(), in, &n);
  EXPECT_EQ(n, 4);
  EXPECT_EQ(gptq_ctx_samples(ctx.get()), 4);
  for (int64_t i = 0; i < in; ++i)
    for (int64_t j = 0; j < in; ++j) {
      double s = 0;
      for (int64_t t = 0; t < 10; ++t) s += double(a[t * in + i]) * a[t * in + j];
      for (int64_t t = 0; t < 7; ++t) s += double(b[t * in + i]) * b[t * in + j];
      EXPECT_NEAR(h[i * in + j], 0.5 * s, 1e-9 * std::abs(s) + 1e-12);
      EXPECT_EQ(h[i * in + j], h[j * in + i]);  // exported full and symmetric
    }
}

TEST(Hessian, MergeOfShardsEqualsOneContext) {
  const int64_t out = 16, in = 64;
  const std::vector<float> x = correlated_activations(300, in, 3);
  for (gptq_precision p : {GPTQ_PRECISION_F32, GPTQ_PRECISION_F64}) {
    gptq_config cfg = default_config();
    cfg.precision = p;
    Ctx whole = make_ctx(out, in, cfg), left = make_ctx(out, in, cfg), right = make_ctx(out, in, cfg);
    ASSERT_EQ(gptq_add_batch(whole.get(), x.data(), GPTQ_DTYPE_F32, 100, in, 1), GPTQ_OK);
    ASSERT_EQ(gptq_add_batch(whole.get(), x.data() + 100 * in, GPTQ_DTYPE_F32, 200, in, 2), GPTQ_OK);
    ASSERT_EQ(gptq_add_batch(left.get(), x.data(), GPTQ_DTYPE_F32, 100, in, 1), GPTQ_OK);
    ASSERT_EQ(gptq_add_batch(right.get(), x.data() + 100 * in, GPTQ_DTYPE_F32, 200, in, 2), GPTQ_OK);
    ASSERT_EQ(gptq_ctx_merge(left.get(), right.get()), GPTQ_OK) << gptq_last_error();
    EXPECT_EQ(gptq_ctx_samples(left.get()), 3);
    EXPECT_EQ(gptq_ctx_samples(right.get()), 2);  // src unchanged
    const std::vector<double> a = hessian_of(whole.get(), in), b = hessian_of(left.get(), in);
    const double tol = (p == GPTQ_PRECISION_F64 ? 1e-12 : 1e-5) * max_abs(a);
    for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], tol) << i;

    // Merging an empty context changes nothing.
    Ctx empty = make_ctx(out, in, cfg);
    ASSERT_EQ(gptq_ctx_merge(left.get(), empty.get()), GPTQ_OK);
    EXPECT_EQ(hessian_of(left.get(), in), b);
  }
}

TEST(Hessian, ExportImportAcrossMachinesRoundTrips) {
  const int64_t out = 8, in = 48;
  const std::vector<float> x = correlated_activations(128, in, 4);
  const std::vector<float> w = layer_weights(out, in, 5);
  gptq_config cfg = default_config();
  cfg.group_size = 16;
  Ctx source = make_ctx(out, in, cfg);
  ASSERT_EQ(gptq_add_batch(source.get(), x.data(), GPTQ_DTYPE_F32, 128, in, 4), GPTQ_OK);
  int64_t n = 0;
  const std::vector<double> h = hessian_of(source.get(), in, &n);
  Ctx target = make_ctx(out, in, cfg);
  ASSERT_EQ(gptq_ctx_import_hessian(target.get(), h.data(), in * in, n), GPTQ_OK) << gptq_last_error();
  EXPECT_EQ(hessian_of(target.get(), in), h);  // f32 → double → f32 is exact
  EXPECT_EQ(gptq_ctx_samples(target.get()), 4);

  gptq_qtensor *a = nullptr, *b = nullptr;
  ASSERT_EQ(gptq_quantize(source.get(), w.data(), GPTQ_DTYPE_F32, out, in, &a, nullptr), GPTQ_OK);
  ASSERT_EQ(gptq_quantize(target.get(), w.data(), GPTQ_DTYPE_F32, out, in, &b, nullptr), GPTQ_OK);
  QTensor qa(a), qb(b);
  EXPECT_EQ(codes_of(qa.get(), out, in), codes_of(qb.get(), out, in));
}

TEST(Inputs, HalfAndBfloatBatchesEqualTheirFloatValues) {
  const int64_t out = 8, in = 40, tokens = 64;
  const std::vector<float> x = correlated_activations(tokens, in, 6);
  std::vector<uint16_t> xh(x.size()), xb(x.size());
  std::vector<float> xh_f(x.size()), xb_f(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    xh[i] = gptq::float_to_half(x[i]);
    xh_f[i] = gptq::half_to_float(xh[i]);
    xb[i] = gptq::float_to_bf16(x[i]);
    xb_f[i] = gptq::bf16_to_float(xb[i]);
  }
  gptq_config cfg = default_config();
  struct Pair {
    gptq_dtype dtype;
    const void *data;
    const std::vector<float> *as_float;
  } pairs[] = {{GPTQ_DTYPE_F16, xh.data(), &xh_f}, {GPTQ_DTYPE_BF16, xb.data(), &xb_f}};
  for (const Pair &p : pairs) {
    Ctx narrow = make_ctx(out, in, cfg), wide = make_ctx(out, in, cfg);
    ASSERT_EQ(gptq_add_batch(narrow.get(), p.data, p.dtype, tokens, in, 1), GPTQ_OK);
    ASSERT_EQ(gptq_add_batch(wide.get(), p.as_float->data(), GPTQ_DTYPE_F32, tokens, in, 1), GPTQ_OK);
    const std::vector<double> a = hessian_of(narrow.get(), in), b = hessian_of(wide.get(), in);
    for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], 1e-5 * max_abs(b));
  }
}

TEST(Inputs, HalfWeightsQuantizeLikeTheirFloatValues) {
  const int64_t out = 16, in = 64;
  const std::vector<float> x = correlated_activations(128, in, 7);
  std::vector<float> w = layer_weights(out, in, 8);
  std::vector<uint16_t> wh(w.size());
  for (size_t i = 0; i < w.size(); ++i) {
    wh[i] = gptq::float_to_half(w[i]);
    w[i] = gptq::half_to_float(wh[i]);
  }
  gptq_config cfg = default_config();
  cfg.group_size = 32;
  Ctx ctx = make_ctx(out, in, cfg);
  ASSERT_EQ(gptq_add_batch(ctx.get(), x.data(), GPTQ_DTYPE_F32, 128, in, 1), GPTQ_OK);
  gptq_qtensor *a = nullptr, *b = nullptr;
  ASSERT_EQ(gptq_quantize(ctx.get(), wh.data(), GPTQ_DTYPE_F16, out, in, &a, nullptr), GPTQ_OK);
  ASSERT_EQ(gptq_quantize(ctx.get(), w.data(), GPTQ_DTYPE_F32, out, in, &b, nullptr), GPTQ_OK);
  QTensor qa(a), qb(b);
  EXPECT_EQ(codes_of(qa.get(), out, in), codes_of(qb.get(), out, in));
}

TEST(Quantize, RepeatableAndContextReusable) {
  const int64_t out = 16, in = 64;
  const std::vector<float> x = correlated_activations(200, in, 9);
  const std::vector<float> w = layer_weights(out, in, 10);
  gptq_config cfg = default_config();
  cfg.act_order = 1;
  cfg.group_size = 16;
  Ctx ctx = make_ctx(out, in, cfg);
  ASSERT_EQ(gptq_add_batch(ctx.get(), x.data(), GPTQ_DTYPE_F32, 100, in, 1), GPTQ_OK);
  gptq_qtensor *a = nullptr, *b = nullptr, *c = nullptr;
  ASSERT_EQ(gptq_quantize(ctx.get(), w.data(), GPTQ_DTYPE_F32, out, in, &a, nullptr), GPTQ_OK);
  ASSERT_EQ(gptq_quantize(ctx.get(), w.data(), GPTQ_DTYPE_F32, out, in, &b, nullptr), GPTQ_OK);
  QTensor qa(a), qb(b);
  EXPECT_EQ(codes_of(qa.get(), out, in), codes_of(qb.get(), out, in));  // H not consumed
  // More data after a quantize is allowed and changes the result.
  ASSERT_EQ(gptq_add_batch(ctx.get(), x.data() + 100 * in, GPTQ_DTYPE_F32, 100, in, 1), GPTQ_OK);
  ASSERT_EQ(gptq_quantize(ctx.get(), w.data(), GPTQ_DTYPE_F32, out, in, &c, nullptr), GPTQ_OK);
  QTensor qc(c);
  EXPECT_NE(codes_of(qa.get(), out, in), codes_of(qc.get(), out, in));
  gptq_qtensor_info info{};
  ASSERT_EQ(gptq_qtensor_get_info(qa.get(), &info), GPTQ_OK);
  EXPECT_EQ(info.out_features, out);
  EXPECT_EQ(info.in_features, in);
  EXPECT_EQ(info.bits, 4);
  EXPECT_EQ(info.group_size, 16);
  EXPECT_EQ(info.groups, 4);
  EXPECT_EQ(info.act_order, 1);
}

TEST(Quantize, StatsReportBackendTimeAndRespectStructSize) {
  const int64_t out = 8, in = 32;
  const std::vector<float> x = correlated_activations(64, in, 11);
  const std::vector<float> w = layer_weights(out, in, 12);
  gptq_quant_stats stats;
  std::memset(&stats, 0xAB, sizeof stats);
  stats.struct_size = sizeof stats;
  QTensor q = quantize_layer(default_config(), x, w, 64, out, in, &stats);
  ASSERT_TRUE(q);
  EXPECT_EQ(stats.backend, GPTQ_BACKEND_CPU);
  EXPECT_GE(stats.seconds, 0.0);
  EXPECT_GT(stats.loss, 0.0);
  EXPECT_FLOAT_EQ(stats.damp_percent_used, 0.01f);
  EXPECT_EQ(stats.damp_retries, 0);
  EXPECT_EQ(stats.dead_columns, 0);

  // An older caller's smaller struct: only its bytes are written.
  struct {
    size_t struct_size;
    double loss;
    unsigned char guard[16];
  } small;
  std::memset(&small, 0x5A, sizeof small);
  small.struct_size = offsetof(gptq_quant_stats, damp_percent_used);
  Ctx ctx = make_ctx(out, in, default_config());
  ASSERT_EQ(gptq_add_batch(ctx.get(), x.data(), GPTQ_DTYPE_F32, 64, in, 1), GPTQ_OK);
  gptq_qtensor *raw = nullptr;
  ASSERT_EQ(gptq_quantize(ctx.get(), w.data(), GPTQ_DTYPE_F32, out, in, &raw,
                          reinterpret_cast<gptq_quant_stats *>(&small)),
            GPTQ_OK);
  gptq_qtensor_destroy(raw);
  EXPECT_EQ(small.struct_size, offsetof(gptq_quant_stats, damp_percent_used));
  EXPECT_DOUBLE_EQ(small.loss, stats.loss);
  for (unsigned char g : small.guard) EXPECT_EQ(g, 0x5A);
}

TEST(Callbacks, ProgressReportsEveryBlockInOrder) {
  const int64_t out = 8, in = 100;
  std::vector<std::pair<int64_t, int64_t>> calls;
  gptq_config cfg = default_config();
  cfg.block_size = 32;
  cfg.progress = [](int64_t done, int64_t total, void *user) {
    static_cast<std::vector<std::pair<int64_t, int64_t>> *>(user)->push_back({done, total});
    return 0;
  };
  cfg.progress_user_data = &calls;
  QTensor q = quantize_layer(cfg, correlated_activations(64, in, 13), layer_weights(out, in, 14), 64, out, in);
  ASSERT_TRUE(q);
  const std::vector<std::pair<int64_t, int64_t>> expect = {{32, 100}, {64, 100}, {96, 100}, {100, 100}};
  EXPECT_EQ(calls, expect);
}

TEST(Callbacks, LogReceivesBackendChoiceAndDeadColumns) {
  std::vector<std::pair<gptq_log_level, std::string>> lines;
  gptq_config cfg = default_config();
  cfg.log = [](gptq_log_level level, const char *msg, void *user) {
    static_cast<std::vector<std::pair<gptq_log_level, std::string>> *>(user)->push_back({level, msg});
  };
  cfg.log_user_data = &lines;
  cfg.log_level = GPTQ_LOG_DEBUG;
  const int64_t out = 4, in = 16;
  std::vector<float> x = correlated_activations(32, in, 15);
  for (int64_t t = 0; t < 32; ++t) x[t * in + 3] = 0;
  QTensor q = quantize_layer(cfg, x, layer_weights(out, in, 16), 32, out, in);
  ASSERT_TRUE(q);
  bool backend = false, dead = false;
  for (auto &l : lines) {
    backend |= l.second.find("CPU backend") != std::string::npos;
    dead |= l.second.find("1 of 16 input columns are dead") != std::string::npos;
  }
  EXPECT_TRUE(backend);
  EXPECT_TRUE(dead);

  // Above the threshold only: nothing at INFO reaches a WARN-level sink.
  lines.clear();
  cfg.log_level = GPTQ_LOG_WARN;
  QTensor q2 = quantize_layer(cfg, x, layer_weights(out, in, 16), 32, out, in);
  EXPECT_TRUE(lines.empty());
}

// y = x·Wᵀ + b computed in double from the dequantized weights.
std::vector<double> reference_matmul(const std::vector<float> &x, const std::vector<float> &w,
                                     const std::vector<float> *bias, int64_t rows, int64_t out,
                                     int64_t in) {
  std::vector<double> y(rows * out);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < out; ++o) {
      double s = bias ? (*bias)[o] : 0.0;
      for (int64_t j = 0; j < in; ++j) s += double(x[r * in + j]) * w[o * in + j];
      y[r * out + o] = s;
    }
  return y;
}

struct MatmulCase {
  int bits, group;
  bool act_order;
};

class Matmul : public ::testing::TestWithParam<MatmulCase> {};

// The documented tolerance: f32 accumulation over K terms, |err| <= K·2^-23·Σ|x·w|
// in the worst case; we check the much tighter 1e-5 relative to Σ|x·w| that
// sgemm achieves in practice (blocked summation).
TEST_P(Matmul, EqualsDequantizeThenMultiply) {
  const MatmulCase c = GetParam();
  const int64_t out = 48, in = 256;
  gptq_config cfg = default_config();
  cfg.bits = c.bits;
  cfg.group_size = c.group;
  cfg.act_order = c.act_order;
  cfg.sym = 0;
  QTensor q = quantize_layer(cfg, correlated_activations(300, in, 17), layer_weights(out, in, 18), 300, out, in);
  ASSERT_TRUE(q);
  const std::vector<float> wq = dequantized(q.get(), out, in);
  std::vector<float> bias(out);
  for (int64_t o = 0; o < out; ++o) bias[o] = 0.01f * (o - 20);
  for (int64_t rows : {1, 3, 32, 300}) {
    const std::vector<float> x = correlated_activations(rows, in, 19 + rows);
    std::vector<double> magnitude(rows * out, 0.0);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t o = 0; o < out; ++o)
        for (int64_t j = 0; j < in; ++j) magnitude[r * out + o] += std::abs(double(x[r * in + j]) * wq[o * in + j]);
    const std::vector<float> *no_bias = nullptr, *with_bias = &bias;
    for (const std::vector<float> *b : {no_bias, with_bias}) {
      const std::vector<double> want = reference_matmul(x, wq, b, rows, out, in);
      std::vector<float> y(rows * out, NAN);
      ASSERT_EQ(gptq_matmul(q.get(), x.data(), GPTQ_DTYPE_F32, rows, in, b ? b->data() : nullptr, y.data(),
                            rows * out),
                GPTQ_OK)
          << gptq_last_error();
      for (int64_t i = 0; i < rows * out; ++i)
        ASSERT_NEAR(y[i], want[i], 1e-5 * magnitude[i] + 1e-6) << "rows " << rows << " i " << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Bits, Matmul,
                         ::testing::Values(MatmulCase{2, 32, false}, MatmulCase{3, 64, true},
                                           MatmulCase{4, 128, false}, MatmulCase{4, 32, true},
                                           MatmulCase{5, -1, false}, MatmulCase{8, 64, true}));

TEST(MatmulDtypes, HalfAndBfloatActivationsRoundOnceAtTheEnd) {
  const int64_t out = 32, in = 128, rows = 5;
  QTensor q = quantize_layer(default_config(), correlated_activations(200, in, 20), layer_weights(out, in, 21),
                             200, out, in);
  ASSERT_TRUE(q);
  const std::vector<float> wq = dequantized(q.get(), out, in);
  const std::vector<float> x = correlated_activations(rows, in, 22);
  std::vector<uint16_t> xh(x.size()), xb(x.size()), bh(out), bb(out);
  std::vector<float> xh_f(x.size()), xb_f(x.size()), bh_f(out), bb_f(out);
  for (size_t i = 0; i < x.size(); ++i) {
    xh[i] = gptq::float_to_half(x[i]);
    xh_f[i] = gptq::half_to_float(xh[i]);
    xb[i] = gptq::float_to_bf16(x[i]);
    xb_f[i] = gptq::bf16_to_float(xb[i]);
  }
  for (int64_t o = 0; o < out; ++o) {
    bh[o] = gptq::float_to_half(0.05f * o);
    bh_f[o] = gptq::half_to_float(bh[o]);
    bb[o] = gptq::float_to_bf16(0.05f * o);
    bb_f[o] = gptq::bf16_to_float(bb[o]);
  }
  struct {
    gptq_dtype dtype;
    const uint16_t *x, *bias;
    const std::vector<float> *xf, *bf;
    float (*to_float)(uint16_t);
    double rel;  // one rounding of the result: 2^-11 (f16), 2^-8 (bf16)
  } cases[] = {{GPTQ_DTYPE_F16, xh.data(), bh.data(), &xh_f, &bh_f, gptq::half_to_float, 1.0 / 2048},
               {GPTQ_DTYPE_BF16, xb.data(), bb.data(), &xb_f, &bb_f, gptq::bf16_to_float, 1.0 / 256}};
  for (auto &c : cases) {
    std::vector<uint16_t> y(rows * out);
    ASSERT_EQ(gptq_matmul(q.get(), c.x, c.dtype, rows, in, c.bias, y.data(), rows * out), GPTQ_OK);
    const std::vector<double> want = reference_matmul(*c.xf, wq, c.bf, rows, out, in);
    for (int64_t i = 0; i < rows * out; ++i)
      ASSERT_NEAR(c.to_float(y[i]), want[i], c.rel * std::abs(want[i]) + 1e-3) << i;
  }
}

TEST(Threads, OneTensorSharedByManyThreads) {
  const int64_t out = 64, in = 128, rows = 4;
  QTensor q = quantize_layer(default_config(), correlated_activations(200, in, 23), layer_weights(out, in, 24),
                             200, out, in);
  ASSERT_TRUE(q);
  const std::vector<float> x = correlated_activations(rows, in, 25);
  std::vector<float> expect(rows * out);
  ASSERT_EQ(gptq_matmul(q.get(), x.data(), GPTQ_DTYPE_F32, rows, in, nullptr, expect.data(), rows * out), GPTQ_OK);
  std::vector<std::vector<float>> results(8, std::vector<float>(rows * out));
  std::vector<int> ok(8, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      bool all = true;
      for (int i = 0; i < 20; ++i)
        all &= gptq_matmul(q.get(), x.data(), GPTQ_DTYPE_F32, rows, in, nullptr, results[t].data(), rows * out) ==
               GPTQ_OK;
      ok[t] = all;
    });
  for (auto &th : threads) th.join();
  for (int t = 0; t < 8; ++t) {
    EXPECT_TRUE(ok[t]);
    EXPECT_EQ(results[t], expect);
  }
}

TEST(Threads, IndependentContextsOnParallelThreads) {
  const int64_t out = 16, in = 64;
  const std::vector<float> x = correlated_activations(128, in, 26);
  const std::vector<float> w = layer_weights(out, in, 27);
  QTensor serial = quantize_layer(default_config(), x, w, 128, out, in);
  ASSERT_TRUE(serial);
  const std::vector<uint8_t> expect = codes_of(serial.get(), out, in);
  std::vector<std::vector<uint8_t>> got(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      gptq_ctx *ctx = nullptr;
      gptq_config cfg = default_config();
      if (gptq_ctx_create(out, in, &cfg, &ctx) != GPTQ_OK) return;
      gptq_qtensor *q = nullptr;
      if (gptq_add_batch(ctx, x.data(), GPTQ_DTYPE_F32, 128, in, 1) == GPTQ_OK &&
          gptq_quantize(ctx, w.data(), GPTQ_DTYPE_F32, out, in, &q, nullptr) == GPTQ_OK) {
        got[t].resize(out * in);
        gptq_qtensor_codes(q, got[t].data(), out * in);
      }
      gptq_qtensor_destroy(q);
      gptq_ctx_destroy(ctx);
    });
  for (auto &th : threads) th.join();
  for (int t = 0; t < 4; ++t) EXPECT_EQ(got[t], expect) << "thread " << t;
}

}  // namespace
