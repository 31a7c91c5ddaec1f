// The forward pass of a LLaMA-family decoder in float32 on the CPU (OpenBLAS
// for every matrix product). A block can be run with a tap that sees the
// input of each group of its linear layers (q/k/v, o, gate/up, down) before
// the group uses it and may replace the group's layers: the GPTQ pipeline
// quantizes a block in true-sequential order that way, through this one
// forward pass, with the block's activations computed once.
//
// Several sequences of any lengths are processed together: linear layers run
// on all their tokens at once, attention runs per sequence. No padding exists
// anywhere, so none can leak into a Hessian. Work that OpenBLAS cannot spread
// over the cores itself (attention heads, elementwise passes) is spread by
// parallel.h, with results that do not depend on how the work was split.
#pragma once

#include <cstdint>
#include <functional>
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
// Qwen3's q_norm / k_norm: RMSNorm over each head_dim-wide head of
// [tokens, heads·head_dim] in place; nothing when the block has none.
void head_norms(const LlamaConfig &c, const LlamaBlock &block, float *q, float *k, int64_t tokens);
void rms_norm(const float *x, const std::vector<float> &weight, int64_t rows, int64_t dim,
              double eps, float *out);

// The attention sub-layer up to (not including) o_proj: q/k/v projections of
// the normed input x [tokens, hidden], RoPE, causal softmax attention with
// grouped KV heads (and Mistral's sliding window). out is [tokens, heads·hd].
// (In attention.cpp.)
void attention_core(const LlamaConfig &config, const Rope &rope, const LlamaBlock &block,
                    const float *x, const SequenceBatch &batch, float *out);

// q [tokens, q_dim], k and v [tokens, kv_dim] of the normed input x: three
// products, or with fused projections one qkv_proj product split in three.
void qkv_projections(const LlamaConfig &config, const LlamaBlock &block, const float *x,
                     int64_t tokens, float *q, float *k, float *v);

// The linear layers of a block in the groups that read one input, in the
// order the block uses them: q/k/v (the normed input), o (the attention
// output), gate/up (the normed residual) and down (the MLP activation).
// In a mixture of experts each expert's gate/up and down are groups of
// their own, whose input is only the tokens routed to the expert (`expert`
// below is its index; -1 for every other group, the shared expert's
// included).
enum class LinearGroup { Qkv, O, GateUp, Down };
constexpr int kLinearGroups = 4;
// The group's layers: {Q, K, V}, {O}, {Gate, Up}, {Down}; with fused
// projections {Qkv}, {O}, {GateUp}, {Down}; an expert's {Gate e, Up e},
// {Down e}; the shared expert's {SharedGate, SharedUp}, {SharedDown}.
std::vector<LinearId> group_linears(LinearGroup group, const LlamaConfig &config,
                                    int64_t expert = -1);

// Called by block_forward with the input x [tokens, in] of each group of
// linear layers, just before the group uses it (an expert's with its
// routed tokens only, perhaps none). The tap may replace the group's
// layers in *block (by their quantized weights, say): the block then
// proceeds with the layers it finds there, so every later input is
// computed through them. x is only valid during the call, and the tap must
// not run a forward pass itself (it would overwrite x).
using LinearGroupTap = std::function<void(LinearGroup group, int64_t expert, const float *x,
                                          int64_t tokens, LlamaBlock *block)>;
// The same, inside the forward pass (the block is the caller's).
using GroupInput =
    std::function<void(LinearGroup group, int64_t expert, const float *x, int64_t tokens)>;

// act(gate(x)) · up(x) for x [tokens, hidden]: out [tokens,
// gate.out_features()], what a gated MLP's down projection reads.
void gated_mlp_input(const LlamaConfig &config, const Linear &gate, const Linear &up,
                     const float *x, int64_t tokens, float *out);

// A block's mixture of experts (in moe.cpp): h [tokens, hidden] += the
// experts' weighted outputs for the normed input x (and the shared
// expert's), with at_input (when given) called at each expert's inputs.
void mixture_of_experts(const LlamaConfig &config, const LlamaBlock &block, const float *x,
                        int64_t tokens, float *h, const GroupInput &at_input);

// The experts each token is sent to and their weights, as the model's
// router picks them: for token t, experts[t·k + j] and weights[t·k + j],
// j < k = num_experts_per_tok, by descending probability.
struct Routing {
  int64_t k = 0;
  std::vector<int32_t> experts;
  std::vector<float> weights;
};
Routing route_tokens(const LlamaConfig &config, const Linear &router, const float *x,
                     int64_t tokens);

// One whole block: h [tokens, hidden] is updated in place.
void block_forward(const LlamaConfig &config, const Rope &rope, const LlamaBlock &block,
                   const SequenceBatch &batch, float *h);

// The same block with `tap` called at each group's input, in the order of
// LinearGroup; *block is the tap's to change.
void block_forward(const LlamaConfig &config, const Rope &rope, LlamaBlock *block,
                   const SequenceBatch &batch, float *h, const LinearGroupTap &tap);

// The attention sub-layer of a block given its normed input x [tokens,
// hidden]: writes out [tokens, heads·hd] (what o_proj reads).
using BlockAttention = std::function<void(const float *x, float *out)>;

// A whole block with the attention sub-layer supplied by the caller (the KV
// cache's, say): h [tokens, hidden] is updated in place.
void block_forward(const LlamaConfig &config, const LlamaBlock &block, int64_t tokens, float *h,
                   const BlockAttention &attention);

// Embedding lookup: h [ids.size(), hidden]. Ids must be < vocab (checked).
// (Gemma 2 and 3 multiply them by config.embed_scale.)
std::vector<float> embed_tokens(const LlamaModel &model, const std::vector<int32_t> &ids);

// logits [rows, vocab] = lm_head(x) for final hidden states x [rows, hidden],
// soft-capped where the model caps them (Gemma 2, Gemma 3 when set).
void project_logits(const LlamaModel &model, const float *x, int64_t rows, float *logits);

// The final normed hidden states [tokens, hidden] for one or more sequences
// of token ids: what lm_head turns into logits.
std::vector<float> final_hidden(const LlamaModel &model, const Rope &rope,
                                const std::vector<int32_t> &ids, const SequenceBatch &batch);

// Logits [tokens, vocab] for one or more sequences of token ids.
std::vector<float> model_logits(const LlamaModel &model, const Rope &rope,
                                const std::vector<int32_t> &ids, const SequenceBatch &batch);

}  // namespace gptqtool
