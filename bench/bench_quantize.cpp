// How close gptq_quantize gets to the arithmetic bound on this machine.
//
// For each layer shape (out x in) and with / without act-order it times, in
// one process and interleaved: gptq_quantize (4-bit, group 128), and OpenBLAS
// sgemm on a square problem of the layer's width (the machine's GEMM rate).
// The bound is the arithmetic GPTQ cannot avoid — one Cholesky of H (K³/3
// flops) plus the error propagation (column p of every row receives the
// errors of the p columns before it: Σ 2·N·p = N·K² flops) — divided by that
// rate. Speed against the reference implementation: see
// bench/reference_gptq.py.
//
//   build/bench/bench_quantize [--reps 3] [--shapes 4096x4096,11008x4096,4096x11008] [--breakdown 1] [--threads N]
// --breakdown 1 prints the solver's own split of every timed run (factor,
// block loop, GEMM + TRSM) from its DEBUG log line.
#include <cblas.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "bench_util.h"
#include "gptq.h"

namespace {
void print_breakdown(gptq_log_level, const char *message, void *) {
  if (std::strncmp(message, "gptq_solve", 10) == 0) std::printf("#   %s\n", message);
}
}  // namespace

int main(int argc, char **argv) {
  int reps = 3;
  bool breakdown = false;
  int threads = 0;
  std::string shapes = "4096x4096,11008x4096,4096x11008";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--reps")) reps = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--shapes")) shapes = argv[i + 1];
    if (!std::strcmp(argv[i], "--breakdown")) breakdown = std::atoi(argv[i + 1]) != 0;
    if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(argv[i + 1]);
  }
  std::printf("# gptq_quantize vs the bound set by OpenBLAS sgemm measured in the same run\n");
  std::printf("# 4-bit, group 128, sym, block 128, F32; median of %d interleaved repetitions\n", reps);
  std::printf("%12s %4s %10s %12s %10s %10s %8s\n", "out x in", "act", "ours s", "sgemm GF/s", "GFLOP", "bound s",
              "% bound");
  size_t start = 0;
  while (start < shapes.size()) {
    size_t end = shapes.find(',', start);
    if (end == std::string::npos) end = shapes.size();
    const std::string shape = shapes.substr(start, end - start);
    start = end + 1;
    const long n = std::atol(shape.c_str()), k = std::atol(shape.c_str() + shape.find('x') + 1);
    const long tokens = 2048;
    std::mt19937 rng(1);
    std::normal_distribution<float> normal;
    std::vector<float> x(tokens * k), w(n * k);
    for (auto &v : x) v = normal(rng);
    for (auto &v : w) v = 0.02f * normal(rng);
    // The sgemm baseline: a K x K x K product, the shape of the dominant work.
    std::vector<float> a(k * k, 0.5f), b(k * k, 0.25f), c(k * k);
    for (int act = 0; act <= 1; ++act) {
      gptq_config cfg;
      gptq_config_default(&cfg);
      cfg.act_order = act;
      cfg.num_threads = threads;  // the library's own loops; OpenBLAS keeps its setting
      if (breakdown) {
        cfg.log = print_breakdown;
        cfg.log_level = GPTQ_LOG_DEBUG;
      }
      gptq_ctx *ctx = nullptr;
      if (gptq_ctx_create(n, k, &cfg, &ctx) != GPTQ_OK ||
          gptq_add_batch(ctx, x.data(), GPTQ_DTYPE_F32, tokens, k, 1) != GPTQ_OK) {
        std::fprintf(stderr, "setup failed: %s\n", gptq_last_error());
        return 1;
      }
      const auto t = bench::interleaved_medians(
          {[&] {
             gptq_qtensor *q = nullptr;
             gptq_quant_stats s{};
             s.struct_size = sizeof s;
             if (gptq_quantize(ctx, w.data(), GPTQ_DTYPE_F32, n, k, &q, &s) != GPTQ_OK) std::abort();
             gptq_qtensor_destroy(q);
           },
           [&] {
             cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, k, k, k, 1.0f, a.data(), k, b.data(), k, 0.0f,
                         c.data(), k);
           }},
          reps);
      gptq_ctx_destroy(ctx);
      const double rate = 2.0 * k * k * k / t[1] / 1e9;
      const double gflop = (double(k) * k * k / 3.0 + double(n) * k * k) / 1e9;
      const double bound = gflop / rate;
      std::printf("%12s %4s %10.3f %12.1f %10.1f %10.3f %7.0f%%\n", shape.c_str(), act ? "yes" : "no", t[0], rate,
                  gflop, bound, 100.0 * bound / t[0]);
      std::fflush(stdout);
    }
  }
  return 0;
}
