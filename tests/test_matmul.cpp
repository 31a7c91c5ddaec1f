// The CPU matmul kernels (up to 32 rows of x: SIMD over packed codes, f32 or
// int8 activations) and the large-batch path (dequantize + sgemm), against
// dequantize-then-multiply in double, for every bit width, group layout and
// act-order, with the tolerances gptq.h documents.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "half.h"
#include "test_util.h"

using namespace gptq_test;

namespace {

struct Case {
  int bits, group;
  bool act_order;
};

class MatmulKernels : public ::testing::TestWithParam<Case> {};

struct Layer {
  QTensor q;
  std::vector<float> w;  // dequantized
  int64_t out, in;
};

Layer make_layer(const Case &c, int64_t out, int64_t in) {
  gptq_config cfg = default_config();
  cfg.bits = c.bits;
  cfg.group_size = c.group;
  cfg.act_order = c.act_order;
  cfg.sym = 0;
  Layer l;
  l.out = out;
  l.in = in;
  l.q = quantize_layer(cfg, correlated_activations(256, in, 31), layer_weights(out, in, 32), 256, out, in);
  if (l.q) l.w = dequantized(l.q.get(), out, in);
  return l;
}

void reference(const Layer &l, const std::vector<float> &x, int64_t rows, std::vector<double> &y,
               std::vector<double> &magnitude) {
  y.assign(rows * l.out, 0.0);
  magnitude.assign(rows * l.out, 0.0);
  for (int64_t m = 0; m < rows; ++m)
    for (int64_t o = 0; o < l.out; ++o)
      for (int64_t j = 0; j < l.in; ++j) {
        const double p = double(x[m * l.in + j]) * l.w[o * l.in + j];
        y[m * l.out + o] += p;
        magnitude[m * l.out + o] += std::abs(p);
      }
}

TEST_P(MatmulKernels, Float32ActivationsMatchDequantizeThenMultiply) {
  const Case c = GetParam();
  const Layer l = make_layer(c, 72, 200);  // 200 columns: groups padded to 32 inside
  ASSERT_TRUE(l.q);
  for (int64_t rows : {1, 2, 4, 5, 16, 17, 32, 33}) {
    const std::vector<float> x = correlated_activations(rows, l.in, 40 + rows);
    std::vector<double> want, magnitude;
    reference(l, x, rows, want, magnitude);
    std::vector<float> y(rows * l.out);
    ASSERT_EQ(gptq_matmul(l.q.get(), x.data(), GPTQ_DTYPE_F32, rows, l.in, nullptr, y.data(), y.size()), GPTQ_OK)
        << gptq_last_error();
    for (size_t i = 0; i < y.size(); ++i)
      ASSERT_NEAR(y[i], want[i], 2e-6 * magnitude[i] + 1e-7) << "rows " << rows << " i " << i;
  }
}

TEST_P(MatmulKernels, Int8ActivationsWithinTheirRoundingBound) {
  const Case c = GetParam();
  const Layer l = make_layer(c, 64, 256);
  ASSERT_TRUE(l.q);
  gptq_matmul_options opts;
  gptq_matmul_options_default(&opts);
  opts.int8_activations = 1;
  for (int64_t rows : {1, 3, 6, 8, 11, 40, 100}) {
    const std::vector<float> x = correlated_activations(rows, l.in, 50 + rows);
    std::vector<double> want, magnitude;
    reference(l, x, rows, want, magnitude);
    std::vector<float> y(rows * l.out);
    ASSERT_EQ(gptq_matmul_ex(l.q.get(), x.data(), GPTQ_DTYPE_F32, rows, l.in, nullptr, y.data(), y.size(), &opts),
              GPTQ_OK)
        << gptq_last_error();
    if (c.bits > 4) {
      // Wider codes ignore the flag: the float32 path.
      for (size_t i = 0; i < y.size(); ++i) ASSERT_NEAR(y[i], want[i], 2e-6 * magnitude[i] + 1e-7);
      continue;
    }
    // Each activation moves by at most half its block's int8 step, amax/254;
    // blocks are 32 consecutive columns in the kernel's column order, which
    // without act-order and with groups of a multiple of 32 is the original
    // order. Bound: Σ_j step(j)/2 · |w_j|, with step from the largest |x| of
    // any 32 columns around j (a safe over-estimate for any block layout).
    for (int64_t m = 0; m < rows; ++m) {
      const float *xm = &x[m * l.in];
      float amax_all = 0;
      for (int64_t j = 0; j < l.in; ++j) amax_all = std::max(amax_all, std::abs(xm[j]));
      for (int64_t o = 0; o < l.out; ++o) {
        double bound = 0;
        for (int64_t j = 0; j < l.in; ++j) bound += amax_all / 254.0 * std::abs(l.w[o * l.in + j]);
        const double err = std::abs(y[m * l.out + o] - want[m * l.out + o]);
        ASSERT_LE(err, bound * 1.001 + 1e-6 * magnitude[m * l.out + o]) << "m " << m << " o " << o;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Layouts, MatmulKernels,
                         ::testing::Values(Case{4, 128, false}, Case{4, 32, true}, Case{4, 40, true},
                                           Case{4, -1, false}, Case{2, 64, false}, Case{3, 48, true},
                                           Case{5, 32, false}, Case{6, 64, true}, Case{7, -1, false},
                                           Case{8, 128, true}, Case{8, 24, false}));

TEST(MatmulKernels, FewerOutputRowsThanOneTile) {
  // Output rows come in tiles of 16 inside; 5 rows fill part of one tile,
  // whose other lanes must never reach y.
  for (int bits : {2, 3, 4, 8}) {
    const Layer l = make_layer(Case{bits, 32, bits == 3}, 5, 96);
    ASSERT_TRUE(l.q);
    for (int int8 = 0; int8 <= 1; ++int8)
      for (int64_t rows : {1, 3}) {
        const std::vector<float> x = correlated_activations(rows, l.in, 60 + rows);
        std::vector<double> want, magnitude;
        reference(l, x, rows, want, magnitude);
        gptq_matmul_options opts;
        gptq_matmul_options_default(&opts);
        opts.int8_activations = int8;
        std::vector<float> y(rows * l.out + 16, -7.0f);  // room past the end, to catch stray stores
        ASSERT_EQ(gptq_matmul_ex(l.q.get(), x.data(), GPTQ_DTYPE_F32, rows, l.in, nullptr, y.data(), y.size(), &opts),
                  GPTQ_OK)
            << gptq_last_error();
        for (size_t i = rows * l.out; i < y.size(); ++i) ASSERT_EQ(y[i], -7.0f) << "bits " << bits;
        for (int64_t i = 0; i < rows * l.out; ++i) {
          // int8: each activation within amax/254 of x; |w| summed is a safe bound.
          double bound = 2e-6 * magnitude[i] + 1e-7;
          if (int8 && bits <= 4) {
            const int64_t m = i / l.out, o = i % l.out;
            float amax = 0;
            for (int64_t j = 0; j < l.in; ++j) amax = std::max(amax, std::abs(x[m * l.in + j]));
            double wsum = 0;
            for (int64_t j = 0; j < l.in; ++j) wsum += std::abs(l.w[o * l.in + j]);
            bound = amax / 254.0 * wsum * 1.001 + 1e-6 * magnitude[i];
          }
          ASSERT_NEAR(y[i], want[i], bound) << "bits " << bits << " int8 " << int8 << " rows " << rows << " i " << i;
        }
      }
  }
}

TEST(MatmulKernels, Float32ActivationsOfAnyFiniteMagnitude) {
  // The AVX-512 and AVX2 kernels for nibble codes sum products scaled by up
  // to 2^16 and are taken only for max|x| < 2^64; larger activations take
  // the plain kernels (at 1e33 the scaled sums would overflow to inf). Tiny ones must
  // keep their relative precision too. One group over all 1024 columns is
  // the longest sum.
  for (int bits : {3, 4})
    for (int group : {128, -1}) {
      const Layer l = make_layer(Case{bits, group, false}, 48, 1024);
      ASSERT_TRUE(l.q);
      for (int64_t rows : {1, 2})
        for (double top : {1e-30, 1e18, 1e33}) {
          std::vector<float> x = correlated_activations(rows, l.in, 90 + rows);
          float amax = 0;
          for (float v : x) amax = std::max(amax, std::abs(v));
          for (float &v : x) v = static_cast<float>(v / amax * top);
          std::vector<double> want, magnitude;
          reference(l, x, rows, want, magnitude);
          std::vector<float> y(rows * l.out);
          ASSERT_EQ(gptq_matmul(l.q.get(), x.data(), GPTQ_DTYPE_F32, rows, l.in, nullptr, y.data(), y.size()),
                    GPTQ_OK);
          for (size_t i = 0; i < y.size(); ++i) {
            ASSERT_TRUE(std::isfinite(y[i])) << "bits " << bits << " group " << group << " max|x| " << top;
            ASSERT_NEAR(y[i], want[i], 2e-6 * magnitude[i])
                << "bits " << bits << " group " << group << " rows " << rows << " max|x| " << top << " i " << i;
          }
        }
    }
}

TEST(MatmulKernels, Int8IsCloseOnRealisticLayer) {
  // The documented size of the int8 error: ~1% relative L2 error of y on
  // LLM-like activations with outlier channels (1.04% measured here).
  const Layer l = make_layer(Case{4, 128, true}, 256, 1024);
  ASSERT_TRUE(l.q);
  const std::vector<float> x = correlated_activations(4, l.in, 77);
  std::vector<double> want, magnitude;
  reference(l, x, 4, want, magnitude);
  gptq_matmul_options opts;
  gptq_matmul_options_default(&opts);
  opts.int8_activations = 1;
  std::vector<float> y(4 * l.out);
  ASSERT_EQ(gptq_matmul_ex(l.q.get(), x.data(), GPTQ_DTYPE_F32, 4, l.in, nullptr, y.data(), y.size(), &opts), GPTQ_OK);
  double num = 0, den = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    num += (y[i] - want[i]) * (y[i] - want[i]);
    den += want[i] * want[i];
  }
  const double rel = std::sqrt(num / den);
  std::printf("int8 activations: relative L2 error of y = %.4f%%\n", 100 * rel);
  EXPECT_LT(rel, 0.02);
  EXPECT_GT(rel, 0.0);  // it really took the int8 path (f32 would be ~1e-7)
}

// Whether int8 activations take the int8 kernels here: they need AVX2, and
// GPTQ_CPU_KERNELS=portable turns them off (the float32 path runs instead).
bool int8_kernels_run() {
  const char *env = std::getenv("GPTQ_CPU_KERNELS");
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  return (env == nullptr || std::string(env) != "portable") && __builtin_cpu_supports("avx2");
#else
  (void)env;
  return false;
#endif
}

using QTensorPtr = std::unique_ptr<gptq_qtensor, void (*)(gptq_qtensor *)>;

// qweight of 4-bit codes code(o, i) for out rows and in columns.
template <typename Code>
std::vector<int32_t> packed_4bit_codes(int64_t out, int64_t in, Code code) {
  std::vector<int32_t> qweight(static_cast<size_t>(in / 8 * out), 0);
  for (int64_t i = 0; i < in; ++i)
    for (int64_t o = 0; o < out; ++o)
      qweight[i / 8 * out + o] |= static_cast<int32_t>(code(o, i) << (4 * (i % 8)));
  return qweight;
}

// A 4-bit group-32 tensor imported from v2 buffers, or null (and a test
// failure) where the import fails.
QTensorPtr import_4bit_g32(int64_t out, int64_t in, std::vector<int32_t> &qweight,
                           std::vector<int32_t> &qzeros, std::vector<uint16_t> &scales) {
  gptq_checkpoint_tensors t{qweight.data(), static_cast<int64_t>(qweight.size()),
                            qzeros.data(),  static_cast<int64_t>(qzeros.size()),
                            scales.data(),  static_cast<int64_t>(scales.size()),
                            nullptr,        0};
  gptq_qtensor *raw = nullptr;
  EXPECT_EQ(gptq_qtensor_import(out, in, 4, 32, GPTQ_FORMAT_V2, &t, &raw), GPTQ_OK)
      << gptq_last_error();
  return QTensorPtr(raw, gptq_qtensor_destroy);
}

// x [rows, in] · qᵀ with int8 activations: [rows, out], or empty (and a
// test failure) where the call fails.
std::vector<float> int8_product(const gptq_qtensor *q, const std::vector<float> &x, int64_t rows,
                                int64_t in, int64_t out) {
  gptq_matmul_options opts;
  gptq_matmul_options_default(&opts);
  opts.int8_activations = 1;
  std::vector<float> y(static_cast<size_t>(rows * out));
  const gptq_status status = gptq_matmul_ex(q, x.data(), GPTQ_DTYPE_F32, rows, in, nullptr,
                                            y.data(), static_cast<int64_t>(y.size()), &opts);
  EXPECT_EQ(status, GPTQ_OK) << gptq_last_error();
  if (status != GPTQ_OK) y.clear();
  return y;
}

// int8 activations are rounded to nearest with ties to even, the same in
// every kernel build (the suite runs once per GPTQ_CPU_KERNELS level): a
// block whose max |x| is 127 has scale 1, so x/scale is x itself, ties such
// as ±2.5 and ±3.5 stay ties, and with codes − zero and scales exact every
// sum is an integer the kernels add without rounding. Rounding halves away
// from zero, or narrowing the codes wrongly, changes y.
TEST(MatmulKernels, Int8RoundsActivationTiesToEven) {
  if (!int8_kernels_run()) GTEST_SKIP() << "int8 activations take the float32 path here";
  constexpr int64_t kOut = 16, kIn = 32;
  auto code = [](int64_t o, int64_t i) { return static_cast<uint32_t>((o * 7 + i * 3) % 16); };
  std::vector<int32_t> qweight = packed_4bit_codes(kOut, kIn, code),
                       qzeros(2, static_cast<int32_t>(0x88888888u));
  std::vector<uint16_t> scales(kOut, 0x3C00);  // 1.0
  const QTensorPtr q = import_4bit_g32(kOut, kIn, qweight, qzeros, scales);
  ASSERT_TRUE(q);
  const float ties[] = {2.5f, -2.5f, 3.5f, -3.5f, 0.5f, -0.5f, 1.5f, -1.5f, 126.5f, -125.5f};
  for (const int64_t rows : {1, 8}) {
    std::vector<float> x(static_cast<size_t>(rows * kIn));
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t i = 0; i < kIn; ++i)
        x[r * kIn + i] = i == (r * 5) % kIn ? (r % 2 ? -127.0f : 127.0f)
                                            : ties[(i + r) % 10] + (i % 3 == 0 ? 0.25f : 0.0f);
    const std::vector<float> y = int8_product(q.get(), x, rows, kIn, kOut);
    ASSERT_EQ(static_cast<int64_t>(y.size()), rows * kOut);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t o = 0; o < kOut; ++o) {
        double want = 0;
        for (int64_t i = 0; i < kIn; ++i)
          want += std::nearbyint(static_cast<double>(x[r * kIn + i])) *
                  (static_cast<double>(code(o, i)) - 8);
        EXPECT_EQ(y[r * kOut + o], want) << "rows " << rows << ", row " << r << ", out " << o;
      }
  }
}

// Weights whose groups all share one zero (symmetric quantization) have it
// taken off inside the int8 kernels' integer sums; a single group of a
// single row with a zero of its own sends the tensor the general way. Both
// are exact here: scales 1, and integer activations in blocks whose max |x|
// is 127 (so x̃ = x).
TEST(MatmulKernels, Int8SharedAndOwnZerosAreBothExact) {
  if (!int8_kernels_run()) GTEST_SKIP() << "int8 activations take the float32 path here";
  constexpr int64_t kOut = 40, kIn = 96, kGroups = kIn / 32;  // the last tile partial
  auto code = [](int64_t o, int64_t i) { return static_cast<uint32_t>((o * 5 + i * 11) % 16); };
  std::vector<int32_t> qweight = packed_4bit_codes(kOut, kIn, code);
  std::vector<uint16_t> scales(kGroups * kOut, 0x3C00);  // 1.0
  for (const bool shared : {true, false}) {
    std::vector<uint32_t> zero(kGroups * kOut, 8);
    if (!shared) zero[2 * kOut + 37] = 3;  // group 2, row 37
    std::vector<int32_t> qzeros(kGroups * kOut / 8, 0);
    for (int64_t g = 0; g < kGroups; ++g)
      for (int64_t o = 0; o < kOut; ++o)
        qzeros[g * kOut / 8 + o / 8] |= static_cast<int32_t>(zero[g * kOut + o] << (4 * (o % 8)));
    const QTensorPtr q = import_4bit_g32(kOut, kIn, qweight, qzeros, scales);
    ASSERT_TRUE(q);
    for (const int64_t rows : {1, 5, 8}) {
      std::vector<float> x(static_cast<size_t>(rows * kIn));
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t i = 0; i < kIn; ++i)
          x[r * kIn + i] = i % 32 == (r * 7) % 32 ? 127.0f : static_cast<float>((r * 31 + i * 17) % 253 - 126);
      const std::vector<float> y = int8_product(q.get(), x, rows, kIn, kOut);
      ASSERT_EQ(static_cast<int64_t>(y.size()), rows * kOut);
    ASSERT_EQ(static_cast<int64_t>(y.size()), rows * kOut);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t o = 0; o < kOut; ++o) {
          double want = 0;
          for (int64_t i = 0; i < kIn; ++i)
            want += static_cast<double>(x[r * kIn + i]) *
                    (static_cast<double>(code(o, i)) - zero[i / 32 * kOut + o]);
          EXPECT_EQ(y[r * kOut + o], want)
              << (shared ? "shared" : "own") << " zeros, rows " << rows << ", row " << r << ", out " << o;
        }
    }
  }
}

// With int8 activations a row's result is the same bits whether the row is
// alone or one of a batch of any size (the kernels take 8 rows per pass over
// the weights, four at a time on AVX2, and round each row on its own): a
// batch of decoded sequences gives each what it would get alone. Without
// the int8 kernels, batches past 32 rows take dequantize + sgemm instead.
TEST(MatmulKernels, Int8RowsDoNotDependOnTheirBatch) {
  for (const Case c : {Case{4, 32, false}, Case{3, 48, true}, Case{2, 64, false}}) {
    const Layer l = make_layer(c, 40, 160);
    ASSERT_TRUE(l.q);
    gptq_matmul_options opts;
    gptq_matmul_options_default(&opts);
    opts.int8_activations = 1;
    for (int64_t rows : {2, 5, 8, 9, 13, 32, 33, 70}) {
      if (rows > 32 && !int8_kernels_run()) continue;
      const std::vector<float> x = correlated_activations(rows, l.in, 60 + rows);
      std::vector<float> all(rows * l.out);
      ASSERT_EQ(gptq_matmul_ex(l.q.get(), x.data(), GPTQ_DTYPE_F32, rows, l.in, nullptr, all.data(), all.size(), &opts),
                GPTQ_OK)
          << gptq_last_error();
      for (int64_t m = 0; m < rows; ++m) {
        std::vector<float> one(l.out);
        ASSERT_EQ(gptq_matmul_ex(l.q.get(), &x[m * l.in], GPTQ_DTYPE_F32, 1, l.in, nullptr, one.data(), one.size(),
                                 &opts),
                  GPTQ_OK);
        for (int64_t o = 0; o < l.out; ++o)
          ASSERT_EQ(all[m * l.out + o], one[o]) << c.bits << "-bit, rows " << rows << ", row " << m << ", o " << o;
      }
    }
  }
}

TEST(MatmulKernels, ResultDoesNotDependOnThreadCount) {
  const Layer l = make_layer(Case{4, 64, true}, 300, 256);
  ASSERT_TRUE(l.q);
  const std::vector<float> x = correlated_activations(3, l.in, 88);
  std::vector<float> a(3 * l.out), b(3 * l.out);
  gptq_matmul_options one;
  gptq_matmul_options_default(&one);
  one.num_threads = 1;
  ASSERT_EQ(gptq_matmul_ex(l.q.get(), x.data(), GPTQ_DTYPE_F32, 3, l.in, nullptr, a.data(), a.size(), &one), GPTQ_OK);
  ASSERT_EQ(gptq_matmul_ex(l.q.get(), x.data(), GPTQ_DTYPE_F32, 3, l.in, nullptr, b.data(), b.size(), nullptr), GPTQ_OK);
  EXPECT_EQ(a, b);
}

// A product computed as ranges of output features, one call each, the way a
// caller splits it over threads of its own: each call writes its features
// and nothing else, and together they give exactly the whole call's y,
// ranges that cut the kernels' 16-feature tiles included. Past 32 rows with
// float32 activations (dequantize + sgemm) they agree up to summation order.
TEST(MatmulKernels, OutputRangesGiveTheWholeProduct) {
  struct Range {
    int64_t begin, end;
  };
  // 72 features: four whole tiles and half of one.
  const std::vector<std::vector<Range>> splits = {
      {{0, 36}, {36, 72}},
      {{0, 5}, {5, 16}, {16, 37}, {37, 64}, {64, 71}, {71, 72}},
      {{0, 3}, {3, 13}, {13, 70}, {70, 0}},  // out_end 0: to the last feature
  };
  const float untouched = -7.5f;
  for (const Case c : {Case{4, 32, false}, Case{3, 48, true}, Case{2, 64, false}, Case{8, 128, false}}) {
    const Layer l = make_layer(c, 72, 200);
    ASSERT_TRUE(l.q);
    std::vector<float> bias(l.out);
    for (int64_t o = 0; o < l.out; ++o) bias[o] = 0.25f * static_cast<float>(o % 7) - 0.5f;
    for (const int int8 : {0, 1}) {
      for (const int64_t rows : {1, 3, 8, 9, 33}) {
        const std::vector<float> x = correlated_activations(rows, l.in, 500 + rows);
        gptq_matmul_options opts;
        gptq_matmul_options_default(&opts);
        opts.int8_activations = int8;
        std::vector<float> whole(rows * l.out);
        ASSERT_EQ(gptq_matmul_ex(l.q.get(), x.data(), GPTQ_DTYPE_F32, rows, l.in, bias.data(), whole.data(),
                                 whole.size(), &opts),
                  GPTQ_OK)
            << gptq_last_error();
        const bool exact = rows <= 32 || (int8 && c.bits <= 4 && int8_kernels_run());
        for (const std::vector<Range> &split : splits) {
          std::vector<float> y(rows * l.out, untouched);
          for (const Range &r : split) {
            opts.num_threads = 1;
            opts.out_begin = r.begin;
            opts.out_end = r.end;
            ASSERT_EQ(gptq_matmul_ex(l.q.get(), x.data(), GPTQ_DTYPE_F32, rows, l.in, bias.data(), y.data(),
                                     y.size(), &opts),
                      GPTQ_OK)
                << gptq_last_error();
            const int64_t end = r.end == 0 ? l.out : r.end;
            for (int64_t m = 0; m < rows; ++m)
              for (int64_t o = end; o < l.out; ++o)
                ASSERT_EQ(y[m * l.out + o], untouched) << "range [" << r.begin << ", " << end << ") wrote " << o;
          }
          for (int64_t i = 0; i < rows * l.out; ++i) {
            const std::string where = std::to_string(c.bits) + "-bit, int8 " + std::to_string(int8) + ", rows " +
                                      std::to_string(rows) + ", element " + std::to_string(i);
            if (exact)
              ASSERT_EQ(y[i], whole[i]) << where;
            else
              ASSERT_NEAR(y[i], whole[i], 1e-4f * (1.0f + std::abs(whole[i]))) << where;
          }
        }
      }
    }
  }
}

// With 16-bit activations a range converts only its own features into y.
TEST(MatmulKernels, OutputRangeOfHalfPrecisionLeavesTheRest) {
  const Layer l = make_layer(Case{4, 32, false}, 72, 200);
  ASSERT_TRUE(l.q);
  const int64_t rows = 3;
  const std::vector<float> xf = correlated_activations(rows, l.in, 77);
  for (const gptq_dtype dtype : {GPTQ_DTYPE_F16, GPTQ_DTYPE_BF16}) {
    std::vector<uint16_t> x(xf.size());
    for (size_t i = 0; i < x.size(); ++i)
      x[i] = dtype == GPTQ_DTYPE_F16 ? gptq::float_to_half(xf[i]) : gptq::float_to_bf16(xf[i]);
    std::vector<uint16_t> whole(rows * l.out), y(rows * l.out, 0xABCD);
    ASSERT_EQ(gptq_matmul_ex(l.q.get(), x.data(), dtype, rows, l.in, nullptr, whole.data(), whole.size(), nullptr),
              GPTQ_OK);
    gptq_matmul_options opts;
    gptq_matmul_options_default(&opts);
    opts.out_begin = 10;
    opts.out_end = 41;
    ASSERT_EQ(gptq_matmul_ex(l.q.get(), x.data(), dtype, rows, l.in, nullptr, y.data(), y.size(), &opts), GPTQ_OK)
        << gptq_last_error();
    for (int64_t m = 0; m < rows; ++m)
      for (int64_t o = 0; o < l.out; ++o) {
        const size_t i = static_cast<size_t>(m * l.out + o);
        if (o >= 10 && o < 41)
          EXPECT_EQ(y[i], whole[i]) << "row " << m << ", feature " << o;
        else
          EXPECT_EQ(y[i], 0xABCD) << "row " << m << ", feature " << o;
      }
  }
}

TEST(MatmulKernels, BadOptionsAreRefused) {
  const Layer l = make_layer(Case{4, 64, false}, 32, 64);
  ASSERT_TRUE(l.q);
  const std::vector<float> x(l.in, 1.0f);
  std::vector<float> y(l.out, -1.0f);
  gptq_matmul_options opts;
  gptq_matmul_options_default(&opts);
  opts.int8_activations = 2;
  EXPECT_EQ(gptq_matmul_ex(l.q.get(), x.data(), GPTQ_DTYPE_F32, 1, l.in, nullptr, y.data(), y.size(), &opts),
            GPTQ_ERR_INVALID_CONFIG);
  EXPECT_NE(std::string(gptq_last_error()).find("int8_activations"), std::string::npos);
  opts.int8_activations = 0;
  opts.num_threads = -1;
  EXPECT_EQ(gptq_matmul_ex(l.q.get(), x.data(), GPTQ_DTYPE_F32, 1, l.in, nullptr, y.data(), y.size(), &opts),
            GPTQ_ERR_INVALID_CONFIG);
  opts.num_threads = 0;
  // Output ranges outside [0, out_features), or empty.
  for (const auto &[begin, end] : std::vector<std::pair<int64_t, int64_t>>{
           {-1, 8}, {8, 8}, {9, 8}, {0, l.out + 1}, {l.out, 0}, {0, -3}}) {
    opts.out_begin = begin;
    opts.out_end = end;
    EXPECT_EQ(gptq_matmul_ex(l.q.get(), x.data(), GPTQ_DTYPE_F32, 1, l.in, nullptr, y.data(), y.size(), &opts),
              GPTQ_ERR_INVALID_CONFIG)
        << begin << ", " << end;
    EXPECT_NE(std::string(gptq_last_error()).find("out_begin"), std::string::npos) << gptq_last_error();
  }
  opts.out_begin = opts.out_end = 0;
  opts.struct_size = 4;
  EXPECT_EQ(gptq_matmul_ex(l.q.get(), x.data(), GPTQ_DTYPE_F32, 1, l.in, nullptr, y.data(), y.size(), &opts),
            GPTQ_ERR_INVALID_CONFIG);
  for (float v : y) EXPECT_EQ(v, -1.0f);  // nothing written on failure
}

TEST(MatmulKernels, KernelChoiceFromEnvironment) {
  // GPTQ_CPU_KERNELS picks the kernels; the suite runs once per value, and
  // once with an unknown value, which every matmul must refuse by name.
  const Layer l = make_layer(Case{4, 32, false}, 16, 64);
  ASSERT_TRUE(l.q);
  const std::vector<float> x(l.in, 1.0f);
  std::vector<float> y(l.out, -1.0f);
  const char *env = std::getenv("GPTQ_CPU_KERNELS");
  const std::string choice = env == nullptr ? "" : env;
  const bool known = choice.empty() || choice == "portable" || choice == "avx2" || choice == "avx512" ||
                     choice == "avx512vnni";
  const gptq_status st = gptq_matmul(l.q.get(), x.data(), GPTQ_DTYPE_F32, 1, l.in, nullptr, y.data(), y.size());
  if (known) {
    EXPECT_EQ(st, GPTQ_OK) << gptq_last_error();
    return;
  }
  EXPECT_EQ(st, GPTQ_ERR_INVALID_CONFIG);
  EXPECT_NE(std::string(gptq_last_error()).find("GPTQ_CPU_KERNELS=" + choice), std::string::npos) << gptq_last_error();
  for (float v : y) EXPECT_EQ(v, -1.0f);
}

}  // namespace
