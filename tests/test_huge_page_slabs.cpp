// The shared huge-page slabs that hold small matmul layouts' codes
// (cpu/huge_page_slabs.h, built into this suite): room handed out aligned
// and apart, gaps reused and merged, slabs returned once empty, from any
// number of threads.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <new>
#include <random>
#include <thread>
#include <utility>
#include <vector>

#include "huge_page_slabs.h"
#include "large_buffer.h"

namespace {

using gptq::cpu::HugePageSlab;
using gptq::cpu::kHugePageBytes;
using gptq::cpu::slab_allocate;
using gptq::cpu::slab_free;
using gptq::cpu::slabs_held;

struct Block {
  char *p;
  size_t bytes;
  HugePageSlab *slab;
};

Block take(size_t bytes) {
  HugePageSlab *slab = nullptr;
  char *p = static_cast<char *>(slab_allocate(bytes, &slab));
  return {p, bytes, slab};
}

void give(const Block &b) { slab_free(b.p, b.bytes, b.slab); }

}  // namespace

TEST(HugePageSlabs, RoomIsAlignedApartAndReturnedWhenEmpty) {
  const size_t held = slabs_held();
  std::vector<Block> blocks;
  for (const size_t bytes : {size_t{1}, size_t{63}, size_t{64}, size_t{65}, size_t{4096},
                             size_t{300000}, kHugePageBytes - 1, kHugePageBytes})
    blocks.push_back(take(bytes));
  EXPECT_GT(slabs_held(), held);
  for (size_t i = 0; i < blocks.size(); ++i) {
    EXPECT_EQ(reinterpret_cast<uintptr_t>(blocks[i].p) % 64, 0u) << i;
    std::memset(blocks[i].p, static_cast<int>(i + 1), blocks[i].bytes);
  }
  for (size_t i = 0; i < blocks.size(); ++i) {
    for (size_t j = 0; j < blocks.size(); ++j) {
      if (i == j) continue;
      const bool apart = blocks[i].p + blocks[i].bytes <= blocks[j].p ||
                         blocks[j].p + blocks[j].bytes <= blocks[i].p;
      EXPECT_TRUE(apart) << i << " and " << j << " overlap";
    }
    for (size_t b = 0; b < blocks[i].bytes; b += 997)
      ASSERT_EQ(blocks[i].p[b], static_cast<char>(i + 1)) << "block " << i << " overwritten";
  }
  for (const Block &b : blocks) give(b);
  EXPECT_EQ(slabs_held(), held);
}

TEST(HugePageSlabs, FreedRoomIsReusedAndNeighboursMerge) {
  const size_t held = slabs_held();
  const size_t mib = size_t{1} << 20;
  const Block a = take(mib), b = take(mib), c = take(mib);
  ASSERT_EQ(a.slab, b.slab);  // a slab holds several huge pages
  ASSERT_EQ(b.slab, c.slab);
  EXPECT_EQ(b.p, a.p + mib);
  give(b);
  const Block again = take(mib / 2);  // into b's gap, the first that fits
  EXPECT_EQ(again.p, b.p);
  give(again);  // merges with the rest of b's gap, after it
  give(c);      // merges with b's gap before it and the slab's free tail after it
  const Block joined = take(kHugePageBytes);
  EXPECT_EQ(joined.p, b.p);
  EXPECT_EQ(slabs_held(), held + 1);
  give(joined);
  give(a);
  EXPECT_EQ(slabs_held(), held);
}

TEST(HugePageSlabs, SizesOutsideASlabsRangeAreRefused) {
  HugePageSlab *slab = nullptr;
  EXPECT_THROW(slab_allocate(0, &slab), std::bad_alloc);
  EXPECT_THROW(slab_allocate(kHugePageBytes + 1, &slab), std::bad_alloc);
}

TEST(HugePageSlabs, PackedLargeBuffersMoveAndFreeTheirRoom) {
  using gptq::cpu::LargeBuffer;
  using gptq::cpu::SmallPlacement;
  const size_t held = slabs_held();
  {
    LargeBuffer<uint16_t> small(1000, SmallPlacement::kPackedSmall);
    EXPECT_EQ(slabs_held(), held + 1);
    small[999] = 7;
    LargeBuffer<uint16_t> moved(std::move(small));
    EXPECT_EQ(moved[999], 7);
    EXPECT_EQ(small.data(), nullptr);
    LargeBuffer<uint16_t> assigned;
    assigned = std::move(moved);
    EXPECT_EQ(assigned.size(), 1000u);
    // An array of a huge page or more keeps its own pages.
    LargeBuffer<uint8_t> large(kHugePageBytes, SmallPlacement::kPackedSmall);
    EXPECT_EQ(slabs_held(), held + 1);
  }
  EXPECT_EQ(slabs_held(), held);
}

TEST(HugePageSlabs, ThreadsTakeAndGiveAtOnce) {
  const size_t held = slabs_held();
  std::vector<std::thread> threads;
  std::vector<int> bad(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t, &bad] {
      std::mt19937 rng(static_cast<unsigned>(t));
      std::uniform_int_distribution<size_t> size(1, 400000);
      std::vector<std::pair<Block, char>> live;
      for (int i = 0; i < 3000; ++i) {
        if (!live.empty() && (rng() % 2 == 0 || live.size() > 40)) {
          const size_t at = rng() % live.size();
          const auto [b, fill] = live[at];
          for (size_t k = 0; k < b.bytes; k += 509) bad[t] += b.p[k] != fill;
          bad[t] += b.p[b.bytes - 1] != fill;
          give(b);
          live.erase(live.begin() + static_cast<std::ptrdiff_t>(at));
        } else {
          const Block b = take(size(rng));
          const char fill = static_cast<char>(rng());
          std::memset(b.p, fill, b.bytes);
          live.emplace_back(b, fill);
        }
      }
      for (const auto &[b, fill] : live) give(b);
    });
  }
  for (auto &th : threads) th.join();
  for (int t = 0; t < 4; ++t) EXPECT_EQ(bad[t], 0) << "thread " << t;
  EXPECT_EQ(slabs_held(), held);
}
