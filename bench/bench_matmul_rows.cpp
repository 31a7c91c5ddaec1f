// How the CPU matmul's cost grows with the rows of x, for the decode of a
// batch of sequences: the kernels take up to 8 rows per pass over the
// weights, so 8 rows would ideally cost little more than one. One thread,
// weights kept in cache by calling back to back (a model's layers come from
// memory, which this leaves out: it isolates the kernels' arithmetic), int8
// and float32 activations, interleaved, median of repetitions. The ratio
// printed is each row count's time over one row's, in the same run.
//
//   build/bench/bench_matmul_rows [--reps 15] [--group 32] [--rows 1,2,4,8]
//                                 [--shapes 576x3072,1536x576,4096x4096]
// Shapes are in x out; the defaults are SmolLM2-135M's joined gate/up and
// its down_proj, and a 4096-wide layer (larger than L2). Weights: 4-bit,
// random codes imported as a checkpoint.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "bench_util.h"
#include "gptq.h"

namespace {

std::vector<std::string> split(const std::string &list) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= list.size()) {
    size_t end = list.find(',', start);
    if (end == std::string::npos) end = list.size();
    if (end > start) out.push_back(list.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

}  // namespace

int main(int argc, char **argv) {
  int reps = 15, group = 32;
  std::string shapes = "576x3072,1536x576,4096x4096", rows_list = "1,2,4,8";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--reps")) reps = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--group")) group = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--rows")) rows_list = argv[i + 1];
    if (!std::strcmp(argv[i], "--shapes")) shapes = argv[i + 1];
  }
  std::vector<long> row_counts;
  for (const std::string &r : split(rows_list)) row_counts.push_back(std::atol(r.c_str()));
  if (reps < 1 || row_counts.empty() || row_counts[0] != 1) {
    std::fprintf(stderr, "bench_matmul_rows: --reps >= 1, and --rows must start with 1\n");
    return 2;
  }
  std::printf("# gptq_matmul_ex, 4-bit group %d, one thread, weights warm, median of %d interleaved runs;\n"
              "# x1 = time over one row's time\n",
              group, reps);
  std::printf("%12s %5s %10s %7s %10s %7s %11s\n", "in x out", "rows", "int8 us", "x1", "f32 us", "x1",
              "int8 GMAC/s");
  std::mt19937 rng(7);
  gptq_matmul_options int8, f32;
  gptq_matmul_options_default(&int8);
  int8.int8_activations = 1;
  int8.num_threads = 1;
  gptq_matmul_options_default(&f32);
  f32.num_threads = 1;
  for (const std::string &shape : split(shapes)) {
    const long k = std::atol(shape.c_str()), n = std::atol(shape.c_str() + shape.find('x') + 1);
    gptq_qtensor *q = bench::random_4bit_tensor(k, n, group, rng);
    // Enough calls per timed run for a few milliseconds.
    const long calls = std::max(1L, 4000000L / (k * n / 256));
    double one_int8 = 0, one_f32 = 0;
    for (const long rows : row_counts) {
      std::vector<float> x(rows * k), y(rows * n);
      std::normal_distribution<float> normal;
      for (auto &v : x) v = normal(rng);
      auto run = [&](const gptq_matmul_options *o) {
        for (long c = 0; c < calls; ++c)
          if (gptq_matmul_ex(q, x.data(), GPTQ_DTYPE_F32, rows, k, nullptr, y.data(), (int64_t)y.size(), o) !=
              GPTQ_OK)
            std::abort();
      };
      const auto t = bench::interleaved_medians({[&] { run(&int8); }, [&] { run(&f32); }}, reps);
      const double us_int8 = 1e6 * t[0] / calls, us_f32 = 1e6 * t[1] / calls;
      if (rows == 1) one_int8 = us_int8, one_f32 = us_f32;
      std::printf("%12s %5ld %10.1f %6.2fx %10.1f %6.2fx %11.1f\n", shape.c_str(), rows, us_int8,
                  us_int8 / one_int8, us_f32, us_f32 / one_f32, rows * k * n / us_int8 / 1e3);
      std::fflush(stdout);
    }
    gptq_qtensor_destroy(q);
  }
  return 0;
}
