// Prints a digest of everything gptq_quantize returns (codes, checkpoint
// scales / zeros / g_idx, the dequantized weights, the loss and the other
// stats, bit for bit) for a spread of configurations: bit widths, sym and
// asym, groups that cross block ends, act-order with and without static
// groups, the MSE search, dead columns, row counts that leave a partial
// 16-row tile, both precisions, one and two threads, and a round-to-nearest
// fallback. check_kernel_caps.sh runs it once per GPTQ_CPU_KERNELS value: the
// block kernel's builds promise bit-identical results, so every run must
// print the same lines.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "gptq.h"

namespace {

struct Case {
  int64_t out, in;
  int bits, group, sym, act_order, static_groups, block, mse;
  gptq_precision precision;
  int dead, threads;
  bool hopeless;  // H = −I: every factorization fails, round-to-nearest
};

uint64_t fnv1a(uint64_t h, const void *data, size_t bytes) {
  const unsigned char *p = static_cast<const unsigned char *>(data);
  for (size_t i = 0; i < bytes; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

template <typename V>
uint64_t fnv1a(uint64_t h, const std::vector<V> &v) {
  return fnv1a(h, v.data(), v.size() * sizeof(V));
}

bool digest(const Case &c, uint32_t seed, uint64_t &h) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  gptq_config cfg;
  gptq_config_default(&cfg);
  cfg.bits = c.bits;
  cfg.group_size = c.group;
  cfg.sym = c.sym;
  cfg.act_order = c.act_order;
  cfg.static_groups = c.static_groups;
  cfg.block_size = c.block;
  cfg.mse = c.mse;
  cfg.precision = c.precision;
  cfg.num_threads = c.threads;
  cfg.damp_increment = 0.05f;
  cfg.backend = GPTQ_BACKEND_CPU;
  gptq_ctx *ctx = nullptr;
  if (gptq_ctx_create(c.out, c.in, &cfg, &ctx) != GPTQ_OK) return false;
  bool ok = true;
  if (c.hopeless) {
    std::vector<double> hessian(c.in * c.in, 0.0);
    for (int64_t j = 0; j < c.in; ++j) hessian[j * c.in + j] = -1.0;
    ok = gptq_ctx_import_hessian(ctx, hessian.data(), c.in * c.in, 100) == GPTQ_OK;
  } else {
    // Correlated channels of different scales, some never active.
    const int64_t tokens = 3 * c.in / 2 + 7;
    std::vector<float> x(tokens * c.in), mix(c.in);
    for (float &m : mix) m = normal(rng);
    for (int64_t t = 0; t < tokens; ++t) {
      const float common = normal(rng);
      for (int64_t j = 0; j < c.in; ++j)
        x[t * c.in + j] = normal(rng) * static_cast<float>(1 + j % 7) + common * mix[j];
      for (int d = 0; d < c.dead; ++d) x[t * c.in + (d * 37 + 5) % c.in] = 0.0f;
    }
    ok = gptq_add_batch(ctx, x.data(), GPTQ_DTYPE_F32, tokens, c.in, 1) == GPTQ_OK;
  }
  std::vector<float> w(c.out * c.in);
  for (float &v : w) v = 0.02f * normal(rng) * (rng() % 500 == 0 ? 8.0f : 1.0f);
  gptq_qtensor *q = nullptr;
  gptq_quant_stats stats;
  std::memset(&stats, 0, sizeof stats);
  stats.struct_size = sizeof stats;
  ok = ok && gptq_quantize(ctx, w.data(), GPTQ_DTYPE_F32, c.out, c.in, &q, &stats) == GPTQ_OK;
  if (ok) {
    std::vector<uint8_t> codes(c.out * c.in);
    std::vector<float> deq(c.out * c.in);
    ok = gptq_qtensor_codes(q, codes.data(), codes.size()) == GPTQ_OK &&
         gptq_qtensor_dequantize(q, deq.data(), deq.size()) == GPTQ_OK;
    h = fnv1a(fnv1a(h, codes), deq);
    gptq_checkpoint_sizes sz;
    if (ok && gptq_checkpoint_sizes_for(c.out, c.in, c.bits, c.group, &sz) == GPTQ_OK) {
      std::vector<int32_t> qweight(sz.qweight_rows * sz.qweight_cols),
          qzeros(sz.qzeros_rows * sz.qzeros_cols), g_idx(sz.g_idx_len);
      std::vector<uint16_t> scales(sz.scales_rows * sz.scales_cols);
      const gptq_checkpoint_tensors t{
          qweight.data(), static_cast<int64_t>(qweight.size()),
          qzeros.data(),  static_cast<int64_t>(qzeros.size()),
          scales.data(),  static_cast<int64_t>(scales.size()),
          g_idx.data(),   static_cast<int64_t>(g_idx.size())};
      ok = gptq_qtensor_export(q, GPTQ_FORMAT_V2, &t) == GPTQ_OK;
      h = fnv1a(fnv1a(fnv1a(fnv1a(h, qweight), qzeros), scales), g_idx);
    }
    h = fnv1a(h, &stats.loss, sizeof stats.loss);
    h = fnv1a(h, &stats.damp_percent_used, sizeof stats.damp_percent_used);
    h = fnv1a(h, &stats.damp_retries, sizeof stats.damp_retries);
    h = fnv1a(h, &stats.fell_back_to_rtn, sizeof stats.fell_back_to_rtn);
    h = fnv1a(h, &stats.dead_columns, sizeof stats.dead_columns);
  }
  gptq_qtensor_destroy(q);
  gptq_ctx_destroy(ctx);
  return ok;
}

}  // namespace

int main() {
  const gptq_precision f32 = GPTQ_PRECISION_F32, f64 = GPTQ_PRECISION_F64;
  const Case cases[] = {
      // out, in, bits, group, sym, act, static, block, mse, precision, dead, threads, hopeless
      {77, 300, 2, 48, 0, 0, 0, 100, 0, f32, 0, 0, false},
      {77, 300, 3, 48, 1, 0, 0, 100, 0, f64, 0, 0, false},
      {130, 256, 4, 128, 0, 1, 0, 128, 0, f32, 3, 2, false},
      {130, 256, 8, 128, 1, 1, 0, 128, 0, f64, 3, 1, false},
      {64, 256, 3, 32, 1, 1, 1, 64, 0, f32, 0, 1, false},
      {64, 256, 4, 32, 0, 1, 1, 64, 0, f64, 0, 2, false},
      {33, 192, 4, -1, 0, 1, 0, 128, 0, f32, 2, 0, false},
      {48, 160, 4, 40, 0, 1, 0, 32, 1, f32, 1, 0, false},
      {40, 96, 3, 32, 1, 0, 0, 128, 1, f64, 0, 0, false},
      {300, 520, 4, 200, 0, 1, 0, 128, 0, f32, 0, 0, false},
      {32, 64, 4, 32, 1, 0, 0, 128, 0, f32, 0, 0, true},
  };
  uint64_t all = 1469598103934665603ull;
  uint32_t seed = 1;
  for (const Case &c : cases) {
    uint64_t h = 1469598103934665603ull;
    if (!digest(c, seed++, h)) {
      std::fprintf(stderr, "solver_digest: %ldx%ld failed: %s\n", static_cast<long>(c.out),
                   static_cast<long>(c.in), gptq_last_error());
      return 1;
    }
    std::printf("%4ldx%-4ld bits %d group %4d sym %d act %d static %d block %3d mse %d %s: %016llx\n",
                static_cast<long>(c.out), static_cast<long>(c.in), c.bits, c.group, c.sym,
                c.act_order, c.static_groups, c.block, c.mse, c.precision == f64 ? "f64" : "f32",
                static_cast<unsigned long long>(h));
    all = fnv1a(all, &h, sizeof h);
  }
  std::printf("all: %016llx\n", static_cast<unsigned long long>(all));
  return 0;
}
