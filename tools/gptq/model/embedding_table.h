// The token embeddings [vocab, hidden] a forward pass looks its tokens up
// in. Kept in the dtype the checkpoint stores them in: 16-bit rows (F16,
// BF16) take half the memory of float32 and widen to it exactly, and a
// forward pass reads only its tokens' rows.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "formats/safetensors.h"
#include "model/half_matrix.h"

namespace gptqtool {

class ModelDir;

class EmbeddingTable {
 public:
  EmbeddingTable() = default;
  // float32 rows, row-major.
  EmbeddingTable(int64_t vocab, int64_t hidden, std::vector<float> rows);
  // Tensor `tensor` of `dir`, checked to be a float tensor [vocab, hidden].
  static EmbeddingTable load(const ModelDir &dir, const std::string &tensor, int64_t vocab,
                             int64_t hidden);

  int64_t vocab() const { return vocab_; }
  int64_t hidden() const { return hidden_; }
  // Row `id` (0 <= id < vocab) as float32 into out[hidden].
  void row(int64_t id, float *out) const;
  // The rows themselves, which a tied lm_head multiplies with rather than
  // keep a copy: 16-bit (null for a float32 table) or float32 (null for a
  // 16-bit one).
  std::shared_ptr<const HalfMatrix> half_rows() const { return half_; }
  std::shared_ptr<const std::vector<float>> f32_rows() const { return f32_; }

 private:
  int64_t vocab_ = 0, hidden_ = 0;
  std::shared_ptr<const std::vector<float>> f32_;  // float32 tables
  std::shared_ptr<const HalfMatrix> half_;  // 16-bit tables
};

}  // namespace gptqtool
