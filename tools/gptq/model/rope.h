// Rotary position embeddings as transformers computes them
// (modeling_rope_utils and each model's rotary embedding): the inverse
// frequencies of the default, linear, dynamic (NTK), yarn and llama3 types,
// the attention factor yarn puts on cos and sin, and the tables of the
// rotate-half convention of Hugging Face checkpoints.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "model/model_config.h"

namespace gptqtool {

struct RopeFrequencies {
  std::vector<double> inv_freq;   // [head_dim / 2]
  double attention_scaling = 1;   // multiplies cos and sin (yarn)
};

// The frequencies for sequences of up to `seq_len` positions (only dynamic
// scaling depends on it, and only past max_position_embeddings).
RopeFrequencies rope_frequencies(const LlamaConfig &config, int64_t seq_len);

class Rope {
 public:
  // With config.rope_local_theta set (Gemma 3), a second table for the
  // layers of the local RoPE comes with it (for_layer).
  Rope(const LlamaConfig &config, int64_t max_positions);
  // The table a layer rotates with: the local one for a layer of the local
  // RoPE when the model has one, else this.
  const Rope &for_layer(bool local_rope) const {
    return local_rope && local_ != nullptr ? *local_ : *this;
  }
  // Rotate x [seq, heads, head_dim] (rows strided by heads·head_dim) for
  // positions first .. first+seq-1.
  void apply(float *x, int64_t seq, int64_t heads, int64_t first = 0) const;
  int64_t max_positions() const { return max_positions_; }

 private:
  int64_t head_dim_, max_positions_;
  std::vector<float> cos_, sin_;  // [max_positions, head_dim / 2]
  std::shared_ptr<const Rope> local_;
};

}  // namespace gptqtool
