#include "model/embedding_table.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "formats/float_formats.h"
#include "model/model_dir.h"

namespace gptqtool {

EmbeddingTable::EmbeddingTable(int64_t vocab, int64_t hidden, std::vector<float> rows)
    : vocab_(vocab), hidden_(hidden), f32_(std::move(rows)) {}

EmbeddingTable EmbeddingTable::load(const ModelDir &dir, const std::string &tensor, int64_t vocab,
                                    int64_t hidden) {
  const TensorDType stored = dir.has(tensor) ? dir.info(tensor).dtype : TensorDType::F32;
  if (stored != TensorDType::F16 && stored != TensorDType::BF16)
    return EmbeddingTable(vocab, hidden, dir.load_f32(tensor, {vocab, hidden}));
  EmbeddingTable t;
  t.vocab_ = vocab;
  t.hidden_ = hidden;
  t.dtype_ = stored;
  t.bits16_ = dir.load_16bit(tensor, {vocab, hidden});
  return t;
}

void EmbeddingTable::row(int64_t id, float *out) const {
  const size_t at = static_cast<size_t>(id * hidden_);
  switch (dtype_) {
    case TensorDType::F16:
      for (int64_t j = 0; j < hidden_; ++j) out[j] = f16_to_float(bits16_[at + j]);
      return;
    case TensorDType::BF16:
      for (int64_t j = 0; j < hidden_; ++j) out[j] = bf16_to_float(bits16_[at + j]);
      return;
    default:
      std::copy_n(f32_.data() + at, hidden_, out);
  }
}

std::vector<float> EmbeddingTable::to_float32() const {
  if (dtype_ == TensorDType::F32) return f32_;
  std::vector<float> all(static_cast<size_t>(vocab_ * hidden_));
  for (int64_t id = 0; id < vocab_; ++id) row(id, all.data() + id * hidden_);
  return all;
}

}  // namespace gptqtool
