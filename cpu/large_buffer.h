// An uninitialized array for the solver's big work matrices (the K×K
// Cholesky factor: 485 MB for K = 11008). std::vector value-initializes,
// and first-touching 4 KiB pages one fault at a time cost about 0.7 s for such
// a factor on the VMs measured (bench/RESULTS.md); here nothing is written
// before the solver writes it, and on Linux arrays of 2 MiB or more are
// 2 MiB-aligned and ask for transparent huge pages (honoured when THP is
// "madvise" or "always"; elsewhere it is plain memory).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace gptq::cpu {

template <typename T>
class LargeBuffer {
 public:
  LargeBuffer() = default;
  explicit LargeBuffer(size_t count) : count_(count) {
    constexpr size_t kHuge = size_t(2) << 20, kLine = 64;
    if (count == 0) return;
    if (count > SIZE_MAX / sizeof(T) - kHuge) throw std::bad_alloc();
    // Arrays under one huge page stay ordinary (a huge page would make the
    // first touch zero 2 MiB for a small layer's few KiB).
    const bool huge = count * sizeof(T) >= kHuge;
    const size_t align = huge ? kHuge : kLine;
    const size_t bytes = (count * sizeof(T) + align - 1) / align * align;
    data_ = static_cast<T *>(std::aligned_alloc(align, bytes));
    if (data_ == nullptr) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (huge) madvise(data_, bytes, MADV_HUGEPAGE);  // advice only: failure changes nothing
#endif
  }
  ~LargeBuffer() { std::free(data_); }
  LargeBuffer(LargeBuffer &&o) noexcept : data_(o.data_), count_(o.count_) {
    o.data_ = nullptr;
    o.count_ = 0;
  }
  LargeBuffer &operator=(LargeBuffer &&o) noexcept {
    if (this != &o) {
      std::free(data_);
      data_ = o.data_;
      count_ = o.count_;
      o.data_ = nullptr;
      o.count_ = 0;
    }
    return *this;
  }
  LargeBuffer(const LargeBuffer &) = delete;
  LargeBuffer &operator=(const LargeBuffer &) = delete;

  T *data() { return data_; }
  const T *data() const { return data_; }
  size_t size() const { return count_; }
  T &operator[](size_t i) { return data_[i]; }
  const T &operator[](size_t i) const { return data_[i]; }

 private:
  T *data_ = nullptr;
  size_t count_ = 0;
};

}  // namespace gptq::cpu
