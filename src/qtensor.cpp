#include "qtensor.h"

#include <algorithm>

#include "gguf_grid.h"
#include "half.h"

namespace gptq {

CodeRows::CodeRows(const QTensorData &q, int64_t begin, int64_t end)
    : begin_(begin), k_(q.in_features) {
  if (!q.codes.empty() || q.code_source == nullptr) {
    base_ = q.codes.data() + begin * q.in_features;
    return;
  }
  copy_.resize(static_cast<size_t>((end - begin) * q.in_features));
  q.code_source->read_codes(begin, end, copy_.data());
  base_ = copy_.data();
}

GroupParams::GroupParams(const QTensorData &q, int64_t begin, int64_t end) {
  if (q.param_source == nullptr) {
    scales_ = q.scales.data();
    zeros_ = q.zeros.data();
    stride_ = q.out_features;
    return;
  }
  stride_ = end - begin;
  scale_copy_.resize(static_cast<size_t>(q.groups * stride_));
  zero_copy_.resize(scale_copy_.size());
  q.param_source->read_group_params(begin, end, scale_copy_.data(), zero_copy_.data());
  scales_ = scale_copy_.data();
  zeros_ = zero_copy_.data();
  first_ = begin;
}

int64_t group_count(int64_t in_features, int32_t group_size) {
  if (group_size < 0) return 1;
  return (in_features + group_size - 1) / group_size;
}

namespace {

// Rows dequantized per pass: their codes, when copied from a code source,
// are a few hundred KiB at most.
constexpr int64_t kRowBlock = 64;

// K-quants, computed as llama.cpp's dequantize_row_q*_K does, in float:
// d1 = d·sc and m1 = dmin·m, then d1·code − m1 (d1·(code − 32) for Q6_K).
// d1·code is exact in float (11 + 8 + 6 bits), so a fused multiply-add
// gives the same value.
void dequantize_super_rows(const QTensorData &q, int64_t row_begin, int64_t row_end, float *out) {
  const int64_t n = q.out_features, k = q.in_features;
  const GgufGrid &f = *gguf_grid(q.grid);
  const int64_t per_super = f.block / f.group;
  const CodeRows rows(q, row_begin, row_end);
  for (int64_t r = row_begin; r < row_end; ++r) {
    const uint8_t *codes = rows.row(r);
    float *dst = out + (r - row_begin) * k;
    for (int64_t g = 0; g < q.groups; ++g) {
      const int64_t s = g / per_super;
      const float d = half_to_float(q.super_scales[s * n + r]);
      const float d1 = d * static_cast<float>(q.sub_scales[g * n + r]);
      const int64_t j0 = g * f.group;
      if (f.has_min()) {
        const float dmin = half_to_float(q.super_mins[s * n + r]);
        const float m1 = dmin * static_cast<float>(q.sub_mins[g * n + r]);
        for (int64_t j = j0; j < j0 + f.group; ++j) dst[j] = d1 * static_cast<float>(codes[j]) - m1;
      } else {
        for (int64_t j = j0; j < j0 + f.group; ++j)
          dst[j] = d1 * static_cast<float>(static_cast<int>(codes[j]) - f.zero);
      }
    }
  }
}

}  // namespace

void dequantize_rows(const QTensorData &q, int64_t row_begin, int64_t row_end, float *out) {
  const int64_t n = q.out_features;
  const int64_t k = q.in_features;
  // Codes read from a code source come kRowBlock rows at a time.
  if (row_end - row_begin > kRowBlock) {
    for (int64_t r = row_begin; r < row_end; r += kRowBlock)
      dequantize_rows(q, r, std::min(row_end, r + kRowBlock), out + (r - row_begin) * k);
    return;
  }
  if (!q.sub_scales.empty()) return dequantize_super_rows(q, row_begin, row_end, out);
  const CodeRows rows(q, row_begin, row_end);
  const GroupParams params(q, row_begin, row_end);
  std::vector<float> scale(static_cast<size_t>(q.groups));
  std::vector<float> zero(static_cast<size_t>(q.groups));
  if (!q.mins.empty()) {  // GGUF min blocks: d·q + m, as llama.cpp computes it
    for (int64_t r = row_begin; r < row_end; ++r) {
      for (int64_t g = 0; g < q.groups; ++g) {
        scale[g] = half_to_float(params.scale(g, r));
        zero[g] = half_to_float(q.mins[g * n + r]);
      }
      const uint8_t *codes = rows.row(r);
      float *dst = out + (r - row_begin) * k;
      for (int64_t j = 0; j < k; ++j) {
        const int32_t g = q.g_idx[j];
        dst[j] = scale[g] * static_cast<float>(codes[j]) + zero[g];
      }
    }
    return;
  }
  for (int64_t r = row_begin; r < row_end; ++r) {
    for (int64_t g = 0; g < q.groups; ++g) {
      scale[g] = half_to_float(params.scale(g, r));
      zero[g] = static_cast<float>(params.zero(g, r));
    }
    const uint8_t *codes = rows.row(r);
    float *dst = out + (r - row_begin) * k;
    for (int64_t j = 0; j < k; ++j) {
      const int32_t g = q.g_idx[j];
      dst[j] = scale[g] * (static_cast<float>(codes[j]) - zero[g]);
    }
  }
}

}  // namespace gptq
