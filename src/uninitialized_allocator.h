// An allocator for big arrays that are written in full before they are read
// (a tensor's codes): resize does not zero them, and arrays of 2 MiB or more
// are 2 MiB-aligned and ask for transparent huge pages. Zeroing and then
// overwriting millions of codes cost a first touch of every 4 KiB page
// twice over; on the GPU machine's sandbox a page fault costs microseconds.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <new>
#include <utility>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace gptq {

template <typename T>
struct UninitializedAllocator {
  using value_type = T;

  UninitializedAllocator() = default;
  template <typename U>
  UninitializedAllocator(const UninitializedAllocator<U> &) noexcept {}

  T *allocate(size_t n) {
    constexpr size_t kHuge = size_t(2) << 20, kLine = 64;
    if (n > (SIZE_MAX - kHuge) / sizeof(T)) throw std::bad_alloc();
    const size_t size = n * sizeof(T);
    const bool huge = size >= kHuge;
    void *p = nullptr;
    if (posix_memalign(&p, huge ? kHuge : kLine, (size + kLine - 1) / kLine * kLine) != 0)
      throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (huge) madvise(p, size / kHuge * kHuge, MADV_HUGEPAGE);  // advice only
#endif
    return static_cast<T *>(p);
  }
  void deallocate(T *p, size_t) noexcept { std::free(p); }

  // Value-less construction leaves the element as it is.
  template <typename U>
  void construct(U *p) noexcept {
    ::new (static_cast<void *>(p)) U;
  }
  template <typename U, typename... Args>
  void construct(U *p, Args &&...args) {
    ::new (static_cast<void *>(p)) U(std::forward<Args>(args)...);
  }
};

template <typename T, typename U>
bool operator==(const UninitializedAllocator<T> &, const UninitializedAllocator<U> &) {
  return true;
}
template <typename T, typename U>
bool operator!=(const UninitializedAllocator<T> &, const UninitializedAllocator<U> &) {
  return false;
}

}  // namespace gptq
