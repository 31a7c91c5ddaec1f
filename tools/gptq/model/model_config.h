// The Hugging Face config.json of a LLaMA-family model (LLaMA, Mistral,
// Qwen2, Qwen3, Phi-3, Gemma 2, Gemma 3, and the mixtures of experts
// Mixtral, Qwen2-MoE and Qwen3-MoE), read into the numbers the forward pass
// needs, with the defaults transformers applies for keys a config leaves
// out, whether transformers 4 wrote it (top-level "rope_theta",
// "rope_scaling") or transformers 5 ("rope_parameters", "layer_types").
// Anything the forward pass does not implement (another architecture, an
// activation other than SiLU or tanh GELU, a RoPE type other than default /
// linear / dynamic / yarn / llama3, partial rotary embeddings) is refused
// here, by name, before any weight is read.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace gptqtool {

struct LlamaConfig {
  std::string architecture;  // "LlamaForCausalLM", "MistralForCausalLM", ... "Phi3ForCausalLM"
  std::string model_type;    // "llama", "mistral", "qwen2", "qwen3", "phi3"
  // Mixture of experts (Mixtral, Qwen2-MoE, Qwen3-MoE): every block's MLP
  // is num_experts gated MLPs of expert_intermediate_size (Mixtral's
  // intermediate_size, the Qwens' moe_intermediate_size) and a router
  // ("gate", [num_experts, hidden], kept in full precision) that sends each
  // token to the num_experts_per_tok experts of highest softmax
  // probability, their outputs weighted by those probabilities,
  // renormalized to sum to 1 when norm_topk_prob (always in Mixtral).
  // Qwen2-MoE adds a shared expert of shared_expert_intermediate_size on
  // every token, scaled by sigmoid(shared_expert_gate(x)) ([1, hidden], full
  // precision). Mixtral names its experts block_sparse_moe.experts.E.w1
  // (gate), w3 (up) and w2 (down), the Qwens mlp.experts.E.gate_proj,
  // up_proj, down_proj (and a Mixtral whose weights use those names, as
  // GPTQModel 7 writes it, is read with them: ModelDir). num_experts 0: a
  // dense MLP.
  int64_t num_experts = 0, num_experts_per_tok = 0;
  int64_t expert_intermediate_size = 0, shared_expert_intermediate_size = 0;
  bool norm_topk_prob = false;
  bool mixtral_names = false;
  bool moe() const { return num_experts > 0; }
  // Phi-3: q/k/v stored as one qkv_proj [q_dim + 2·kv_dim, hidden] and
  // gate/up as one gate_up_proj [2·intermediate, hidden] (gate rows first).
  bool fused_projections = false;
  int64_t hidden_size = 0, intermediate_size = 0, num_hidden_layers = 0, num_attention_heads = 0,
          num_key_value_heads = 0, head_dim = 0, vocab_size = 0, max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  // attention_bias: q, k and v have biases (LLaMA's attention_bias, always
  // on for Qwen2). o_proj_bias: o has one too (LLaMA's attention_bias only).
  bool tie_word_embeddings = false, attention_bias = false, mlp_bias = false;
  bool o_proj_bias = false;
  // Qwen3 and Gemma 3: an RMSNorm over each head of q and of k (q_norm,
  // k_norm weights of head_dim each; Gemma's with 1 + weight), after the
  // projections and before RoPE.
  bool qk_norm = false;
  // RoPE as transformers computes it (modeling_rope_utils; rope.h). The
  // parameters a type does not use keep these values.
  std::string rope_type = "default";  // default, linear, dynamic, yarn, llama3
  double rope_theta = 10000.0;
  double rope_factor = 1;                                       // all but default
  double rope_low_freq_factor = 1, rope_high_freq_factor = 4;  // llama3
  int64_t rope_original_max_pos = 0;                            // llama3, yarn
  double rope_attention_factor = 1;  // yarn: cos and sin are scaled by it
  double rope_beta_fast = 32, rope_beta_slow = 1;               // yarn
  bool rope_truncate = true;                                    // yarn
  // Gemma 3: the layers layer_types calls sliding_attention rotate with a
  // RoPE of their own, of the default type and base rope_local_theta
  // (rope_local_base_freq; transformers 5's rope_parameters.sliding_attention),
  // whether or not their window takes effect; the others with the RoPE
  // above (rope_parameters.full_attention, or rope_theta and rope_scaling).
  // 0: one RoPE for every layer.
  double rope_local_theta = 0;
  std::vector<uint8_t> local_rope_layers;  // 1 for a layer of the local RoPE
  std::string torch_dtype;  // as written ("dtype" in newer files, else "torch_dtype"); may be ""

  std::string hidden_act = "silu";  // silu, or gelu_pytorch_tanh (Gemma 2)

  // Gemma 2 and 3: every RMSNorm scales by (1 + weight) (the loader adds the 1);
  // the attention and MLP outputs are normed too before they join the
  // residual stream (post_attention_layernorm, post_feedforward_layernorm;
  // the MLP's input norm is then pre_feedforward_layernorm); embeddings are
  // multiplied by embed_scale; scores are scaled by attn_scale instead of
  // 1/sqrt(head_dim) (0 = that default), and scores and final logits are
  // soft-capped, cap·tanh(x/cap) (0 = no cap). Gemma 3 caps no scores
  // (transformers' Gemma 3 attention ignores attn_logit_softcapping) and
  // its final logits only when final_logit_softcapping is set.
  bool gemma_norms = false, sandwich_norms = false;
  float embed_scale = 1.0f;
  double attn_scale = 0, attn_softcap = 0, final_softcap = 0;

  // heads · head_dim (q and o_proj) and kv_heads · head_dim (k and v),
  // computed with overflow checks (a parsed config keeps both <= 2^31 - 1).
  int64_t q_dim() const;
  int64_t kv_dim() const;
  // Sliding-window attention, recorded for the forward pass: 0 = none.
  // Mistral and Phi-3: the window when it is set and smaller than
  // max_position_embeddings. Qwen2: the same, only with use_sliding_window,
  // and then only for the layers layer_types calls sliding_attention, or
  // without layer_types for layers >= max_window_layers.
  int64_t sliding_window = 0;
  int64_t max_window_layers = 0;  // Qwen2 only
  // Qwen2's layer_types, when the config lists them, Gemma 2's (listed or
  // its default, even layers windowed) and Gemma 3's (listed, or from
  // sliding_window_pattern, default 6: every 6th layer full): 1 for a
  // windowed layer. Empty:
  // the max_window_layers rule above.
  std::vector<uint8_t> sliding_layers;
};

// The largest dimension (hidden size, heads, vocabulary, ...) and position
// count a config may give: the library's tensors, BLAS and the token ids all
// index with 32-bit integers. Layer counts are capped far above any model.
constexpr int64_t kMaxDimension = INT32_MAX;
constexpr int64_t kMaxLayers = 1 << 16;

// Throws ToolError naming `path_for_messages` and the offending key.
LlamaConfig parse_llama_config(const nlohmann::json &config, const std::string &path_for_messages);

}  // namespace gptqtool
