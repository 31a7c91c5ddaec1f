// Timing helpers for the benchmark programs: repeated runs, medians, and the
// OpenBLAS baselines measured in the same process.
#pragma once

#include <algorithm>
#include <chrono>
#include <functional>
#include <vector>

namespace bench {

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

}  // namespace bench
