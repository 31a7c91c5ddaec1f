// An uninitialized array for big work matrices and the matmul layout's
// codes. std::vector value-initializes, and first-touching 4 KiB pages one
// fault at a time is slow for arrays of hundreds of MB (bench/RESULTS.md);
// here nothing is written before the owner writes it, and on Linux arrays
// of 2 MiB or more are 2 MiB-aligned and ask for transparent huge pages
// (honoured when THP is "madvise" or "always"; elsewhere it is plain
// memory) for their whole 2 MiB blocks only: a partial last block stays
// on 4 KiB pages, so no array holds more memory than its size rounded up
// to 4 KiB (a long-lived tensor layout of 2.1 MiB would otherwise occupy
// 4 MiB). Smaller arrays that live long and are streamed often may instead
// be packed with others on shared huge pages (kPackedSmall,
// huge_page_slabs.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>

#include "huge_page_slabs.h"

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace gptq::cpu {

// Where an array under 2 MiB goes: its own 4 KiB pages, or a shared slab.
enum class SmallPlacement { kOwnPages, kPackedSmall };

template <typename T>
class LargeBuffer {
 public:
  LargeBuffer() = default;
  explicit LargeBuffer(size_t count, SmallPlacement small = SmallPlacement::kOwnPages)
      : count_(count) {
    constexpr size_t kHuge = kHugePageBytes, kLine = 64;
    if (count == 0) return;
    if (count > SIZE_MAX / sizeof(T) - kHuge) throw std::bad_alloc();
    const size_t size = count * sizeof(T);
    if (size < kHuge && small == SmallPlacement::kPackedSmall) {
      data_ = static_cast<T *>(slab_allocate(size, &slab_));
      return;
    }
    // Arrays under one huge page stay ordinary (a huge page would make the
    // first touch zero 2 MiB for a small layer's few KiB).
    const bool huge = size >= kHuge;
    const size_t bytes = (size + kLine - 1) / kLine * kLine;
    void *p = nullptr;
    if (posix_memalign(&p, huge ? kHuge : kLine, bytes) != 0) throw std::bad_alloc();
    data_ = static_cast<T *>(p);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    // Advice only: failure changes nothing.
    if (huge) madvise(data_, size / kHuge * kHuge, MADV_HUGEPAGE);
#endif
  }
  ~LargeBuffer() { release(); }
  LargeBuffer(LargeBuffer &&o) noexcept : data_(o.data_), count_(o.count_), slab_(o.slab_) {
    o.data_ = nullptr;
    o.count_ = 0;
    o.slab_ = nullptr;
  }
  LargeBuffer &operator=(LargeBuffer &&o) noexcept {
    if (this != &o) {
      release();
      data_ = o.data_;
      count_ = o.count_;
      slab_ = o.slab_;
      o.data_ = nullptr;
      o.count_ = 0;
      o.slab_ = nullptr;
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
  void release() noexcept {
    if (slab_ != nullptr)
      slab_free(data_, count_ * sizeof(T), slab_);
    else
      std::free(data_);
  }

  T *data_ = nullptr;
  size_t count_ = 0;
  HugePageSlab *slab_ = nullptr;  // the shared slab holding data_, if any
};

}  // namespace gptq::cpu
