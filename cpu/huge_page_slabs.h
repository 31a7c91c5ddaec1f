// Long-lived arrays smaller than a huge page (the matmul layout's codes of
// every layer of a small model, and of the narrow layers of a large one),
// packed together into shared slabs of four 2 MiB transparent huge pages.
// Alone, each such array sits on 4 KiB pages (only arrays of 2 MiB or more
// get huge pages of their own, see LargeBuffer), and a decode step, which
// streams every layer's codes once, then misses the TLB every 4 KiB, where
// the CPU's prefetchers also stop and start over (bench/RESULTS.md,
// "Small layers' codes on shared huge pages").
//
// Space freed in a slab is handed out again (first fit, free neighbours
// merged), and a slab with nothing left in it goes back to the system, so
// what the slabs hold beyond the live arrays is the gaps between them.
// Any thread may allocate and free.
#pragma once

#include <cstddef>

namespace gptq::cpu {

constexpr size_t kHugePageBytes = size_t(2) << 20;

struct HugePageSlab;

// 64-byte-aligned, uninitialized room for `bytes` (0 < bytes <=
// kHugePageBytes) in a slab; *slab is set to the slab, which slab_free
// needs. Throws std::bad_alloc.
void *slab_allocate(size_t bytes, HugePageSlab **slab);
// Hands back what slab_allocate(bytes, &slab) returned.
void slab_free(void *p, size_t bytes, HugePageSlab *slab);
// Slabs held now.
size_t slabs_held();

}  // namespace gptq::cpu
