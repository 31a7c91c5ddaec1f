// The order a layer's columns are quantized in, and the group each position
// belongs to: one definition for every backend (the CPU solver and the CUDA
// plugin both include it), so that act-order means the same everywhere.
//
//  - No act-order: columns in their own order; position p is in group
//    p / group_size.
//  - Act-order (desc_act): columns by descending Hessian diagonal. Position
//    p is in group p / group_size (g_idx then follows the order), or with
//    static groups in its column's own group.
//  - Group-aware act-order (GPTQModel's act_group_aware): the groups stay
//    the original column ranges [g·size, (g+1)·size), so g_idx is j / size
//    as without act-order; they are taken by descending largest diagonal,
//    the last, shorter group (when size does not divide K) at the end, and
//    within each group its columns by descending diagonal. Every group then
//    starts at a multiple of size, where its parameters are found, as they
//    are without act-order.
//  - Group-aware act-order with super-blocks (the K-quants of GGUF, whose
//    groups are sub-blocks of super-blocks that share a scale): the same one
//    level up. The super-blocks by descending largest diagonal, within each
//    its groups by descending largest diagonal, within each group its
//    columns by descending diagonal; so every super-block is taken whole,
//    starting at a multiple of its size (K must be one), where its scale
//    is found.
// Ties keep their original order, so that results do not depend on the sort.
#pragma once

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <vector>

namespace gptq {

struct ColumnOrder {
  std::vector<int64_t> perm;      // perm[p]: the column quantized p-th
  std::vector<int32_t> group_of;  // group_of[p]: the group of position p
};

// diag: the Hessian's diagonal (dead columns already set to 1); group_size:
// columns per group, K for one group; super_size: columns per super-block
// for group-aware act-order, or 0 for none.
template <typename T>
ColumnOrder column_order(const std::vector<T> &diag, int64_t group_size, bool act_order,
                         bool group_aware, bool static_groups, int64_t super_size = 0) {
  const int64_t k = static_cast<int64_t>(diag.size());
  ColumnOrder order;
  order.perm.resize(static_cast<size_t>(k));
  std::iota(order.perm.begin(), order.perm.end(), 0);
  auto by_diagonal = [&](int64_t a, int64_t b) { return diag[a] > diag[b]; };
  // The largest diagonal of each run of `unit` columns.
  auto largest_per = [&](int64_t unit) {
    std::vector<T> largest(static_cast<size_t>(k / unit));
    for (int64_t u = 0; u < k / unit; ++u)
      largest[u] = *std::max_element(diag.begin() + u * unit, diag.begin() + (u + 1) * unit);
    return largest;
  };
  if (act_order) {
    std::stable_sort(order.perm.begin(), order.perm.end(), by_diagonal);
  } else if (group_aware && super_size > 0) {
    const std::vector<T> super_largest = largest_per(super_size), group_largest = largest_per(group_size);
    // Larger first; equal ones in column order (the sort is stable and
    // starts from the column order).
    std::stable_sort(order.perm.begin(), order.perm.end(), [&](int64_t a, int64_t b) {
      const int64_t sa = a / super_size, sb = b / super_size;
      if (sa != sb) return super_largest[sa] > super_largest[sb] ||
                           (super_largest[sa] == super_largest[sb] && sa < sb);
      const int64_t ga = a / group_size, gb = b / group_size;
      if (ga != gb) return group_largest[ga] > group_largest[gb] ||
                           (group_largest[ga] == group_largest[gb] && ga < gb);
      return diag[a] > diag[b];
    });
  } else if (group_aware) {
    const int64_t full = k / group_size;  // groups of group_size columns
    std::vector<int64_t> groups(static_cast<size_t>(full));
    std::vector<T> largest(static_cast<size_t>(full));
    for (int64_t g = 0; g < full; ++g) {
      groups[g] = g;
      largest[g] = *std::max_element(diag.begin() + g * group_size,
                                     diag.begin() + (g + 1) * group_size);
    }
    std::stable_sort(groups.begin(), groups.end(),
                     [&](int64_t a, int64_t b) { return largest[a] > largest[b]; });
    int64_t p = 0;
    for (int64_t g : groups)
      for (int64_t j = g * group_size; j < (g + 1) * group_size; ++j) order.perm[p++] = j;
    for (int64_t j = full * group_size; j < k; ++j) order.perm[p++] = j;  // the last group
    for (int64_t start = 0; start < k; start += group_size)
      std::stable_sort(order.perm.begin() + start,
                       order.perm.begin() + std::min(k, start + group_size), by_diagonal);
  }
  order.group_of.resize(static_cast<size_t>(k));
  const bool column_groups = static_groups || group_aware;
  for (int64_t p = 0; p < k; ++p)
    order.group_of[p] = static_cast<int32_t>((column_groups ? order.perm[p] : p) / group_size);
  return order;
}

}  // namespace gptq
