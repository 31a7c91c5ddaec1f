// The library against an oracle written here: a plain double-precision,
// column-at-a-time GPTQ with no lazy blocks, no reversal trick and no BLAS —
// the algorithm as the paper states it, with the reference's semantics for
// group parameters (taken from the weights as they stood at the start of the
// block holding the group's first column), dead columns, act-order, static
// groups, group -1 and the MSE clip search.
//
// Rounding ties are real here, not just theoretical: with symmetric groups
// scale = 2·absmax/maxq, so the largest weight of a group sits exactly on
// x/scale = maxq/2 (a .5) and which side it falls on is decided by the last
// bit of a division. Where the oracle meets a tie (|frac − 0.5| below a
// tolerance: 1e-9 for F64, 1e-3 for F32, whose weights carry float noise
// from thousands of updates) it takes the library's choice and goes on, so a
// tie cannot cascade. Everywhere else the codes must be equal: exactly, and
// the loss to 1e-9 (F64) or 1e-3 (F32). Ties must stay a small minority.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "test_util.h"

using namespace gptq_test;

namespace {

using Matrix = std::vector<double>;  // row-major

struct OracleResult {
  std::vector<uint8_t> codes;  // [N, K], original order
  std::vector<int32_t> g_idx;
  Matrix scale, zero;          // [G, N]
  double loss = 0.0;
};

// Reference quantizer semantics (see gptq.h, "Group parameters").
void group_params(const Matrix &w, int64_t n, int64_t k, int64_t c0, int64_t c1,
                  const gptq_config &cfg, double *scale, double *zero) {
  const double maxq = (1 << cfg.bits) - 1;
  for (int64_t r = 0; r < n; ++r) {
    double lo = 0.0, hi = 0.0;
    for (int64_t c = c0; c < c1; ++c) {
      lo = std::min(lo, w[r * k + c]);
      hi = std::max(hi, w[r * k + c]);
    }
    if (cfg.sym) {
      hi = std::max(-lo, hi);
      if (lo < 0) lo = -hi;
    }
    if (lo == 0 && hi == 0) {
      lo = -1;
      hi = 1;
    }
    double s = (hi - lo) / maxq;
    double z = cfg.sym ? (maxq + 1) / 2 : std::nearbyint(-lo / s);
    if (cfg.mse) {
      double best = INFINITY;
      const int steps = static_cast<int>(std::floor(cfg.mse_max_shrink * cfg.mse_grid + 1e-4));
      for (int i = 0; i < steps; ++i) {
        const double p = 1.0 - static_cast<double>(i) / cfg.mse_grid;
        const double s1 = (p * hi - p * lo) / maxq;
        const double z1 = cfg.sym ? (maxq + 1) / 2 : std::nearbyint(-(p * lo) / s1);
        double err = 0.0;
        for (int64_t c = c0; c < c1; ++c) {
          const double x = w[r * k + c];
          const double q = std::min(std::max(std::nearbyint(x / s1) + z1, 0.0), maxq);
          err += std::pow(std::abs(s1 * (q - z1) - x), cfg.mse_norm);
        }
        if (err < best) {
          best = err;
          s = s1;
          z = z1;
        }
      }
    }
    scale[r] = s;
    zero[r] = z;
  }
}

// Lower Cholesky factor of a symmetric positive definite matrix; false if not PD.
bool cholesky_lower(const Matrix &a, int64_t n, Matrix &l) {
  l.assign(a.size(), 0.0);
  for (int64_t j = 0; j < n; ++j) {
    double d = a[j * n + j];
    for (int64_t p = 0; p < j; ++p) d -= l[j * n + p] * l[j * n + p];
    if (!(d > 0)) return false;
    l[j * n + j] = std::sqrt(d);
    for (int64_t i = j + 1; i < n; ++i) {
      double v = a[i * n + j];
      for (int64_t p = 0; p < j; ++p) v -= l[i * n + p] * l[j * n + p];
      l[i * n + j] = v / l[j * n + j];
    }
  }
  return true;
}

// H⁻¹ from H = L Lᵀ by solving L Lᵀ X = I column by column.
Matrix inverse_spd(const Matrix &l, int64_t n) {
  Matrix inv(n * n);
  std::vector<double> y(n);
  for (int64_t c = 0; c < n; ++c) {
    for (int64_t i = 0; i < n; ++i) {
      double v = (i == c) ? 1.0 : 0.0;
      for (int64_t p = 0; p < i; ++p) v -= l[i * n + p] * y[p];
      y[i] = v / l[i * n + i];
    }
    for (int64_t i = n - 1; i >= 0; --i) {
      double v = y[i];
      for (int64_t p = i + 1; p < n; ++p) v -= l[p * n + i] * inv[p * n + c];
      inv[i * n + c] = v / l[i * n + i];
    }
  }
  return inv;
}

struct TieRule {
  const std::vector<uint8_t> *library_codes;  // original column order
  double tolerance;
  int64_t ties = 0;  // positions where the library's choice was followed
};

OracleResult oracle_gptq(Matrix h, Matrix w, int64_t n, int64_t k, const gptq_config &cfg,
                         TieRule &tie) {
  const bool grouped = cfg.group_size > 0;
  const int64_t gs = grouped ? cfg.group_size : k;
  const bool static_groups = grouped && cfg.static_groups;
  const int64_t groups = grouped ? (k + gs - 1) / gs : 1;
  OracleResult res;
  res.scale.assign(groups * n, 0.0);
  res.zero.assign(groups * n, 0.0);

  if (!grouped) group_params(w, n, k, 0, k, cfg, &res.scale[0], &res.zero[0]);
  for (int64_t j = 0; j < k; ++j)
    if (h[j * k + j] == 0) {
      h[j * k + j] = 1;
      for (int64_t r = 0; r < n; ++r) w[r * k + j] = 0;
    }
  if (static_groups)
    for (int64_t g = 0; g < groups; ++g)
      group_params(w, n, k, g * gs, std::min(k, (g + 1) * gs), cfg, &res.scale[g * n], &res.zero[g * n]);

  std::vector<int64_t> perm(k);
  std::iota(perm.begin(), perm.end(), 0);
  auto by_diagonal = [&](int64_t a, int64_t b) { return h[a * k + a] > h[b * k + b]; };
  if (cfg.act_order) std::stable_sort(perm.begin(), perm.end(), by_diagonal);
  if (cfg.act_group_aware) {
    // Whole groups by their largest diagonal, a short last group last; the
    // columns of each group by diagonal.
    std::vector<std::vector<int64_t>> members;
    for (int64_t g = 0; g * gs < k; ++g) {
      std::vector<int64_t> cols;
      for (int64_t j = g * gs; j < std::min(k, (g + 1) * gs); ++j) cols.push_back(j);
      std::stable_sort(cols.begin(), cols.end(), by_diagonal);
      members.push_back(cols);
    }
    const bool ragged = k % gs != 0;
    std::stable_sort(members.begin(), members.end() - (ragged ? 1 : 0),
                     [&](const std::vector<int64_t> &a, const std::vector<int64_t> &b) {
                       return by_diagonal(a.front(), b.front());
                     });
    perm.clear();
    for (const auto &cols : members) perm.insert(perm.end(), cols.begin(), cols.end());
  }
  Matrix hp(k * k), wp(n * k);
  for (int64_t a = 0; a < k; ++a)
    for (int64_t b = 0; b < k; ++b) hp[a * k + b] = h[perm[a] * k + perm[b]];
  for (int64_t r = 0; r < n; ++r)
    for (int64_t p = 0; p < k; ++p) wp[r * k + p] = w[r * k + perm[p]];

  double mean = 0;
  for (int64_t j = 0; j < k; ++j) mean += hp[j * k + j];
  mean /= k;
  for (int64_t j = 0; j < k; ++j) hp[j * k + j] += cfg.damp_percent * mean;
  Matrix l;
  EXPECT_TRUE(cholesky_lower(hp, k, l)) << "oracle: damped H not positive definite";
  const Matrix hinv = inverse_spd(l, k);
  // U upper with Uᵀ U = H⁻¹ is the transpose of H⁻¹'s lower Cholesky factor.
  Matrix lt;
  EXPECT_TRUE(cholesky_lower(hinv, k, lt));
  auto u = [&](int64_t i, int64_t j) { return lt[j * k + i]; };

  const double maxq = (1 << cfg.bits) - 1;
  std::vector<uint8_t> codes_p(n * k);
  std::vector<int32_t> group_of(k);
  Matrix snapshot;
  for (int64_t p = 0; p < k; ++p) {
    if (p % cfg.block_size == 0) snapshot = wp;  // the weights as of this block's start
    const int64_t g = static_groups || cfg.act_group_aware ? perm[p] / gs : p / gs;
    group_of[p] = static_cast<int32_t>(g);
    if (grouped && !static_groups && p % gs == 0)
      group_params(snapshot, n, k, p, std::min(k, p + gs), cfg, &res.scale[g * n], &res.zero[g * n]);
    const double d = u(p, p);
    for (int64_t r = 0; r < n; ++r) {
      const double x = wp[r * k + p];
      const double s = res.scale[g * n + r], z = res.zero[g * n + r];
      double c = std::min(std::max(std::nearbyint(x / s) + z, 0.0), maxq);
      const double v = x / s;
      if (std::abs(v - std::floor(v) - 0.5) < tie.tolerance) {
        const double lib = (*tie.library_codes)[r * k + perm[p]];
        const double down = std::min(std::max(std::floor(v) + z, 0.0), maxq);
        const double up = std::min(std::max(std::floor(v) + 1 + z, 0.0), maxq);
        if (lib == down || lib == up) {
          c = lib;
          ++tie.ties;
        }
      }
      const double q = s * (c - z);
      codes_p[r * k + p] = static_cast<uint8_t>(c);
      res.loss += (x - q) * (x - q) / (d * d) / 2;
      const double e = (x - q) / d;
      for (int64_t t = p + 1; t < k; ++t) wp[r * k + t] -= e * u(p, t);
    }
  }
  res.codes.resize(n * k);
  res.g_idx.resize(k);
  for (int64_t p = 0; p < k; ++p) {
    res.g_idx[perm[p]] = group_of[p];
    for (int64_t r = 0; r < n; ++r) res.codes[r * k + perm[p]] = codes_p[r * k + p];
  }
  return res;
}

struct Case {
  int64_t out, in, tokens;
  int bits, group, block;
  bool sym, act_order, static_groups, mse;
  bool group_aware = false;
};

std::string case_name(const Case &c) {
  return std::to_string(c.out) + "x" + std::to_string(c.in) + "_t" + std::to_string(c.tokens) + "_b" +
         std::to_string(c.bits) + "_g" + (c.group < 0 ? std::string("all") : std::to_string(c.group)) +
         "_blk" + std::to_string(c.block) + (c.sym ? "_sym" : "_asym") + (c.act_order ? "_act" : "") +
         (c.static_groups ? "_static" : "") + (c.mse ? "_mse" : "") + (c.group_aware ? "_gar" : "");
}

std::vector<Case> cases() {
  std::vector<Case> all = {
      // Every bit width, sym and asym, on a shape that is no multiple of anything.
      {24, 100, 160, 2, 32, 128, true, false, false, false},
      {24, 100, 160, 3, 32, 128, false, false, false, false},
      {24, 100, 160, 4, 32, 128, true, false, false, false},
      {24, 100, 160, 5, 32, 128, false, false, false, false},
      {24, 100, 160, 6, 32, 128, true, false, false, false},
      {24, 100, 160, 7, 32, 128, false, false, false, false},
      {24, 100, 160, 8, 32, 128, true, false, false, false},
      // Group −1, group larger than K, group not dividing K, block not dividing K.
      {16, 96, 128, 4, -1, 128, true, false, false, false},
      {16, 96, 128, 4, -1, 128, false, true, false, false},
      {16, 96, 128, 4, 200, 64, false, false, false, false},
      {33, 257, 300, 4, 48, 50, false, false, false, false},
      {33, 257, 300, 3, 128, 128, true, false, false, false},
      // Groups starting inside blocks; blocks of one column; blocks larger than K.
      {20, 160, 200, 4, 16, 64, false, false, false, false},
      {20, 160, 200, 4, 16, 1, false, false, false, false},
      {20, 160, 200, 4, 16, 1000, true, false, false, false},
      // Act-order with and without static groups.
      {32, 192, 256, 4, 64, 128, true, true, false, false},
      {32, 192, 256, 4, 64, 128, false, true, true, false},
      {32, 192, 256, 3, 40, 32, false, true, false, false},
      {32, 192, 256, 3, 40, 32, true, true, true, false},
      {17, 130, 90, 2, 24, 48, false, true, false, false},  // fewer tokens than features
      // MSE clip search.
      {16, 128, 160, 4, 32, 128, false, false, false, true},
      {16, 128, 160, 3, 64, 128, true, true, false, true},
      {1, 64, 80, 8, 64, 128, false, false, false, false},  // a single output row
      // Group-aware act-order: groups dividing K, a ragged last group,
      // groups inside blocks, static groups, one group.
      {32, 192, 256, 4, 64, 128, true, false, false, false, true},
      {33, 257, 300, 4, 48, 50, false, false, false, false, true},
      {20, 160, 200, 3, 16, 64, false, false, false, false, true},
      {32, 192, 256, 4, 64, 128, false, false, true, false, true},
      {16, 96, 128, 4, -1, 128, true, false, false, false, true},
  };
  return all;
}

class Oracle : public ::testing::TestWithParam<Case> {};

void run_case(const Case &c, gptq_precision precision) {
  gptq_config cfg = default_config();
  cfg.bits = c.bits;
  cfg.group_size = c.group;
  cfg.block_size = c.block;
  cfg.sym = c.sym;
  cfg.act_order = c.act_order;
  cfg.act_group_aware = c.group_aware;
  cfg.static_groups = c.static_groups;
  cfg.mse = c.mse;
  cfg.precision = precision;
  cfg.backend = GPTQ_BACKEND_CPU;

  const uint32_t seed = static_cast<uint32_t>(c.out * 131 + c.in * 7 + c.bits + c.group);
  const std::vector<float> x = correlated_activations(c.tokens, c.in, seed);
  const std::vector<float> w = layer_weights(c.out, c.in, seed + 1);

  // Feed in two batches with different sample weights, as a pipeline would.
  Ctx ctx = make_ctx(c.out, c.in, cfg);
  ASSERT_TRUE(ctx);
  const int64_t first = c.tokens / 3;
  ASSERT_EQ(gptq_add_batch(ctx.get(), x.data(), GPTQ_DTYPE_F32, first, c.in, 1), GPTQ_OK);
  ASSERT_EQ(gptq_add_batch(ctx.get(), x.data() + first * c.in, GPTQ_DTYPE_F32, c.tokens - first, c.in, 2),
            GPTQ_OK);
  // Oracle Hessian: the same running mean, in double.
  Matrix h(c.in * c.in, 0.0);
  auto accumulate = [&](int64_t t0, int64_t t1, double n_old, double n_new) {
    for (auto &v : h) v *= n_old / n_new;
    for (int64_t t = t0; t < t1; ++t)
      for (int64_t i = 0; i < c.in; ++i)
        for (int64_t j = 0; j < c.in; ++j)
          h[i * c.in + j] += 2.0 / n_new * x[t * c.in + i] * static_cast<double>(x[t * c.in + j]);
  };
  accumulate(0, first, 0, 1);
  accumulate(first, c.tokens, 1, 3);
  gptq_qtensor *raw = nullptr;
  gptq_quant_stats stats{};
  stats.struct_size = sizeof stats;
  ASSERT_EQ(gptq_quantize(ctx.get(), w.data(), GPTQ_DTYPE_F32, c.out, c.in, &raw, &stats), GPTQ_OK)
      << gptq_last_error();
  QTensor q(raw);
  const std::vector<uint8_t> got = codes_of(q.get(), c.out, c.in);

  Matrix wd(w.begin(), w.end());
  TieRule tie{&got, precision == GPTQ_PRECISION_F64 ? 1e-9 : 1e-3};
  const OracleResult want = oracle_gptq(h, wd, c.out, c.in, cfg, tie);
  int64_t mismatches = 0;
  for (size_t i = 0; i < got.size(); ++i) mismatches += got[i] != want.codes[i];
  gptq_qtensor_info info{};
  ASSERT_EQ(gptq_qtensor_get_info(q.get(), &info), GPTQ_OK);
  ASSERT_EQ(info.groups, static_cast<int64_t>(want.scale.size() / c.out));
  // g_idx is j / group_size (act_order 0) unless plain act-order moved the
  // groups; group-aware act-order keeps it.
  EXPECT_EQ(info.act_order, c.act_order && !c.static_groups && c.group > 0 ? 1 : 0);

  EXPECT_EQ(mismatches, 0) << "codes differing from the oracle, of " << got.size();
  EXPECT_LE(tie.ties, static_cast<int64_t>(got.size()) / 100 + 2)
      << "rounding ties followed: far more than float noise explains";
  EXPECT_NEAR(stats.loss, want.loss, (precision == GPTQ_PRECISION_F64 ? 1e-9 : 1e-3) * want.loss);
  // Dequantized weights use the fp16-rounded scales: compare with the
  // oracle's scales rounded the same way, at every code that agrees.
  const std::vector<float> deq = dequantized(q.get(), c.out, c.in);
  // F32 weights carry absolute float noise from the updates; it matters only
  // for scales near that noise (e.g. a one-column group with a tiny weight).
  double w_max = 0.0;
  for (float v : w) w_max = std::max(w_max, static_cast<double>(std::abs(v)));
  const double float_noise = precision == GPTQ_PRECISION_F64 ? 1e-12 : 2e-5 * w_max;
  for (int64_t r = 0; r < c.out; ++r)
    for (int64_t j = 0; j < c.in; ++j) {
      if (got[r * c.in + j] != want.codes[r * c.in + j]) continue;
      const int32_t g = want.g_idx[j];
      const double s = want.scale[g * c.out + r];
      const double steps = want.codes[r * c.in + j] - want.zero[g * c.out + r];
      // One fp16 ulp of the scale (subnormal below 2^-14) per quantization step.
      const double ulp16 = std::max(std::abs(s) * std::ldexp(1.0, -10), std::ldexp(1.0, -24));
      ASSERT_NEAR(deq[r * c.in + j], s * steps, std::abs(steps) * ulp16 + float_noise)
          << "row " << r << " col " << j;
    }
}

TEST_P(Oracle, DoublePrecisionMatchesExactly) { run_case(GetParam(), GPTQ_PRECISION_F64); }
TEST_P(Oracle, SinglePrecisionMatchesUpToNearTies) { run_case(GetParam(), GPTQ_PRECISION_F32); }

INSTANTIATE_TEST_SUITE_P(Shapes, Oracle, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<Case> &info) { return case_name(info.param); });

}  // namespace
