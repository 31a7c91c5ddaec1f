#include "plugin_self_check.h"

#include <cmath>
#include <cstdint>
#include <exception>
#include <string>
#include <vector>

#include "config.h"
#include "context.h"
#include "dtype.h"
#include "half.h"

namespace gptq {
namespace {

// Two blocks of 128 columns, so the solve runs the update between blocks as
// well as the block kernel; groups of 64, act-order, so the permutation and
// g_idx are exercised.
constexpr int64_t kOut = 64;
constexpr int64_t kIn = 256;
constexpr int64_t kTokens = 512;

// Deterministic data with correlated input channels (a real Hessian is far
// from diagonal) from a fixed linear congruential generator: the same
// numbers on every machine.
struct Lcg {
  uint64_t state;
  double next() {  // uniform in [-1, 1)
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<double>(state >> 11) * (2.0 / 9007199254740992.0) - 1.0;
  }
};

std::vector<float> activations() {
  Lcg rng{12345};
  std::vector<float> x(static_cast<size_t>(kTokens * kIn));
  for (int64_t t = 0; t < kTokens; ++t) {
    double shared = 0.0;
    for (int64_t j = 0; j < kIn; ++j) {
      shared = 0.7 * shared + rng.next();
      const double scale = j % 37 == 0 ? 8.0 : 1.0;  // a few outlier channels
      x[t * kIn + j] = static_cast<float>(scale * (shared + 0.3 * rng.next()));
    }
  }
  return x;
}

std::vector<float> weights() {
  Lcg rng{678};
  std::vector<float> w(static_cast<size_t>(kOut * kIn));
  for (float &v : w) v = static_cast<float>(0.05 * rng.next() * (1.0 + rng.next()));
  return w;
}

struct Result {
  QTensorData q;
  double loss = 0.0;
};

Result quantize_on(Backend &backend, const std::vector<float> &x, const std::vector<float> &w,
                   const gptq_config &config) {
  std::unique_ptr<Hessian> h = backend.create_hessian(kIn, config.precision, nullptr);
  const BatchWeights bw = batch_weights(0, kTokens);
  h->add_batch(x.data(), GPTQ_DTYPE_F32, kTokens, Memory::kHost, bw.beta, bw.alpha);
  QuantizeJob job{w.data(), GPTQ_DTYPE_F32, Memory::kHost, kOut, config, Logger{}};
  gptq_quant_stats stats{};
  stats.struct_size = sizeof stats;
  Result r;
  r.q = backend.quantize(*h, job, stats);
  r.loss = stats.loss;
  return r;
}

// Fraction of codes that differ, and the largest difference.
std::string compare_quantized(const Result &mine, const Result &cpu, double allowed_fraction,
                              double loss_tolerance) {
  int64_t differ = 0;
  int max_step = 0;
  for (size_t i = 0; i < cpu.q.codes.size(); ++i)
    if (mine.q.codes[i] != cpu.q.codes[i]) {
      ++differ;
      max_step = std::max(max_step, std::abs(int(mine.q.codes[i]) - int(cpu.q.codes[i])));
    }
  const double fraction = static_cast<double>(differ) / static_cast<double>(cpu.q.codes.size());
  if (fraction > allowed_fraction)
    return std::to_string(differ) + " of " + std::to_string(cpu.q.codes.size()) +
           " codes differ (by up to " + std::to_string(max_step) + ")";
  if (mine.q.g_idx != cpu.q.g_idx) return "g_idx differs";
  if (!(std::abs(mine.loss - cpu.loss) <= loss_tolerance * std::abs(cpu.loss)))
    return "loss " + std::to_string(mine.loss) + " where the CPU has " + std::to_string(cpu.loss);
  return "";
}

// Relative L2 distance between two result vectors.
double relative_error(const std::vector<float> &a, const std::vector<float> &b) {
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = static_cast<double>(a[i]) - static_cast<double>(b[i]);
    num += d * d;
    den += static_cast<double>(b[i]) * static_cast<double>(b[i]);
  }
  return std::sqrt(num / den);
}

// y = x·Wᵀ for `rows` rows of x in dtype on the plugin, as float.
std::vector<float> matmul_on(Backend &backend, const PreparedWeights &prepared,
                             const QTensorData &q, const std::vector<float> &x, int64_t rows,
                             gptq_dtype dtype) {
  const size_t count = static_cast<size_t>(rows * kIn);
  std::vector<uint16_t> narrow(count);
  const void *input = x.data();
  if (dtype != GPTQ_DTYPE_F32) {
    convert_from_float(x.data(), static_cast<int64_t>(count), dtype, narrow.data());
    input = narrow.data();
  }
  std::vector<float> y(static_cast<size_t>(rows * kOut));
  std::vector<uint16_t> y_narrow(y.size());
  MatmulOptions options;
  backend.matmul(q, prepared, input, dtype, rows, nullptr,
                 dtype == GPTQ_DTYPE_F32 ? static_cast<void *>(y.data()) : y_narrow.data(),
                 options);
  if (dtype != GPTQ_DTYPE_F32) convert_to_float(y_narrow.data(), dtype, y.size(), y.data());
  return y;
}

std::string check(Backend &plugin) {
  const std::vector<float> x = activations();
  const std::vector<float> w = weights();
  gptq_config config;
  gptq_config_default(&config);
  config.group_size = 64;
  config.act_order = 1;
  config.num_threads = 1;

  // In double precision the two backends' sums differ by rounding alone, far
  // below any rounding tie of this data: every code must agree.
  config.precision = GPTQ_PRECISION_F64;
  const Result cpu64 = quantize_on(cpu_backend(), x, w, config);
  std::string why = compare_quantized(quantize_on(plugin, x, w, config), cpu64, 0.0, 1e-9);
  if (!why.empty()) return "quantize (F64): " + why;
  // In float a near-tie can round either way and its error then propagates
  // along the row; a wrong kernel changes most codes.
  config.precision = GPTQ_PRECISION_F32;
  const Result cpu32 = quantize_on(cpu_backend(), x, w, config);
  why = compare_quantized(quantize_on(plugin, x, w, config), cpu32, 0.02, 1e-3);
  if (!why.empty()) return "quantize (F32): " + why;

  // Matmul of the CPU's tensor: exact float32 kernels for F32, weights and
  // activations in the narrow type for F16 / BF16 (one rounding each).
  std::unique_ptr<PreparedWeights> mine = plugin.prepare(cpu32.q, nullptr);
  std::unique_ptr<PreparedWeights> reference = cpu_backend().prepare(cpu32.q, nullptr);
  const struct {
    gptq_dtype dtype;
    int64_t rows;
    double tolerance;
  } cases[] = {{GPTQ_DTYPE_F32, 3, 1e-5}, {GPTQ_DTYPE_F16, 1, 4e-3},
               {GPTQ_DTYPE_F16, 20, 4e-3}, {GPTQ_DTYPE_BF16, 5, 2e-2}};
  for (const auto &c : cases) {
    const std::vector<float> got = matmul_on(plugin, *mine, cpu32.q, x, c.rows, c.dtype);
    const std::vector<float> want =
        matmul_on(cpu_backend(), *reference, cpu32.q, x, c.rows, GPTQ_DTYPE_F32);
    const double err = relative_error(got, want);
    if (!(err <= c.tolerance))
      return "matmul (" + std::string(c.dtype == GPTQ_DTYPE_F32   ? "F32"
                                      : c.dtype == GPTQ_DTYPE_F16 ? "F16"
                                                                  : "BF16") +
             ", " + std::to_string(c.rows) + " rows): relative error " + std::to_string(err) +
             " against the CPU (allowed " + std::to_string(c.tolerance) + ")";
  }
  return "";
}

}  // namespace

std::string self_check_failure(Backend &plugin) {
  try {
    return check(plugin);
  } catch (const std::exception &e) {
    return std::string("it failed to run: ") + e.what();
  }
}

}  // namespace gptq
