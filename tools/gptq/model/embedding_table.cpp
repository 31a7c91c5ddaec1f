#include "model/embedding_table.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "model/model_dir.h"

namespace gptqtool {

EmbeddingTable::EmbeddingTable(int64_t vocab, int64_t hidden, std::vector<float> rows)
    : vocab_(vocab), hidden_(hidden), f32_(std::move(rows)) {}

EmbeddingTable EmbeddingTable::load(const ModelDir &dir, const std::string &tensor, int64_t vocab,
                                    int64_t hidden) {
  EmbeddingTable t;
  t.vocab_ = vocab;
  t.hidden_ = hidden;
  t.half_ = load_half_matrix(dir, tensor, vocab, hidden);
  if (t.half_ == nullptr) t.f32_ = dir.load_f32(tensor, {vocab, hidden});
  return t;
}

void EmbeddingTable::row(int64_t id, float *out) const {
  if (half_ != nullptr)
    half_->row(id, out);
  else
    std::copy_n(f32_.data() + id * hidden_, hidden_, out);
}

std::vector<float> EmbeddingTable::to_float32() const {
  if (half_ == nullptr) return f32_;
  std::vector<float> all(static_cast<size_t>(vocab_ * hidden_));
  for (int64_t id = 0; id < vocab_; ++id) row(id, all.data() + id * hidden_);
  return all;
}

}  // namespace gptqtool
