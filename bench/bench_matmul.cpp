// gptq_matmul on the CPU against OpenBLAS on the same shapes, in one process,
// interleaved, median of repetitions, caches flushed before every run.
//
// Batch 1: our kernels (float32 and int8 activations) against sgemv on the
// float32 weights; the figure of merit is the weight bandwidth each reaches
// (bytes of weights read per second), ours as % of sgemv's. Batch 8 and 32:
// our kernels / sgemm path against dequantize + sgemm.
//
//   build/bench/bench_matmul [--reps 5] [--shapes 4096x4096,4096x11008,11008x4096,8192x28672]
//                            [--awake 0|1] [--dirty-flush 0|1]
// Shapes are in x out.
//
// --awake 0 (default): every timed call starts with both sides' worker
// threads asleep (after the cache flush, which takes milliseconds); waking a
// sleeping thread is a sizeable part of a small call (bench/RESULTS.md,
// Threads on the 2-core VM). --awake 1: right before each timed call, small
// untimed calls of the same library (128-row gptq_matmuls; 1024 × 1024
// sgemvs), repeated for 1 ms so that a late-waking worker joins one of them,
// leave that library's workers polling, as the previous layer would in an
// engine running layer after layer; the weights stay out of the caches. Weights: 4-bit, group 128, random codes imported as a
// checkpoint (the kernels do not care how the codes were chosen).
#include <cblas.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bench_util.h"
#include "gptq.h"

namespace {

std::vector<char> flush_buffer(256u << 20, 1);
volatile char flush_sink;
bool blas_ran = false;
bool awake = false;
bool dirty_flush = false;

// Before every timed call: evict the weights from the caches, and after an
// OpenBLAS call let its worker threads go to sleep first. They spin (with
// sched_yield) for about 2^28 cycles after each call; meanwhile the
// scheduler may put our pool's worker on the caller's core, and our kernels
// measured up to 2× slower in such runs on the 2-core machine.
// The flush reads (clean lines, as an engine's previous layers leave the
// cache); --dirty-flush 1 writes instead, so that the call's first 32 MiB of
// reads also pay the write-back of the evicted lines (8–25% slower on
// 4096 × 4096 at batch 1, the whole of which fits in that window).
void before_call() {
  if (blas_ran) std::this_thread::sleep_for(std::chrono::milliseconds(150));
  blas_ran = false;
  char sum = 0;
  for (size_t i = 0; i < flush_buffer.size(); i += 64) {
    if (dirty_flush)
      flush_buffer[i]++;
    else
      sum = static_cast<char>(sum + flush_buffer[i]);
  }
  flush_sink = sum;
}

// Small calls whose only purpose is to wake a library's worker threads
// (--awake 1). The gptq tensor has 128 output rows: 8 tiles, two tasks, so
// the pool's worker takes part; OpenBLAS threads an sgemv of this size.
// One call is over before a sleeping worker wakes (and finds nothing to
// do), so each is repeated for 1 ms.
struct Wakers {
  gptq_qtensor *tensor = nullptr;
  std::vector<float> x = std::vector<float>(1024, 1.0f), y = std::vector<float>(1024);
  std::vector<float> a = std::vector<float>(1024 * 1024, 1.0f);
  void ours() const {
    if (gptq_matmul(tensor, x.data(), GPTQ_DTYPE_F32, 1, 1024, nullptr, const_cast<float *>(y.data()), 128) !=
        GPTQ_OK)
      std::abort();
  }
  void openblas() const {
    cblas_sgemv(CblasRowMajor, CblasNoTrans, 1024, 1024, 1.0f, a.data(), 1024, x.data(), 1, 0.0f,
                const_cast<float *>(y.data()), 1);
  }
};

}  // namespace

int main(int argc, char **argv) {
  int reps = 5;
  std::string shapes = "4096x4096,4096x11008,11008x4096,8192x28672";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--reps")) reps = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--shapes")) shapes = argv[i + 1];
    if (!std::strcmp(argv[i], "--awake")) awake = std::atoi(argv[i + 1]) != 0;
    if (!std::strcmp(argv[i], "--dirty-flush")) dirty_flush = std::atoi(argv[i + 1]) != 0;
  }
  std::printf("# gptq_matmul (4-bit, group 128) vs OpenBLAS, caches flushed, worker threads %s, median of %d "
              "interleaved runs\n",
              awake ? "woken by a small call right before" : "asleep", reps);
  std::printf("%12s %5s %9s %9s %9s %9s %9s %9s %9s\n", "in x out", "batch", "f32 ms", "int8 ms", "base ms",
              "f32 GB/s", "int8 GB/s", "base GB/s", "f32/base");
  std::mt19937 rng(7);
  Wakers wakers;
  wakers.tensor = bench::random_4bit_tensor(1024, 128, 128, rng);
  gptq_matmul_options int8;
  gptq_matmul_options_default(&int8);
  int8.int8_activations = 1;
  size_t start = 0;
  while (start < shapes.size()) {
    size_t end = shapes.find(',', start);
    if (end == std::string::npos) end = shapes.size();
    const std::string shape = shapes.substr(start, end - start);
    start = end + 1;
    const long k = std::atol(shape.c_str()), n = std::atol(shape.c_str() + shape.find('x') + 1);
    gptq_qtensor *q = bench::random_4bit_tensor(k, n, 128, rng);
    bench::HugeFloats w(static_cast<size_t>(n) * k);
    if (gptq_qtensor_dequantize(q, w.data(), (int64_t)w.size()) != GPTQ_OK) std::abort();
    const double packed_bytes = n * k / 2.0 + n * (k / 128) * 8.0;  // codes + float scale/zero
    const double f32_bytes = 4.0 * n * k;
    for (long batch : {1L, 8L, 32L}) {
      std::vector<float> x(batch * k), y(batch * n);
      std::normal_distribution<float> normal;
      for (auto &v : x) v = normal(rng);
      auto ours = [&](const gptq_matmul_options *o) {
        if (gptq_matmul_ex(q, x.data(), GPTQ_DTYPE_F32, batch, k, nullptr, y.data(), (int64_t)y.size(), o) != GPTQ_OK)
          std::abort();
      };
      std::vector<float> tile;
      auto baseline = [&] {
        blas_ran = true;
        if (batch == 1) {
          cblas_sgemv(CblasRowMajor, CblasNoTrans, n, k, 1.0f, w.data(), k, x.data(), 1, 0.0f, y.data(), 1);
        } else {  // dequantize + sgemm
          tile.resize(static_cast<size_t>(n) * k);
          gptq_qtensor_dequantize(q, tile.data(), (int64_t)tile.size());
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, batch, n, k, 1.0f, x.data(), k, tile.data(), k, 0.0f,
                      y.data(), n);
        }
      };
      // Function 2 is the baseline; at batch 8/32 it starts with our own
      // (pool-parallel) dequantize, so our pool is the one to wake there.
      const auto before = [&](size_t i) {
        before_call();
        if (!awake) return;
        const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(1);
        const bool openblas = i == 2 && batch == 1;
        while (std::chrono::steady_clock::now() < until) openblas ? wakers.openblas() : wakers.ours();
        blas_ran = blas_ran || openblas;
      };
      const auto t =
          bench::interleaved_medians({[&] { ours(nullptr); }, [&] { ours(&int8); }, baseline}, reps, before);
      const double base_bytes = batch == 1 ? f32_bytes : packed_bytes;
      std::printf("%12s %5ld %9.3f %9.3f %9.3f %9.1f %9.1f %9.1f %8.2fx\n", shape.c_str(), batch, 1e3 * t[0],
                  1e3 * t[1], 1e3 * t[2], packed_bytes / t[0] / 1e9, packed_bytes / t[1] / 1e9,
                  base_bytes / t[2] / 1e9, t[2] / t[0]);
      std::fflush(stdout);
    }
    gptq_qtensor_destroy(q);
  }
  gptq_qtensor_destroy(wakers.tensor);
  std::printf("# batch 1 base = sgemv on float32 weights (GB/s of its 4-byte weights); batch 8/32 base =\n"
              "# gptq_qtensor_dequantize + sgemm (GB/s of the packed weights); f32/base = speed-up of ours\n");
  return 0;
}
