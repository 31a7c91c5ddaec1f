#include "model/vector_width.h"

#include <algorithm>
#include <atomic>

namespace gptqtool {

namespace {

int widest_lanes() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return 16;
  if (__builtin_cpu_supports("avx2")) return 8;
#endif
  return 4;
}

std::atomic<int> lanes_cap{16};

}  // namespace

int vector_lanes() {
  static const int widest = widest_lanes();
  return std::min(widest, lanes_cap.load(std::memory_order_relaxed));
}

void cap_vector_lanes(int lanes) { lanes_cap.store(lanes, std::memory_order_relaxed); }

}  // namespace gptqtool
