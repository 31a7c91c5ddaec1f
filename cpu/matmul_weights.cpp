#include "matmul_weights.h"

#include <memory>

#include "half.h"

namespace gptq::cpu {

std::unique_ptr<PreparedWeights> prepare_matmul_weights(const QTensorData &q) {
  auto m = std::make_unique<CpuMatmulWeights>();
  m->bits = q.bits;
  m->n = q.out_features;
  m->k = q.in_features;
  // Columns of each group, in increasing column order, group by group.
  std::vector<std::vector<int32_t>> members(static_cast<size_t>(q.groups));
  for (int64_t j = 0; j < q.in_features; ++j) members[q.g_idx[j]].push_back(static_cast<int32_t>(j));
  std::vector<int64_t> slot_group;
  m->group_begin.push_back(0);
  for (int64_t g = 0; g < q.groups; ++g) {
    if (members[g].empty()) continue;
    const int64_t padded = (static_cast<int64_t>(members[g].size()) + 31) / 32 * 32;
    for (int64_t i = 0; i < padded; ++i)
      m->source.push_back(i < static_cast<int64_t>(members[g].size()) ? members[g][i] : -1);
    m->group_begin.push_back(m->group_begin.back() + padded);
    slot_group.push_back(g);
  }
  m->kp = m->group_begin.back();
  const int64_t slots = m->slots();
  m->scale.resize(static_cast<size_t>(m->n * slots));
  m->zero.resize(static_cast<size_t>(m->n * slots));
  for (int64_t r = 0; r < m->n; ++r)
    for (int64_t t = 0; t < slots; ++t) {
      m->scale[r * slots + t] = half_to_float(q.scales[slot_group[t] * m->n + r]);
      m->zero[r * slots + t] = static_cast<float>(q.zeros[slot_group[t] * m->n + r]);
    }
  m->codes.assign(static_cast<size_t>(m->n * m->row_bytes()), 0);
  for (int64_t r = 0; r < m->n; ++r) {
    const uint8_t *src = &q.codes[r * m->k];
    uint8_t *dst = &m->codes[r * m->row_bytes()];
    for (int64_t p = 0; p < m->kp; ++p) {
      const uint8_t c = m->source[p] >= 0 ? src[m->source[p]] : 0;
      if (m->bits == 4) {
        const int64_t chunk = p / 32, i = p % 32;
        dst[chunk * 16 + i % 16] |= static_cast<uint8_t>(i < 16 ? c : c << 4);
      } else {
        dst[p] = c;
      }
    }
  }
  return m;
}

}  // namespace gptq::cpu
