// A quantized tensor's data, whatever backend runs it: integer codes with
// per-group fp16 scales and integer zeros, in the original column order.
// Immutable once built, so it may be shared by threads (see gptq.h). The
// handle that pairs it with a backend is in qtensor_handle.h.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "gptq.h"
#include "uninitialized_allocator.h"

namespace gptq {

// Something that holds all of a tensor's codes in a layout of its own: the
// CPU backend's matmul layout, for tensors imported onto it, so that such a
// tensor keeps its codes once instead of twice (as bytes and as the layout).
class CodeSource {
 public:
  virtual ~CodeSource() = default;
  // Codes of rows [begin, end), [end − begin, K] in column order.
  virtual void read_codes(int64_t begin, int64_t end, uint8_t *out) const = 0;
};

// Something that holds all of a tensor's group scales and zeros in a
// layout of its own: the CPU backend's matmul layout again, which keeps
// them per tile of rows beside the codes, so that an imported tensor keeps
// them once.
class GroupParamSource {
 public:
  virtual ~GroupParamSource() = default;
  // Scales (fp16 bits) and zeros of rows [begin, end) in every group,
  // [G, end − begin].
  virtual void read_group_params(int64_t begin, int64_t end, uint16_t *scales,
                                 int32_t *zeros) const = 0;
};

struct QTensorData {
  int64_t out_features = 0;  // N
  int64_t in_features = 0;   // K
  int32_t bits = 0;
  int32_t group_size = 0;    // as configured, -1 for one group
  int64_t groups = 0;        // G
  bool act_order = false;    // g_idx differs from j / group_size

  // [N, K], 0 .. 2^bits - 1; whoever makes a tensor writes every code
  // (resize leaves them unset). Empty when code_source holds them: read
  // them through CodeRows, which serves both.
  std::vector<uint8_t, UninitializedAllocator<uint8_t>> codes;
  std::shared_ptr<const CodeSource> code_source;
  // Both empty when param_source holds them: read them through
  // GroupParams, which serves both.
  std::vector<uint16_t> scales;  // [G, N], fp16 bit patterns
  std::vector<int32_t> zeros;    // [G, N], 0 .. 2^bits (V1 imports can give 2^bits)
  std::shared_ptr<const GroupParamSource> param_source;
  std::vector<int32_t> g_idx;    // [K], 0 .. G - 1
  // The grid (gptq_grid): GPTQ's own, or a GGUF block format whose blocks
  // are the groups (g_idx = j / 32). Q4_1 and Q5_1 blocks have a min m
  // instead of a zero: value = scale·code + m, with m here ([G, N], fp16)
  // and zeros 0.
  int32_t grid = GPTQ_GRID_GPTQ;
  std::vector<uint16_t> mins;
  // K-quants (Q4_K, Q5_K, Q6_K): the groups are the sub-blocks (32 columns,
  // 16 for Q6_K; g_idx = j / that) of super-blocks of 256 columns. Each
  // super-block has fp16 d and, for Q4_K and Q5_K, dmin ([K/256, N]); each
  // sub-block an integer scale sc and min m ([G, N]; 6-bit, or int8 scales
  // for Q6_K): value d·sc·code − dmin·m (Q4_K, Q5_K) or d·sc·(code − 32)
  // (Q6_K). scales, zeros and mins stay empty.
  std::vector<uint16_t> super_scales, super_mins;
  std::vector<int16_t> sub_scales, sub_mins;
};

// Rows [begin, end) of a tensor's codes: a view of q.codes, or a copy read
// from its code source.
class CodeRows {
 public:
  CodeRows(const QTensorData &q, int64_t begin, int64_t end);
  const uint8_t *row(int64_t r) const { return base_ + (r - begin_) * k_; }

 private:
  std::vector<uint8_t, UninitializedAllocator<uint8_t>> copy_;
  const uint8_t *base_ = nullptr;
  int64_t begin_ = 0, k_ = 0;
};

// Rows [begin, end) of a tensor's scales and zeros, every group: views of
// q.scales and q.zeros, or copies read from its param source.
class GroupParams {
 public:
  GroupParams(const QTensorData &q, int64_t begin, int64_t end);
  // Group g's scale (fp16 bits) and zero for row r, begin <= r < end.
  uint16_t scale(int64_t g, int64_t r) const { return scales_[g * stride_ + r - first_]; }
  int32_t zero(int64_t g, int64_t r) const { return zeros_[g * stride_ + r - first_]; }

 private:
  std::vector<uint16_t> scale_copy_;
  std::vector<int32_t> zero_copy_;
  // Row r of group g is at g·stride_ + r − first_.
  const uint16_t *scales_ = nullptr;
  const int32_t *zeros_ = nullptr;
  int64_t stride_ = 0, first_ = 0;
};

// Number of groups for K columns: one for group_size -1, else ceil(K / gs).
int64_t group_count(int64_t in_features, int32_t group_size);

// Writes scale·(code − zero), or scale·code + m, as float [N, K].
void dequantize_rows(const QTensorData &q, int64_t row_begin, int64_t row_end, float *out);

}  // namespace gptq
