// A quantized tensor laid out for the CPU matmul kernels, built once when the
// tensor is made (the checkpoint layout stays the standard one).
//
// Input columns are reordered so that every group is contiguous (act-order
// tensors then permute x at run time instead of gathering weights), and each
// group is padded to a multiple of 32 columns (padding has code 0 and is
// multiplied by x = 0).
//
// Output rows come in tiles of 16, so that one 512-bit vector holds one value
// per row of a tile: the kernels broadcast an activation (or four int8
// activations) to all lanes and multiply it with 16 rows' codes at once, and
// the 16 results of a tile are stored with one vector store, with no
// horizontal sums and no per-row bookkeeping. A tile's codes are one stream
// of 64-byte chunks; a chunk is 16 rows × 4 bytes (row i in bytes 4i..4i+3)
// and covers 4 · codes_per_byte consecutive columns: byte q of a row holds,
// in its bit field f (f = 0 lowest), the code of column 4f + q. So one
// 64-byte load, one shift and one mask give 16 rows × 4 columns of codes,
// one byte each, which is what VNNI's dpbusd multiplies with four int8
// activations. 3- and 4-bit codes take 4-bit fields (two per byte), 2-bit
// codes 2-bit fields, wider codes a whole byte. Rows past out_features in
// the last tile have code 0 and scale 0 and are never stored.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "backend.h"
#include "large_buffer.h"
#include "qtensor.h"

namespace gptq::cpu {

constexpr int64_t kTileRows = 16;
constexpr int64_t kChunkBytes = 64;

// Positions [begin, begin + length) of the padded column order that hold
// consecutive columns of x from `column` on, or padding (column −1): x is
// reordered a stretch at a time (without act-order, one stretch per group).
struct SourceRun {
  int64_t begin, length, column;
};

// The layout holds every code of the tensor, so it can stand in for its
// bytes (CodeSource), and, where every group has a slot, for its scales
// and zeros too (GroupParamSource).
struct CpuMatmulWeights final : PreparedWeights, CodeSource, GroupParamSource {
  int bits = 0;
  int codes_per_byte = 1;  // 1, 2 or 4
  int64_t n = 0, k = 0;
  int64_t kp = 0;                    // padded, reordered column count (multiple of 32)
  int64_t tiles = 0;                 // ceil(n / 16)
  std::vector<int32_t> source;       // [kp]: original column of each position, −1 for padding
  std::vector<SourceRun> source_runs;  // `source` as stretches, in position order
  // [chunks]: the first column of each chunk whose columns are consecutive
  // columns of x (every chunk without act-order, past group padding), −1 for
  // the others; a row's codes of those are one 32-bit word per bit field.
  std::vector<int64_t> consecutive_from;
  std::vector<int64_t> group_begin;  // [slots + 1]: position ranges of the group slots
  // [tiles, slots, 16]: per group slot, per row of a tile, the scale's fp16
  // bits (what the tensor holds) and the integer zero, 4 bytes where two
  // floats took 8: at group 32 they are read beside every 16 bytes of 4-bit
  // codes, a third of what a batch-1 matmul streams as floats.
  std::vector<uint16_t> scale, zero;
  // The zero every group of every row shares, as symmetric quantization
  // gives (2^(bits−1)); −1 when they differ. The int8 kernels then subtract
  // it in the integer sums, where it costs no operation of its own, and
  // `zero` is left empty (tile_zeros reads shared_zeros instead).
  int32_t uniform_zero = -1;
  std::array<uint16_t, kTileRows> shared_zeros{};  // uniform_zero in every lane
  LargeBuffer<uint8_t> codes;        // [tiles, chunks, 64]; on huge pages, shared when small

  int64_t slots() const { return static_cast<int64_t>(group_begin.size()) - 1; }
  int field_bits() const { return 8 / codes_per_byte; }
  int64_t chunk_columns() const { return 4 * codes_per_byte; }
  int64_t chunks() const { return kp / chunk_columns(); }
  const uint8_t *tile_codes(int64_t tile) const { return &codes[tile * chunks() * kChunkBytes]; }
  // Where the kernels read tile `tile`'s zeros, slot t's kTileRows at
  // t · zero_step(): the tensor's own, or, with a uniform zero, one row of
  // them read for every slot, which keeps them out of a matmul's stream
  // from memory (at group 32 they were a tenth of a batch-1 matmul's bytes).
  const uint16_t *tile_zeros(int64_t tile) const {
    return uniform_zero >= 0 ? shared_zeros.data() : &zero[tile * slots() * kTileRows];
  }
  int64_t zero_step() const { return uniform_zero >= 0 ? 0 : kTileRows; }
  // The code of row `row` (within the tensor) at padded position p.
  uint8_t code(int64_t row, int64_t p) const;
  void read_codes(int64_t begin, int64_t end, uint8_t *out) const override;
  // Slot t holds group t when every group has columns (slots() equals the
  // tensor's groups); only then may this stand in for the scales and zeros.
  void read_group_params(int64_t begin, int64_t end, uint16_t *scales,
                         int32_t *zeros) const override;
};

std::unique_ptr<CpuMatmulWeights> prepare_matmul_weights(const QTensorData &q);

}  // namespace gptq::cpu
