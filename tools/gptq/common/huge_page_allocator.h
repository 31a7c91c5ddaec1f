// std::vector's allocator for large arrays the CPU streams through again and
// again (a KV cache, a 16-bit lm_head): arrays of 2 MiB or more are 2 MiB-aligned and ask for
// transparent huge pages (honoured when THP is "madvise" or "always"). On
// 4 KiB pages such a read misses the TLB at every page, and the CPU's
// prefetchers, which stop at page boundaries, start over at each
// (bench/RESULTS.md, "Small layers' codes on shared huge pages").
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace gptqtool {

template <typename T>
struct HugePageAllocator {
  using value_type = T;
  HugePageAllocator() = default;
  template <typename U>
  HugePageAllocator(const HugePageAllocator<U> &) {}

  T *allocate(size_t n) {
    constexpr size_t kHuge = size_t(2) << 20;
    if (n > (SIZE_MAX - kHuge) / sizeof(T)) throw std::bad_alloc();
    const size_t bytes = n * sizeof(T);
    const bool huge = bytes >= kHuge;
    void *p = nullptr;
    if (posix_memalign(&p, huge ? kHuge : 64, bytes) != 0) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (huge) madvise(p, bytes / kHuge * kHuge, MADV_HUGEPAGE);  // advice only
#endif
    return static_cast<T *>(p);
  }
  void deallocate(T *p, size_t) { std::free(p); }

  template <typename U>
  bool operator==(const HugePageAllocator<U> &) const {
    return true;
  }
  template <typename U>
  bool operator!=(const HugePageAllocator<U> &) const {
    return false;
  }
};

template <typename T>
using HugePageVector = std::vector<T, HugePageAllocator<T>>;

}  // namespace gptqtool
