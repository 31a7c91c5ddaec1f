#include "qtensor.h"

#include "half.h"

namespace gptq {

int64_t group_count(int64_t in_features, int32_t group_size) {
  if (group_size < 0) return 1;
  return (in_features + group_size - 1) / group_size;
}

void dequantize_rows(const QTensorData &q, int64_t row_begin, int64_t row_end, float *out) {
  const int64_t n = q.out_features;
  const int64_t k = q.in_features;
  std::vector<float> scale(static_cast<size_t>(q.groups));
  std::vector<float> zero(static_cast<size_t>(q.groups));
  if (!q.mins.empty()) {  // GGUF min blocks: d·q + m, as llama.cpp computes it
    for (int64_t r = row_begin; r < row_end; ++r) {
      for (int64_t g = 0; g < q.groups; ++g) {
        scale[g] = half_to_float(q.scales[g * n + r]);
        zero[g] = half_to_float(q.mins[g * n + r]);
      }
      const uint8_t *codes = &q.codes[r * k];
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
      scale[g] = half_to_float(q.scales[g * n + r]);
      zero[g] = static_cast<float>(q.zeros[g * n + r]);
    }
    const uint8_t *codes = &q.codes[r * k];
    float *dst = out + (r - row_begin) * k;
    for (int64_t j = 0; j < k; ++j) {
      const int32_t g = q.g_idx[j];
      dst[j] = scale[g] * (static_cast<float>(codes[j]) - zero[g]);
    }
  }
}

}  // namespace gptq
