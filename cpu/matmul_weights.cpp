#include "matmul_weights.h"

#include <algorithm>
#include <cstring>
#include <memory>

#include "thread_pool.h"

namespace gptq::cpu {

namespace {
int codes_per_byte_for(int bits) { return bits <= 2 ? 4 : bits <= 4 ? 2 : 1; }
}  // namespace

uint8_t CpuMatmulWeights::code(int64_t row, int64_t p) const {
  const int64_t tile = row / kTileRows, i = row % kTileRows;
  const int64_t chunk = p / chunk_columns(), c = p % chunk_columns();
  const uint8_t byte = tile_codes(tile)[chunk * kChunkBytes + 4 * i + c % 4];
  const int field = static_cast<int>(c / 4);
  return static_cast<uint8_t>((byte >> (field * field_bits())) & ((1u << field_bits()) - 1));
}

void CpuMatmulWeights::read_codes(int64_t begin, int64_t end, uint8_t *out) const {
  const int64_t width = chunk_columns();
  const int field = field_bits();
  const uint32_t mask = (1u << field) - 1u, byte_masks = mask * 0x01010101u;
  for (int64_t r = begin; r < end; ++r) {
    const uint8_t *row = tile_codes(r / kTileRows) + 4 * (r % kTileRows);
    uint8_t *dst = out + (r - begin) * k;
    for (int64_t chunk = 0; chunk < chunks(); ++chunk) {
      const uint8_t *bytes = row + chunk * kChunkBytes;
      if (consecutive_from[chunk] >= 0) {
        // Field f of byte q is the code of column 4f + q (see prepare).
        uint32_t word;
        std::memcpy(&word, bytes, 4);
        for (int f = 0; f < codes_per_byte; ++f) {
          const uint32_t four = (word >> (f * field)) & byte_masks;
          std::memcpy(dst + consecutive_from[chunk] + 4 * f, &four, 4);
        }
        continue;
      }
      const int32_t *columns = &source[chunk * width];
      for (int64_t c = 0; c < width; ++c)
        if (columns[c] >= 0)
          dst[columns[c]] = static_cast<uint8_t>((bytes[c % 4] >> (c / 4 * field)) & mask);
    }
  }
}

void CpuMatmulWeights::read_group_params(int64_t begin, int64_t end, uint16_t *scales,
                                         int32_t *zeros) const {
  const int64_t rows = end - begin;
  for (int64_t t = 0; t < slots(); ++t)
    for (int64_t r = begin; r < end; ++r) {
      const int64_t at = ((r / kTileRows) * slots() + t) * kTileRows + r % kTileRows;
      scales[t * rows + (r - begin)] = scale[at];
      zeros[t * rows + (r - begin)] = uniform_zero >= 0 ? uniform_zero : zero[at];
    }
}

std::unique_ptr<CpuMatmulWeights> prepare_matmul_weights(const QTensorData &q) {
  auto m = std::make_unique<CpuMatmulWeights>();
  m->bits = q.bits;
  m->codes_per_byte = codes_per_byte_for(q.bits);
  m->n = q.out_features;
  m->k = q.in_features;
  m->tiles = (m->n + kTileRows - 1) / kTileRows;
  // Columns of each group, in increasing column order, group by group.
  std::vector<std::vector<int32_t>> members(static_cast<size_t>(q.groups));
  for (int64_t j = 0; j < q.in_features; ++j)
    members[q.g_idx[j]].push_back(static_cast<int32_t>(j));
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
  for (int64_t p = 0; p < m->kp; ++p) {
    const int64_t column = m->source[p];
    if (!m->source_runs.empty()) {
      SourceRun &last = m->source_runs.back();
      const bool both_padding = column < 0 && last.column < 0;
      const bool consecutive = column >= 0 && last.column >= 0 && column == last.column + last.length;
      if (both_padding || consecutive) {
        ++last.length;
        continue;
      }
    }
    m->source_runs.push_back({p, 1, column});
  }
  const int64_t slots = m->slots();
  m->scale.assign(static_cast<size_t>(m->tiles * slots * kTileRows), 0);
  m->zero.assign(static_cast<size_t>(m->tiles * slots * kTileRows), 0);
  for (int64_t r = 0; r < m->n; ++r)
    for (int64_t t = 0; t < slots; ++t) {
      const int64_t at = ((r / kTileRows) * slots + t) * kTileRows + r % kTileRows;
      m->scale[at] = q.scales[slot_group[t] * m->n + r];
      m->zero[at] = static_cast<uint16_t>(q.zeros[slot_group[t] * m->n + r]);  // 0 .. 2^bits
    }
  if (m->n > 0 && slots > 0) {
    const int32_t first = q.zeros[slot_group[0] * m->n];
    bool uniform = true;
    for (int64_t t = 0; t < slots && uniform; ++t)
      for (int64_t r = 0; r < m->n && uniform; ++r) uniform = q.zeros[slot_group[t] * m->n + r] == first;
    if (uniform) {  // then the one value stands in for the array
      m->uniform_zero = first;
      m->shared_zeros.fill(static_cast<uint16_t>(first));
      m->zero = std::vector<uint16_t>();
    }
  }
  m->codes = LargeBuffer<uint8_t>(static_cast<size_t>(m->tiles * m->chunks() * kChunkBytes),
                                  SmallPlacement::kPackedSmall);
  const int64_t width = m->chunk_columns(), chunks = m->chunks();
  const int field = m->field_bits();
  std::vector<int64_t> &consecutive_from = m->consecutive_from;
  consecutive_from.assign(static_cast<size_t>(chunks), -1);
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    const int32_t *source = &m->source[chunk * width];
    bool consecutive = source[0] >= 0;
    for (int64_t c = 1; c < width && consecutive; ++c) consecutive = source[c] == source[0] + c;
    if (consecutive) consecutive_from[chunk] = source[0];
  }
  // Tile by tile on the pool (rows of one tile share cache lines); each
  // task zeroes its tile first, so the first touch is parallel too.
  ThreadPool::instance().parallel_for(m->tiles, 0, [&](int64_t tile) {
    std::memset(&m->codes[tile * chunks * kChunkBytes], 0,
                static_cast<size_t>(chunks * kChunkBytes));
    const int64_t r0 = tile * kTileRows, r1 = std::min(m->n, r0 + kTileRows);
    const CodeRows rows(q, r0, r1);
    for (int64_t r = r0; r < r1; ++r) {
      const uint8_t *src = rows.row(r);
      uint8_t *row = &m->codes[tile * chunks * kChunkBytes] + 4 * (r % kTileRows);
      const int32_t *source = m->source.data();
      for (int64_t chunk = 0; chunk < chunks; ++chunk, source += width) {
        uint8_t *dst = row + chunk * kChunkBytes;
        if (consecutive_from[chunk] >= 0) {
          // Byte q of a field's load is the code of column 4f + q, below
          // 2^field, so shifting it by f·field keeps it inside byte q.
          uint32_t word = 0;
          for (int f = 0; f < m->codes_per_byte; ++f) {
            uint32_t four;
            std::memcpy(&four, src + consecutive_from[chunk] + 4 * f, 4);
            word |= four << (f * field);
          }
          std::memcpy(dst, &word, 4);
          continue;
        }
        for (int64_t c = 0; c < width; ++c)
          if (source[c] >= 0)
            dst[c % 4] |= static_cast<uint8_t>(src[source[c]] << (static_cast<int>(c / 4) * field));
      }
    }
  });
  return m;
}

}  // namespace gptq::cpu
