#include "huge_page_slabs.h"

#include <cstdlib>
#include <iterator>
#include <map>
#include <mutex>
#include <new>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace gptq::cpu {

namespace {
constexpr size_t kAlign = 64;  // a cache line: where the kernels' loads start
// Four huge pages a slab: with one, the gap a slab's last array leaves (up
// to the size of the next) lost about a sixth of a small model's slabs.
constexpr size_t kSlabBytes = 4 * kHugePageBytes;
}  // namespace

struct HugePageSlab {
  char *base = nullptr;
  std::map<size_t, size_t> free;  // offset → length; no two touch
  size_t in_use = 0;              // bytes handed out
};

namespace {

struct Slabs {
  std::mutex mutex;
  std::vector<HugePageSlab *> all;
};

Slabs &slabs() {
  static Slabs *s = new Slabs;  // never destroyed: arrays may outlive static destructors
  return *s;
}

size_t rounded(size_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }

}  // namespace

void *slab_allocate(size_t bytes, HugePageSlab **slab) {
  if (bytes == 0 || bytes > kHugePageBytes) throw std::bad_alloc();
  bytes = rounded(bytes);
  Slabs &s = slabs();
  const std::lock_guard<std::mutex> lock(s.mutex);
  for (HugePageSlab *candidate : s.all) {
    for (auto it = candidate->free.begin(); it != candidate->free.end(); ++it) {
      if (it->second < bytes) continue;
      const size_t offset = it->first, left = it->second - bytes;
      if (left > 0) candidate->free.emplace(offset + bytes, left);  // before the erase: may throw
      candidate->free.erase(it);
      candidate->in_use += bytes;
      *slab = candidate;
      return candidate->base + offset;
    }
  }
  void *p = nullptr;
  if (posix_memalign(&p, kHugePageBytes, kSlabBytes) != 0) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  madvise(p, kSlabBytes, MADV_HUGEPAGE);  // advice only: failure changes nothing
#endif
  auto *fresh = new (std::nothrow) HugePageSlab;
  if (fresh == nullptr) {
    std::free(p);
    throw std::bad_alloc();
  }
  fresh->base = static_cast<char *>(p);
  try {
    fresh->free.emplace(bytes, kSlabBytes - bytes);
    s.all.push_back(fresh);
  } catch (...) {
    std::free(p);
    delete fresh;
    throw;
  }
  fresh->in_use = bytes;
  *slab = fresh;
  return fresh->base;
}

void slab_free(void *p, size_t bytes, HugePageSlab *slab) {
  if (p == nullptr || slab == nullptr) return;
  bytes = rounded(bytes);
  Slabs &s = slabs();
  const std::lock_guard<std::mutex> lock(s.mutex);
  slab->in_use -= bytes;
  if (slab->in_use == 0) {  // nothing left in it: the whole slab goes
    for (auto it = s.all.begin(); it != s.all.end(); ++it) {
      if (*it == slab) {
        s.all.erase(it);
        break;
      }
    }
    std::free(slab->base);
    delete slab;
    return;
  }
  size_t offset = static_cast<size_t>(static_cast<char *>(p) - slab->base), length = bytes;
  auto next = slab->free.lower_bound(offset);
  if (next != slab->free.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second == offset) {  // merge with the gap before
      offset = prev->first;
      length += prev->second;
      slab->free.erase(prev);
    }
  }
  if (next != slab->free.end() && offset + length == next->first) {  // and the one after
    length += next->second;
    slab->free.erase(next);
  }
  // Should the map fail to take the gap (out of memory), its bytes stay
  // unused until the slab empties; in_use already counts them free, so the
  // slab is still released then.
  try {
    slab->free.emplace(offset, length);
  } catch (...) {
  }
}

size_t slabs_held() {
  Slabs &s = slabs();
  const std::lock_guard<std::mutex> lock(s.mutex);
  return s.all.size();
}

}  // namespace gptq::cpu
