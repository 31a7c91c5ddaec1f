// The forward pass of a LLaMA-family decoder in float32 on the CPU (OpenBLAS
// for every matrix product), split into the steps the GPTQ pipeline needs to
// see: the inputs of q/k/v, of o, of gate/up and of down are each exposed so
// that a block can be quantized in true-sequential order while its
// activations are computed once.
//
// Several sequences of any lengths are processed together: linear layers run
// on all their tokens at once, attention runs per sequence. No padding exists
// anywhere, so none can leak into a Hessian. Work that OpenBLAS cannot spread
// over the cores itself (attention heads, elementwise passes) is spread by
// parallel.h, with results that do not depend on how the work was split.
#pragma once

#include <cstdint>
#include <vector>

#include "model/llama_model.h"
#include "model/rope.h"

namespace gptqtool {

// Token layout of a batch: sequence s holds tokens [starts[s], starts[s+1]).
struct SequenceBatch {
  std::vector<int64_t> starts{0};
  int64_t tokens() const { return starts.back(); }
  int64_t sequences() const { return static_cast<int64_t>(starts.size()) - 1; }
  void add(int64_t length) { starts.push_back(starts.back() + length); }
};

// out[r] = x[r] / sqrt(mean(x[r]²) + eps) · weight, accumulated in double.
void rms_norm(const float *x, const std::vector<float> &weight, int64_t rows, int64_t dim,
              double eps, float *out);

// The attention sub-layer up to (not including) o_proj: q/k/v projections of
// the normed input x [tokens, hidden], RoPE, causal softmax attention with
// grouped KV heads (and Mistral's sliding window). out is [tokens, heads·hd].
// (In attention.cpp.)
void attention_core(const LlamaConfig &config, const Rope &rope, const LlamaBlock &block,
                    const float *x, const SequenceBatch &batch, float *out);

// silu(gate(x)) · up(x): the input of down_proj, [tokens, intermediate].
void mlp_activation(const LlamaBlock &block, const float *x, int64_t tokens,
                    int64_t intermediate, float *out);

// h += layer(x) for x [tokens, layer.in_features].
void add_linear(const Linear &layer, const float *x, int64_t tokens, float *h);

// One whole block: h [tokens, hidden] is updated in place.
void block_forward(const LlamaConfig &config, const Rope &rope, const LlamaBlock &block,
                   const SequenceBatch &batch, float *h);

// Embedding lookup: h [ids.size(), hidden]. Ids must be < vocab (checked).
std::vector<float> embed_tokens(const LlamaModel &model, const std::vector<int32_t> &ids);

// The final normed hidden states [tokens, hidden] for one or more sequences
// of token ids: what lm_head turns into logits.
std::vector<float> final_hidden(const LlamaModel &model, const Rope &rope,
                                const std::vector<int32_t> &ids, const SequenceBatch &batch);

// Logits [tokens, vocab] for one or more sequences of token ids.
std::vector<float> model_logits(const LlamaModel &model, const Rope &rope,
                                const std::vector<int32_t> &ids, const SequenceBatch &batch);

}  // namespace gptqtool
