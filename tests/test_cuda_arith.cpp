// The CUDA kernels' arithmetic, checked on the CPU: cuda/quant_arith.h and
// cuda/tiled4_plan.h are plain C++ outside nvcc, so the same functions the
// kernels run are compared here with the CPU backend on machines without a
// GPU.
//  - group parameters and codes: bit for bit against cpu::Quantizer;
//  - one GPTQ block, column loop and error feed-forward in the kernel's
//    order (steps of 8 columns), against the CPU backend's codes and loss;
//  - the tensor-core fragment layout of the 4-bit matmul: every element of
//    a 16×16 tile in exactly one nibble of one lane, where mma.m16n8k16
//    expects it, and the magic-number conversions exact;
//  - the Tiled4 plan: column order, padding, tile groups, and when it must
//    refuse.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <set>
#include <vector>

#include "group_params.h"
#include "half.h"
#include "quant_arith.h"
#include "test_util.h"
#include "tiled4_plan.h"

using namespace gptq_test;
using gptq_cuda::QuantParams;

namespace {

template <typename T>
QuantParams<T> params_of(const gptq::cpu::Quantizer<T> &q) {
  QuantParams<T> p;
  p.maxq = q.maxq;
  p.sym = q.sym;
  p.mse = q.mse;
  p.norm = q.norm;
  p.grid = q.grid;
  p.shrink_steps = q.shrink_steps;
  return p;
}

// Rows of the kinds find_params treats specially, then ordinary ones.
template <typename T>
std::vector<std::vector<T>> sample_rows(int64_t count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal(0.0, 0.05);
  std::vector<std::vector<T>> rows;
  rows.push_back(std::vector<T>(count, T(0)));                       // all zero
  rows.push_back(std::vector<T>(count, T(1e-40)));                   // denormal range
  std::vector<T> positive(count);
  for (auto &v : positive) v = static_cast<T>(std::abs(normal(rng)));  // no negative weight
  rows.push_back(positive);
  std::vector<T> negative(count);
  for (auto &v : negative) v = static_cast<T>(-std::abs(normal(rng)));
  rows.push_back(negative);
  for (int i = 0; i < 40; ++i) {
    std::vector<T> r(count);
    for (auto &v : r) v = static_cast<T>(normal(rng) * (i % 5 == 0 ? 30.0 : 1.0));
    rows.push_back(r);
  }
  return rows;
}

template <typename T>
void expect_params_bit_identical() {
  for (int bits : {2, 3, 4, 8})
    for (int sym : {0, 1})
      for (int mse : {0, 1}) {
        gptq_config cfg = default_config();
        cfg.bits = bits;
        cfg.sym = sym;
        cfg.mse = mse;
        const auto quant = gptq::cpu::Quantizer<T>::from_config(cfg);
        const QuantParams<T> p = params_of(quant);
        for (const auto &row : sample_rows<T>(67, static_cast<uint32_t>(bits * 10 + sym * 2 + mse))) {
          T s_cpu, z_cpu, s_gpu, z_gpu;
          quant.find_params(row.data(), 1, static_cast<int64_t>(row.size()), 0,
                            static_cast<int64_t>(row.size()), &s_cpu, &z_cpu);
          gptq_cuda::find_group_params(row.data(), 1, static_cast<int64_t>(row.size()), p, &s_gpu,
                                       &z_gpu);
          ASSERT_EQ(std::memcmp(&s_cpu, &s_gpu, sizeof(T)), 0) << s_cpu << " vs " << s_gpu;
          ASSERT_EQ(std::memcmp(&z_cpu, &z_gpu, sizeof(T)), 0) << z_cpu << " vs " << z_gpu;
          for (T w : row) ASSERT_EQ(quant.code(w, s_cpu, z_cpu), gptq_cuda::quantize_code(w, s_gpu, z_gpu, p.maxq));
        }
      }
}

TEST(CudaArithmetic, GroupParametersAndCodesAreTheCpusBitForBit) {
  expect_params_bit_identical<float>();
  expect_params_bit_identical<double>();
}

// A reversed stride reads the row backwards, as the block kernel reads the
// state: MSE sums in that order.
TEST(CudaArithmetic, GroupParametersReadAnyStride) {
  gptq_config cfg = default_config();
  cfg.mse = 1;
  const auto quant = gptq::cpu::Quantizer<float>::from_config(cfg);
  const auto p = params_of(quant);
  for (const auto &row : sample_rows<float>(50, 7)) {
    std::vector<float> reversed(row.rbegin(), row.rend());
    float s1, z1, s2, z2;
    quant.find_params(reversed.data(), 1, 50, 0, 50, &s1, &z1);
    gptq_cuda::find_group_params(row.data() + 49, -1, 50, p, &s2, &z2);
    EXPECT_EQ(s1, s2);
    EXPECT_EQ(z1, z2);
  }
}

// Upper U with (H + damp)⁻¹ = UᵀU, in double, the textbook way.
std::vector<double> inverse_upper_factor(std::vector<double> a, int64_t n) {
  auto cholesky = [n](std::vector<double> &m) {
    for (int64_t j = 0; j < n; ++j) {
      double d = m[j * n + j];
      for (int64_t p = 0; p < j; ++p) d -= m[j * n + p] * m[j * n + p];
      m[j * n + j] = std::sqrt(d);
      for (int64_t i = j + 1; i < n; ++i) {
        double v = m[i * n + j];
        for (int64_t p = 0; p < j; ++p) v -= m[i * n + p] * m[j * n + p];
        m[i * n + j] = v / m[j * n + j];
      }
    }
  };
  cholesky(a);
  std::vector<double> linv(static_cast<size_t>(n * n), 0.0), inv(static_cast<size_t>(n * n));
  for (int64_t c = 0; c < n; ++c)
    for (int64_t i = c; i < n; ++i) {
      double v = i == c ? 1.0 : 0.0;
      for (int64_t p = c; p < i; ++p) v -= a[i * n + p] * linv[p * n + c];
      linv[i * n + c] = v / a[i * n + i];
    }
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double v = 0;
      for (int64_t p = std::max(i, j); p < n; ++p) v += linv[p * n + i] * linv[p * n + j];
      inv[i * n + j] = v;
    }
  cholesky(inv);
  std::vector<double> u(static_cast<size_t>(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = i; j < n; ++j) u[i * n + j] = inv[j * n + i];
  return u;
}

// One block, every row, in the block kernel's order: group parameters from
// the block-start weights (read backwards, as the state holds them), then
// steps of 8 columns: each column quantized and its error fed into the rest
// of the step, then the step's 8 errors into every later column.
TEST(CudaArithmetic, BlockColumnLoopGivesTheCpuBackendsCodes) {
  const int64_t n = 40, k = 100, tokens = 400;
  for (int sym : {0, 1})
    for (int mse : {0, 1}) {
      gptq_config cfg = default_config();
      cfg.backend = GPTQ_BACKEND_CPU;
      cfg.precision = GPTQ_PRECISION_F64;
      cfg.group_size = 32;
      cfg.sym = sym;
      cfg.mse = mse;
      const std::vector<float> x = correlated_activations(tokens, k, 5);
      const std::vector<float> w = layer_weights(n, k, 6);
      Ctx ctx = make_ctx(n, k, cfg);
      ASSERT_TRUE(ctx);
      ASSERT_EQ(gptq_add_batch(ctx.get(), x.data(), GPTQ_DTYPE_F32, tokens, k, 1), GPTQ_OK);
      std::vector<double> h(static_cast<size_t>(k * k));
      int64_t samples = 0;
      ASSERT_EQ(gptq_ctx_export_hessian(ctx.get(), h.data(), k * k, &samples), GPTQ_OK);
      gptq_quant_stats stats{};
      stats.struct_size = sizeof stats;
      gptq_qtensor *raw = nullptr;
      ASSERT_EQ(gptq_quantize(ctx.get(), w.data(), GPTQ_DTYPE_F32, n, k, &raw, &stats), GPTQ_OK);
      QTensor q(raw);
      const std::vector<uint8_t> cpu_codes = codes_of(q.get(), n, k);

      double mean = 0;
      for (int64_t j = 0; j < k; ++j) mean += h[j * k + j];
      mean /= static_cast<double>(k);
      for (int64_t j = 0; j < k; ++j) h[j * k + j] += static_cast<double>(cfg.damp_percent) * mean;
      const std::vector<double> u = inverse_upper_factor(h, k);
      const auto quant = gptq::cpu::Quantizer<double>::from_config(cfg);
      const QuantParams<double> p = params_of(quant);

      double loss = 0;
      int64_t differ = 0;
      for (int64_t r = 0; r < n; ++r) {
        std::vector<double> row(w.begin() + r * k, w.begin() + (r + 1) * k);
        const std::vector<double> start(row);
        std::vector<double> scale(4), zero(4);
        for (int64_t g = 0; g * 32 < k; ++g) {
          const int64_t end = std::min(k, (g + 1) * 32);
          gptq_cuda::find_group_params(&start[end - 1], -1, end - g * 32, p, &scale[g], &zero[g]);
        }
        for (int64_t i = 0; i < k; i += 8) {
          const int64_t step_end = std::min(k, i + 8);
          double ev[8];
          for (int64_t j = i; j < step_end; ++j) {
            double deq, e, term;
            const double c = gptq_cuda::quantize_step(row[j], scale[j / 32], zero[j / 32], p.maxq,
                                                      u[j * k + j], &deq, &e, &term);
            differ += static_cast<uint8_t>(c) != cpu_codes[r * k + j];
            loss += term;
            ev[j - i] = e;
            for (int64_t t = j + 1; t < step_end; ++t)
              row[t] = gptq_cuda::feed_forward(row[t], e, u[j * k + t]);
          }
          if (step_end - i == 8)
            for (int64_t t = step_end; t < k; ++t)
              for (int m = 0; m < 8; ++m) row[t] = gptq_cuda::feed_forward(row[t], ev[m], u[(i + m) * k + t]);
        }
      }
      EXPECT_EQ(differ, 0) << "sym " << sym << " mse " << mse;
      EXPECT_NEAR(loss, stats.loss, 1e-9 * stats.loss);
    }
}

TEST(CudaArithmetic, FragmentLayoutCoversEachTileElementOnceWhereMmaWantsIt) {
  std::set<std::pair<int, int>> seen;
  for (int lane = 0; lane < 32; ++lane)
    for (int m = 0; m < 8; ++m) {
      const gptq_cuda::TileElement e = gptq_cuda::fragment_element(lane, m);
      EXPECT_TRUE(seen.insert({e.row, e.col}).second) << lane << "," << m;
      // PTX's A fragment of m16n8k16 (.f16/.bf16): register r of lane L
      // holds rows L/4 (+8 for r = 1, 3), columns 2(L%4) + half (+8 for
      // r = 2, 3).
      const int reg = m % 4, half = m / 4;
      EXPECT_EQ(e.row, lane / 4 + (reg == 1 || reg == 3 ? 8 : 0));
      EXPECT_EQ(e.col, 2 * (lane % 4) + half + (reg >= 2 ? 8 : 0));
    }
  EXPECT_EQ(seen.size(), 256u);

  std::mt19937 rng(3);
  int tile[16][16];
  for (auto &row : tile)
    for (int &v : row) v = static_cast<int>(rng() % 16);
  for (int lane = 0; lane < 32; ++lane) {
    const uint32_t word = gptq_cuda::pack_fragment_word(lane, [&](int r, int c) { return tile[r][c]; });
    for (int m = 0; m < 8; ++m) {
      const gptq_cuda::TileElement e = gptq_cuda::fragment_element(lane, m);
      EXPECT_EQ(gptq_cuda::fragment_code(word, m), tile[e.row][e.col]);
    }
    // Register r's two halves, after the magic-number conversion, are
    // exactly 1024 + code (binary16) and 128 + code (bfloat16), low half the
    // first column.
    for (int reg = 0; reg < 4; ++reg) {
      const gptq_cuda::TileElement lo = gptq_cuda::fragment_element(lane, reg);
      const gptq_cuda::TileElement hi = gptq_cuda::fragment_element(lane, reg + 4);
      EXPECT_EQ(lo.row, hi.row);
      EXPECT_EQ(lo.col + 1, hi.col);
      const uint32_t f16 = gptq_cuda::fp16_magic_pair(word, reg);
      EXPECT_EQ(gptq::half_to_float(static_cast<uint16_t>(f16 & 0xffff)), 1024.0f + tile[lo.row][lo.col]);
      EXPECT_EQ(gptq::half_to_float(static_cast<uint16_t>(f16 >> 16)), 1024.0f + tile[hi.row][hi.col]);
      const uint32_t bf = gptq_cuda::bf16_magic_pair(word, reg);
      EXPECT_EQ(gptq::bf16_to_float(static_cast<uint16_t>(bf & 0xffff)), 128.0f + tile[lo.row][lo.col]);
      EXPECT_EQ(gptq::bf16_to_float(static_cast<uint16_t>(bf >> 16)), 128.0f + tile[hi.row][hi.col]);
    }
  }
}

// Inside a pair of tiles, lane t's one load of x, columns [8t, 8t + 8),
// holds exactly the B operand elements mma.m16n8k16 wants from it for both
// tiles, in register order: tile h's first register columns 2t and 2t+1,
// its second 2t+8 and 2t+9.
TEST(CudaArithmetic, PairColumnsPutEachLanesOperandInOneLoad) {
  std::set<int> all;
  for (int h = 0; h < 2; ++h)
    for (int c = 0; c < 16; ++c) EXPECT_TRUE(all.insert(gptq_cuda::pair_column(h, c)).second);
  EXPECT_EQ(all.size(), 32u);
  EXPECT_EQ(*all.rbegin(), 31);
  for (int t = 0; t < 4; ++t)
    for (int h = 0; h < 2; ++h) {
      EXPECT_EQ(gptq_cuda::pair_column(h, 2 * t), 8 * t + 4 * h);
      EXPECT_EQ(gptq_cuda::pair_column(h, 2 * t + 1), 8 * t + 4 * h + 1);
      EXPECT_EQ(gptq_cuda::pair_column(h, 2 * t + 8), 8 * t + 4 * h + 2);
      EXPECT_EQ(gptq_cuda::pair_column(h, 2 * t + 9), 8 * t + 4 * h + 3);
    }
}

// The dequantizing arithmetic the kernel does in binary16 — (1024 + code) −
// (1024 + zero), then times the scale — gives what dequantize-then-cast
// gives, for every code, zero and a spread of scales.
TEST(CudaArithmetic, MagicNumberDequantizationIsDequantizeThenCast) {
  std::mt19937 rng(9);
  std::uniform_real_distribution<float> mag(-12.0f, 2.0f);
  for (int trial = 0; trial < 2000; ++trial) {
    const uint16_t scale = gptq::float_to_half(std::exp2(mag(rng)));
    for (int zero = 0; zero <= 16; ++zero)
      for (int code = 0; code < 16; ++code) {
        const float diff = (1024.0f + code) - (1024.0f + zero);  // exact in binary16
        ASSERT_EQ(diff, static_cast<float>(code - zero));
        const uint16_t kernel = gptq::float_to_half(diff * gptq::half_to_float(scale));
        const uint16_t reference =
            gptq::float_to_half(gptq::half_to_float(scale) * (static_cast<float>(code) - zero));
        ASSERT_EQ(kernel, reference);
      }
  }
}

TEST(CudaArithmetic, Tiled4PlanSortsColumnsByGroupAndPads) {
  // Plain groups of 128 over 300 columns: identity order, padded to 320.
  std::vector<int32_t> g(300);
  for (int j = 0; j < 300; ++j) g[j] = j / 128;
  gptq_cuda::Tiled4Plan plan = gptq_cuda::plan_tiled4(4, 300, g.data());
  // 300 is not a multiple of 32: the pair [288, 320) holds group 2 and
  // padding, which is fine; [128·2 = 256, ...) are group 2.
  ASSERT_TRUE(plan.applies);
  EXPECT_TRUE(plan.identity);
  EXPECT_EQ(plan.padded_k, 320);
  EXPECT_EQ(plan.pair_group[0], 0);
  EXPECT_EQ(plan.pair_group[4], 1);
  EXPECT_EQ(plan.pair_group[9], 2);
  EXPECT_EQ(plan.column_of[299], 299);
  EXPECT_EQ(plan.column_of[300], -1);

  // Act-order g_idx: the columns of each group gathered, in column order.
  std::mt19937 rng(1);
  std::vector<int32_t> order(256);
  for (int j = 0; j < 256; ++j) order[j] = j;
  std::shuffle(order.begin(), order.end(), rng);
  std::vector<int32_t> act(256);
  for (int p = 0; p < 256; ++p) act[order[p]] = p / 64;
  plan = gptq_cuda::plan_tiled4(4, 256, act.data());
  ASSERT_TRUE(plan.applies);
  EXPECT_FALSE(plan.identity);
  for (int j = 0; j < 256; ++j) {
    EXPECT_EQ(act[plan.column_of[j]], j / 64);
    if (j % 64 != 0) {
      EXPECT_LT(plan.column_of[j - 1], plan.column_of[j]);
    }
  }

  // Groups that split a pair of tiles, and other bit widths, need the
  // generic layout.
  for (int j = 0; j < 300; ++j) g[j] = j / 40;
  EXPECT_FALSE(gptq_cuda::plan_tiled4(4, 300, g.data()).applies);
  for (int j = 0; j < 300; ++j) g[j] = j / 16;
  EXPECT_FALSE(gptq_cuda::plan_tiled4(4, 300, g.data()).applies);
  for (int j = 0; j < 300; ++j) g[j] = j / 32;
  EXPECT_TRUE(gptq_cuda::plan_tiled4(4, 300, g.data()).applies);
  for (int j = 0; j < 300; ++j) g[j] = j / 128;
  EXPECT_FALSE(gptq_cuda::plan_tiled4(3, 300, g.data()).applies);
  EXPECT_FALSE(gptq_cuda::plan_tiled4(8, 300, g.data()).applies);
}

}  // namespace
