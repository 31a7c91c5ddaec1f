// The weights of a LLaMA-family decoder (RMSNorm, rotary attention with
// grouped KV heads, a gated MLP or a mixture of gated MLP experts) as the
// tool runs them, and how their linear layers are named in a checkpoint.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/embedding_table.h"
#include "model/linear.h"
#include "model/model_config.h"

namespace gptqtool {

class ModelDir;

// One gated MLP of a mixture of experts: down(act(gate(x)) · up(x)).
struct ExpertMlp {
  Linear gate, up, down;
};

struct LlamaBlock {
  // Norm scales as the forward pass multiplies by them (Gemma's 1 + weight
  // already added). input_norm before attention, post_norm before the MLP;
  // with sandwich norms (Gemma 2) also attn_out_norm and mlp_out_norm on
  // the two sub-layers' outputs, else empty.
  std::vector<float> input_norm;     // [hidden]
  std::vector<float> post_norm;      // [hidden]
  std::vector<float> attn_out_norm;  // [hidden] or empty
  std::vector<float> mlp_out_norm;   // [hidden] or empty
  // Qwen3's and Gemma 3's per-head norms of q and k ([head_dim] each, with
  // Gemma's 1 + weight added); empty otherwise.
  std::vector<float> q_norm, k_norm;
  Linear q, k, v, o, gate, up, down;
  // Phi-3 (fused_projections), or quantized layers joined for generation
  // (joined_linears.h): qkv and gate_up hold what q/k/v and gate/up hold
  // otherwise, which then stay empty. The forward pass takes qkv or
  // gate_up wherever it has output features.
  Linear qkv, gate_up;
  // How gate_up's features hold gate's and up's: 0, [gate | up] (Phi-3's
  // gate_up_proj); B > 0, blocks of B gate features and the same B of up in
  // turn (join_projections), so that a range of whole pairs of blocks holds
  // all its activation needs.
  int64_t gate_up_interleave = 0;
  // Mixture of experts (config.moe()): the MLP is these experts, picked per
  // token by the router ([num_experts, hidden], full precision), and gate,
  // up and down stay empty; Qwen2-MoE's shared expert runs on every token,
  // scaled by sigmoid(shared_expert_gate(x)) ([1, hidden], full precision).
  std::vector<ExpertMlp> experts;
  Linear router;
  ExpertMlp shared_expert;
  Linear shared_expert_gate;
  // Keys older than this many positions are masked out; 0 = full causal.
  // Mistral windows every layer, Qwen2 (use_sliding_window) the layers its
  // layer_types call sliding, or else those from max_window_layers on.
  int64_t sliding_window = 0;
  // Gemma 3: the block rotates q and k with the local RoPE (Rope::for_layer).
  bool local_rope = false;
};

// The attention window of block i under this config (see LlamaBlock).
int64_t block_sliding_window(const LlamaConfig &c, int64_t block);

struct LlamaModel {
  LlamaConfig config;
  EmbeddingTable embed;  // [vocab, hidden]
  std::vector<LlamaBlock> blocks;
  std::vector<float> final_norm;  // [hidden]
  Linear lm_head;                 // [vocab, hidden]; embed's own rows when tied
};

// The linear layers of a block by their checkpoint names
// ("model.layers.3.self_attn.q_proj"; no ".weight"). Qkv and GateUp are
// Phi-3's fused qkv_proj and gate_up_proj; SharedGate, SharedUp and
// SharedDown Qwen2-MoE's shared expert.
enum class LinearSlot { Q, K, V, O, Gate, Up, Down, Qkv, GateUp, SharedGate, SharedUp, SharedDown };
// A quantizable linear layer of a block: a slot, and for a layer of one of
// the experts of a mixture (Gate, Up or Down) the expert's index.
struct LinearId {
  LinearSlot slot;
  int64_t expert = -1;
  LinearId(LinearSlot s, int64_t e = -1) : slot(s), expert(e) {}  // NOLINT: a slot is an id
};
// The layers every block of this config has outside the experts of a
// mixture, in true-sequential order: q, k, v, o, gate, up, down; with fused
// projections qkv, o, gate_up, down (each fused layer is quantized as the
// one layer it is); with experts q, k, v, o and the shared expert's gate,
// up and down if the model has one.
const std::vector<LinearSlot> &block_slots(const LlamaConfig &c);
// Every quantizable layer of a block: block_slots, then each expert's gate,
// up and down.
std::vector<LinearId> block_linears(const LlamaConfig &c);
const char *slot_suffix(LinearSlot slot);  // "self_attn.q_proj", ...
std::string linear_name(int64_t block, LinearSlot slot);  // not an expert's
// Any layer, an expert's included ("model.layers.3.mlp.experts.5.up_proj",
// Mixtral's "model.layers.3.block_sparse_moe.experts.5.w3").
std::string linear_name(const LlamaConfig &c, int64_t block, LinearId id);
// The layer's name with its block and expert replaced by '*'
// ("mlp.experts.*.up_proj"): what one kind of layer is called in messages.
std::string linear_kind(const LlamaConfig &c, LinearId id);
// Where the router ("block_sparse_moe.gate" / "mlp.gate") and Qwen2-MoE's
// shared_expert_gate of a block live (no ".weight").
std::string router_name(const LlamaConfig &c, int64_t block);
std::string shared_expert_gate_name(int64_t block);
Linear &block_linear(LlamaBlock &b, LinearId id);
const Linear &block_linear(const LlamaBlock &b, LinearId id);
// [out, in] of a layer's weight under this config.
void slot_shape(const LlamaConfig &c, LinearId id, int64_t *out, int64_t *in);
// Whether the checkpoint has a bias for this layer (attention_bias, mlp_bias,
// Qwen2's q/k/v biases; experts have none).
bool slot_has_bias(const LlamaConfig &c, LinearId id);

// Dense block i from an (unquantized) model directory: linear layers
// stored in 16 bits stay 16-bit (model/half_matrix.h), the others float32.
LlamaBlock load_dense_block(const ModelDir &dir, int64_t block);
// Embeddings, final norm and lm_head (dense; a 16-bit lm_head or
// embedding table is kept in 16 bits, a tied lm_head shares the table).
void load_dense_outer(const ModelDir &dir, LlamaModel *model);

// A whole model from a directory: dense weights, and for a GPTQ checkpoint
// (config.json has quantization_config) the quantized layers imported
// through the library, run with gptq_matmul.
LlamaModel load_model(const ModelDir &dir);

// Sets how every quantized layer of the model multiplies (see MatmulChoice).
void set_matmul(LlamaModel *model, const MatmulChoice &choice);

// Whether any layer of the model is quantized.
bool has_quantized_layers(const LlamaModel &model);

}  // namespace gptqtool
