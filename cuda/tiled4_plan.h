// Host-side planning of the Tiled4 matmul layout (matmul_layout.h): the
// order of the input columns (sorted by group, stable, padded to a multiple
// of 64) and the group of each pair of tiles (32 columns, which the kernel
// reads x for in one 16-byte load per lane), or the finding that some pair
// would hold two groups and the tensor needs the generic layout. Plain C++,
// so CPU tests check it.
#pragma once

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <vector>

namespace gptq_cuda {

constexpr int64_t kTileCols = 16;   // input columns per tensor-core tile
constexpr int64_t kPairCols = 32;   // two tiles: one 16-byte load of x per lane
constexpr int64_t kChunkCols = 64;  // columns per 16-byte load of weights per lane (4 tiles)
constexpr int64_t kStripeRows = 16; // output rows per tile

struct Tiled4Plan {
  bool applies = false;
  int64_t padded_k = 0;
  bool identity = true;               // column j is column j for every j < K
  std::vector<int32_t> column_of;     // [padded_k]: original column, −1 = padding
  std::vector<int32_t> pair_group;    // [padded_k / 32]
};

inline Tiled4Plan plan_tiled4(int32_t bits, int64_t k, const int32_t *g_idx) {
  Tiled4Plan plan;
  if (bits != 4) return plan;
  std::vector<int32_t> order(static_cast<size_t>(k));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int32_t a, int32_t b) { return g_idx[a] < g_idx[b]; });
  plan.padded_k = (k + kChunkCols - 1) / kChunkCols * kChunkCols;
  plan.column_of.assign(static_cast<size_t>(plan.padded_k), -1);
  for (int64_t j = 0; j < k; ++j) {
    plan.column_of[j] = order[j];
    if (order[j] != j) plan.identity = false;
  }
  plan.pair_group.assign(static_cast<size_t>(plan.padded_k / kPairCols), 0);
  for (int64_t t = 0; t * kPairCols < k; ++t) {
    const int32_t g = g_idx[order[t * kPairCols]];
    for (int64_t j = t * kPairCols; j < std::min(k, (t + 1) * kPairCols); ++j)
      if (g_idx[order[j]] != g) return plan;  // two groups in one pair of tiles
    plan.pair_group[t] = g;
  }
  plan.applies = true;
  return plan;
}

}  // namespace gptq_cuda
