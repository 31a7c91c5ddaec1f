// Timing helpers for the benchmark programs: repeated runs, medians, and the
// OpenBLAS baselines measured in the same process; and the random 4-bit
// tensors the matmul benchmarks multiply.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <new>
#include <random>
#include <vector>

#include "gptq.h"

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace bench {

// A float array on transparent huge pages where the system grants them (as
// libgptq's own large buffers), so that a baseline streaming it pays no more
// TLB misses than our kernels do on theirs.
class HugeFloats {
 public:
  explicit HugeFloats(size_t count) : count_(count) {
    constexpr size_t kHuge = size_t(2) << 20;
    const size_t bytes = (count * sizeof(float) + kHuge - 1) / kHuge * kHuge;
    data_ = static_cast<float *>(std::aligned_alloc(kHuge, bytes));
    if (data_ == nullptr) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    madvise(data_, bytes, MADV_HUGEPAGE);
#endif
  }
  ~HugeFloats() { std::free(data_); }
  HugeFloats(const HugeFloats &) = delete;
  HugeFloats &operator=(const HugeFloats &) = delete;
  float *data() { return data_; }
  size_t size() const { return count_; }

 private:
  float *data_;
  size_t count_;
};

inline double seconds(const std::function<void()> &f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Runs each function once per repetition, interleaved, after one warm-up
// round, and returns the median time of each. `before(i)` (untimed) runs
// before every timed call of fns[i], e.g. to flush caches.
inline std::vector<double> interleaved_medians(const std::vector<std::function<void()>> &fns, int reps,
                                               const std::function<void(size_t)> &before = [](size_t) {}) {
  for (auto &f : fns) f();
  std::vector<std::vector<double>> times(fns.size());
  for (int r = 0; r < reps; ++r)
    for (size_t i = 0; i < fns.size(); ++i) {
      before(i);
      times[i].push_back(seconds(fns[i]));
    }
  std::vector<double> out;
  for (auto &t : times) out.push_back(median(t));
  return out;
}

// A 4-bit [n, k] tensor with random codes, scale 2^-8 and zero 8 in every
// group, imported as a GPTQ v1 checkpoint (the kernels do not care how the
// codes were chosen). Aborts on failure.
inline gptq_qtensor *random_4bit_tensor(long k, long n, int group, std::mt19937 &rng) {
  gptq_checkpoint_sizes sz{};
  if (gptq_checkpoint_sizes_for(n, k, 4, group, &sz) != GPTQ_OK) std::abort();
  std::vector<int32_t> qweight(sz.qweight_rows * sz.qweight_cols), qzeros(sz.qzeros_rows * sz.qzeros_cols);
  std::vector<uint16_t> scales(sz.scales_rows * sz.scales_cols, 0x1C00);  // fp16 0.00390625
  for (auto &v : qweight) v = static_cast<int32_t>(rng());
  for (auto &v : qzeros) v = 0x77777777;  // stored zero − 1 = 7 (v1): zero 8
  gptq_checkpoint_tensors t{qweight.data(), (int64_t)qweight.size(), qzeros.data(), (int64_t)qzeros.size(),
                            scales.data(),  (int64_t)scales.size(),  nullptr,       0};
  gptq_qtensor *q = nullptr;
  if (gptq_qtensor_import(n, k, 4, group, GPTQ_FORMAT_V1, &t, &q) != GPTQ_OK) {
    std::fprintf(stderr, "%s\n", gptq_last_error());
    std::abort();
  }
  return q;
}

}  // namespace bench
