// A quantized tensor laid out for the CPU matmul kernels, built once when the
// tensor is made (the checkpoint layout stays the standard one).
//
// Input columns are reordered so that every group is contiguous (act-order
// tensors then permute x at run time instead of gathering weights), and each
// group is padded to a multiple of 32 columns (padding has code 0 and is
// multiplied by x = 0). 4-bit codes are packed two per byte in chunks of 32:
// byte i of a chunk holds code i in its low nibble and code i+16 in its high
// nibble, so one 16-byte load unpacks into two runs of 16 consecutive codes.
// Other widths keep one code per byte.
#pragma once

#include <cstdint>
#include <vector>

#include "backend.h"
#include "qtensor.h"

namespace gptq::cpu {

struct CpuMatmulWeights final : PreparedWeights {
  int bits = 0;
  int64_t n = 0, k = 0;
  int64_t kp = 0;                     // padded, reordered column count (multiple of 32)
  std::vector<int32_t> source;        // [kp]: original column of each position, −1 for padding
  std::vector<int64_t> group_begin;   // [slots + 1]: position ranges of the group slots
  std::vector<float> scale, zero;     // [n, slots]: per output row, per group slot
  std::vector<uint8_t> codes;         // [n, kp/2] (4-bit) or [n, kp]

  int64_t slots() const { return static_cast<int64_t>(group_begin.size()) - 1; }
  int64_t row_bytes() const { return bits == 4 ? kp / 2 : kp; }
};

std::unique_ptr<PreparedWeights> prepare_matmul_weights(const QTensorData &q);

}  // namespace gptq::cpu
