#include "model/embedding_table.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "model/model_dir.h"

namespace gptqtool {

EmbeddingTable::EmbeddingTable(int64_t vocab, int64_t hidden, std::vector<float> rows)
    : vocab_(vocab),
      hidden_(hidden),
      f32_(std::make_shared<const std::vector<float>>(std::move(rows))) {}

EmbeddingTable EmbeddingTable::load(const ModelDir &dir, const std::string &tensor, int64_t vocab,
                                    int64_t hidden) {
  EmbeddingTable t;
  t.vocab_ = vocab;
  t.hidden_ = hidden;
  t.half_ = load_half_matrix(dir, tensor, vocab, hidden);
  if (t.half_ == nullptr)
    t.f32_ = std::make_shared<const std::vector<float>>(dir.load_f32(tensor, {vocab, hidden}));
  return t;
}

void EmbeddingTable::row(int64_t id, float *out) const {
  if (half_ != nullptr)
    half_->row(id, out);
  else
    std::copy_n(f32_->data() + id * hidden_, hidden_, out);
}

}  // namespace gptqtool
