#include "model/llama_model.h"

#include <utility>

#include "common/interrupt.h"
#include "formats/checkpoint_reader.h"
#include "model/model_dir.h"

namespace gptqtool {

const std::vector<LinearSlot> &block_slots(const LlamaConfig &c) {
  static const std::vector<LinearSlot> separate = {LinearSlot::Q,    LinearSlot::K,
                                                   LinearSlot::V,    LinearSlot::O,
                                                   LinearSlot::Gate, LinearSlot::Up,
                                                   LinearSlot::Down};
  static const std::vector<LinearSlot> fused = {LinearSlot::Qkv, LinearSlot::O,
                                                LinearSlot::GateUp, LinearSlot::Down};
  static const std::vector<LinearSlot> attention = {LinearSlot::Q, LinearSlot::K, LinearSlot::V,
                                                    LinearSlot::O};
  static const std::vector<LinearSlot> shared = {LinearSlot::Q,          LinearSlot::K,
                                                 LinearSlot::V,          LinearSlot::O,
                                                 LinearSlot::SharedGate, LinearSlot::SharedUp,
                                                 LinearSlot::SharedDown};
  if (c.moe()) return c.shared_expert_intermediate_size > 0 ? shared : attention;
  return c.fused_projections ? fused : separate;
}

std::vector<LinearId> block_linears(const LlamaConfig &c) {
  std::vector<LinearId> ids(block_slots(c).begin(), block_slots(c).end());
  for (int64_t e = 0; e < c.num_experts; ++e) {
    for (const LinearSlot s : {LinearSlot::Gate, LinearSlot::Up, LinearSlot::Down}) {
      ids.emplace_back(s, e);
    }
  }
  return ids;
}

const char *slot_suffix(LinearSlot slot) {
  switch (slot) {
    case LinearSlot::Q: return "self_attn.q_proj";
    case LinearSlot::K: return "self_attn.k_proj";
    case LinearSlot::V: return "self_attn.v_proj";
    case LinearSlot::O: return "self_attn.o_proj";
    case LinearSlot::Gate: return "mlp.gate_proj";
    case LinearSlot::Up: return "mlp.up_proj";
    case LinearSlot::Down: return "mlp.down_proj";
    case LinearSlot::Qkv: return "self_attn.qkv_proj";
    case LinearSlot::GateUp: return "mlp.gate_up_proj";
    case LinearSlot::SharedGate: return "mlp.shared_expert.gate_proj";
    case LinearSlot::SharedUp: return "mlp.shared_expert.up_proj";
    case LinearSlot::SharedDown: return "mlp.shared_expert.down_proj";
  }
  return "?";
}

std::string linear_name(int64_t block, LinearSlot slot) {
  return "model.layers." + std::to_string(block) + "." + slot_suffix(slot);
}

namespace {

// "experts.<e>.w1" or "experts.<e>.gate_proj" after the MoE prefix.
std::string expert_suffix(const LlamaConfig &c, LinearId id, const std::string &index) {
  // Mixtral's w1 is the gate, w3 the up projection and w2 the down one.
  const char *name = id.slot == LinearSlot::Gate ? (c.mixtral_names ? "w1" : "gate_proj")
                     : id.slot == LinearSlot::Up ? (c.mixtral_names ? "w3" : "up_proj")
                                                 : (c.mixtral_names ? "w2" : "down_proj");
  return std::string(c.mixtral_names ? "block_sparse_moe" : "mlp") + ".experts." + index + "." +
         name;
}

}  // namespace

std::string linear_name(const LlamaConfig &c, int64_t block, LinearId id) {
  if (id.expert < 0) return linear_name(block, id.slot);
  return "model.layers." + std::to_string(block) + "." +
         expert_suffix(c, id, std::to_string(id.expert));
}

std::string linear_kind(const LlamaConfig &c, LinearId id) {
  return id.expert < 0 ? slot_suffix(id.slot) : expert_suffix(c, id, "*");
}

std::string router_name(const LlamaConfig &c, int64_t block) {
  return "model.layers." + std::to_string(block) +
         (c.mixtral_names ? ".block_sparse_moe.gate" : ".mlp.gate");
}

std::string shared_expert_gate_name(int64_t block) {
  return "model.layers." + std::to_string(block) + ".mlp.shared_expert_gate";
}

Linear &block_linear(LlamaBlock &b, LinearId id) {
  if (id.expert >= 0) {
    ExpertMlp &e = b.experts.at(static_cast<size_t>(id.expert));
    return id.slot == LinearSlot::Gate ? e.gate : id.slot == LinearSlot::Up ? e.up : e.down;
  }
  switch (id.slot) {
    case LinearSlot::Q: return b.q;
    case LinearSlot::K: return b.k;
    case LinearSlot::V: return b.v;
    case LinearSlot::O: return b.o;
    case LinearSlot::Gate: return b.gate;
    case LinearSlot::Up: return b.up;
    case LinearSlot::Down: return b.down;
    case LinearSlot::Qkv: return b.qkv;
    case LinearSlot::GateUp: return b.gate_up;
    case LinearSlot::SharedGate: return b.shared_expert.gate;
    case LinearSlot::SharedUp: return b.shared_expert.up;
    case LinearSlot::SharedDown: return b.shared_expert.down;
  }
  return b.q;
}

const Linear &block_linear(const LlamaBlock &b, LinearId id) {
  return block_linear(const_cast<LlamaBlock &>(b), id);
}

void slot_shape(const LlamaConfig &c, LinearId id, int64_t *out, int64_t *in) {
  const int64_t q_dim = c.q_dim();
  const int64_t kv_dim = c.kv_dim();
  // An expert's MLP, or the shared expert's: gate/up [width, hidden], down
  // [hidden, width].
  auto expert_mlp = [&](int64_t width) {
    const bool down = id.slot == LinearSlot::Down || id.slot == LinearSlot::SharedDown;
    *out = down ? c.hidden_size : width;
    *in = down ? width : c.hidden_size;
  };
  if (id.expert >= 0) return expert_mlp(c.expert_intermediate_size);
  switch (id.slot) {
    case LinearSlot::Q: *out = q_dim; *in = c.hidden_size; return;
    case LinearSlot::K:
    case LinearSlot::V: *out = kv_dim; *in = c.hidden_size; return;
    case LinearSlot::O: *out = c.hidden_size; *in = q_dim; return;
    case LinearSlot::Gate:
    case LinearSlot::Up: *out = c.intermediate_size; *in = c.hidden_size; return;
    case LinearSlot::Down: *out = c.hidden_size; *in = c.intermediate_size; return;
    // The sums cannot overflow: the config parser bounds them.
    case LinearSlot::Qkv: *out = q_dim + 2 * kv_dim; *in = c.hidden_size; return;
    case LinearSlot::GateUp: *out = 2 * c.intermediate_size; *in = c.hidden_size; return;
    case LinearSlot::SharedGate:
    case LinearSlot::SharedUp:
    case LinearSlot::SharedDown: return expert_mlp(c.shared_expert_intermediate_size);
  }
}

bool slot_has_bias(const LlamaConfig &c, LinearId id) {
  if (id.expert >= 0) return false;
  switch (id.slot) {
    case LinearSlot::Q:
    case LinearSlot::K:
    case LinearSlot::V:
    case LinearSlot::Qkv: return c.attention_bias;
    case LinearSlot::O: return c.o_proj_bias;
    case LinearSlot::SharedGate:
    case LinearSlot::SharedUp:
    case LinearSlot::SharedDown: return false;
    default: return c.mlp_bias;
  }
}

int64_t block_sliding_window(const LlamaConfig &c, int64_t block) {
  if (c.sliding_window == 0) return 0;
  if (!c.sliding_layers.empty()) {
    return c.sliding_layers.at(static_cast<size_t>(block)) != 0 ? c.sliding_window : 0;
  }
  return block >= c.max_window_layers ? c.sliding_window : 0;
}

namespace {

std::string block_prefix(int64_t block) { return "model.layers." + std::to_string(block) + "."; }

// A norm's scale as the forward pass uses it: Gemma's RMSNorm multiplies by
// 1 + weight, computed in float32 as transformers does.
std::vector<float> load_norm(const ModelDir &dir, const std::string &name, int64_t width = 0) {
  const LlamaConfig &c = dir.config();
  std::vector<float> w = dir.load_f32(name, {width > 0 ? width : c.hidden_size});
  if (c.gemma_norms) {
    for (float &v : w) v = 1.0f + v;
  }
  return w;
}

std::vector<float> load_bias(const ModelDir &dir, const LlamaConfig &c, int64_t block,
                             LinearId id) {
  if (!slot_has_bias(c, id)) return {};
  int64_t out = 0, in = 0;
  slot_shape(c, id, &out, &in);
  return dir.load_f32(linear_name(c, block, id) + ".bias", {out});
}

// Block i; with a checkpoint config, layers stored as qweight are imported
// through the library, the others (skipped layers) read as float.
LlamaBlock load_block(const ModelDir &dir, int64_t block, const GptqCheckpointConfig *qcfg) {
  const LlamaConfig &c = dir.config();
  LlamaBlock b;
  b.sliding_window = block_sliding_window(c, block);
  b.local_rope = !c.local_rope_layers.empty() && c.local_rope_layers.at(static_cast<size_t>(block)) != 0;
  const std::string prefix = block_prefix(block);
  b.input_norm = load_norm(dir, prefix + "input_layernorm.weight");
  if (c.sandwich_norms) {
    // Gemma 2 names the attention output's norm post_attention_layernorm.
    b.attn_out_norm = load_norm(dir, prefix + "post_attention_layernorm.weight");
    b.post_norm = load_norm(dir, prefix + "pre_feedforward_layernorm.weight");
    b.mlp_out_norm = load_norm(dir, prefix + "post_feedforward_layernorm.weight");
  } else {
    b.post_norm = load_norm(dir, prefix + "post_attention_layernorm.weight");
  }
  if (c.qk_norm) {
    b.q_norm = load_norm(dir, prefix + "self_attn.q_norm.weight", c.head_dim);
    b.k_norm = load_norm(dir, prefix + "self_attn.k_norm.weight", c.head_dim);
  }
  if (c.moe()) {
    // The router and the shared expert's gate are never quantized.
    b.experts.resize(static_cast<size_t>(c.num_experts));
    const std::string router = router_name(c, block);
    b.router = Linear(c.num_experts, c.hidden_size,
                      dir.load_f32(router + ".weight", {c.num_experts, c.hidden_size}), {});
    if (c.shared_expert_intermediate_size > 0) {
      const std::string gate = shared_expert_gate_name(block);
      b.shared_expert_gate =
          Linear(1, c.hidden_size, dir.load_f32(gate + ".weight", {1, c.hidden_size}), {});
    }
  }
  for (const LinearId id : block_linears(c)) {
    const std::string name = linear_name(c, block, id);
    int64_t out = 0, in = 0;
    slot_shape(c, id, &out, &in);
    std::vector<float> bias = load_bias(dir, c, block, id);
    if (qcfg != nullptr && dir.has(name + ".qweight")) {
      block_linear(b, id) =
          Linear(load_quantized_linear(dir, *qcfg, name, out, in), std::move(bias));
    } else if (auto half = load_half_matrix(dir, name + ".weight", out, in)) {
      // Kept as stored, as the lm_head and the embeddings are.
      block_linear(b, id) = Linear(std::move(half), std::move(bias));
    } else {
      block_linear(b, id) =
          Linear(out, in, dir.load_f32(name + ".weight", {out, in}), std::move(bias));
    }
  }
  return b;
}

}  // namespace

LlamaBlock load_dense_block(const ModelDir &dir, int64_t block) {
  return load_block(dir, block, nullptr);
}

void load_dense_outer(const ModelDir &dir, LlamaModel *model) {
  const LlamaConfig &c = dir.config();
  model->config = c;
  model->embed =
      EmbeddingTable::load(dir, "model.embed_tokens.weight", c.vocab_size, c.hidden_size);
  model->final_norm = load_norm(dir, "model.norm.weight");
  // lm_head keeps the dtype it is stored in, as the embeddings do: a tied
  // one multiplies with the embedding table's own rows, 16-bit or float32.
  if (c.tie_word_embeddings) {  // a stored lm_head.weight equals it (check_llama_tensors)
    if (auto rows = model->embed.half_rows())
      model->lm_head = Linear(std::move(rows), {});
    else
      model->lm_head = Linear(c.vocab_size, c.hidden_size, model->embed.f32_rows(), {});
  } else {
    if (auto rows = load_half_matrix(dir, "lm_head.weight", c.vocab_size, c.hidden_size))
      model->lm_head = Linear(std::move(rows), {});
    else
      model->lm_head = Linear(c.vocab_size, c.hidden_size,
                              dir.load_f32("lm_head.weight", {c.vocab_size, c.hidden_size}), {});
  }
}

LlamaModel load_model(const ModelDir &dir) {
  LlamaModel model;
  const bool quantized = is_gptq_checkpoint(dir);
  GptqCheckpointConfig qcfg;
  if (quantized) qcfg = read_gptq_checkpoint_config(dir);
  const LlamaConfig &c = dir.config();
  if (quantized && dir.has("lm_head.qweight")) {
    model.config = c;
    model.embed =
        EmbeddingTable::load(dir, "model.embed_tokens.weight", c.vocab_size, c.hidden_size);
    model.final_norm = load_norm(dir, "model.norm.weight");
    // The embeddings' pages go before the lm_head is imported, which needs
    // a byte per code for a moment (the largest of the model's layers).
    dir.release_pages();
    model.lm_head =
        Linear(load_quantized_linear(dir, qcfg, "lm_head", c.vocab_size, c.hidden_size), {});
  } else {
    load_dense_outer(dir, &model);
  }
  // Each part's bytes are copied out of the files as it loads, so the pages
  // read so far are let go after every part: a model does not sit in memory
  // twice, as the files' pages and as the loaded tensors.
  dir.release_pages();
  model.blocks.reserve(static_cast<size_t>(c.num_hidden_layers));
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    throw_if_interrupted();
    model.blocks.push_back(load_block(dir, i, quantized ? &qcfg : nullptr));
    dir.release_pages();
  }
  return model;
}

void set_matmul(LlamaModel *model, const MatmulChoice &choice) {
  for (LlamaBlock &b : model->blocks) {
    for (const LinearId id : block_linears(model->config)) block_linear(b, id).set_matmul(choice);
    b.qkv.set_matmul(choice);  // joined layers (joined_linears.h), if any
    b.gate_up.set_matmul(choice);
  }
  model->lm_head.set_matmul(choice);
}

bool has_quantized_layers(const LlamaModel &model) {
  if (model.lm_head.quantized()) return true;
  for (const LlamaBlock &b : model.blocks) {
    for (const LinearId id : block_linears(model.config)) {
      if (block_linear(b, id).quantized()) return true;
    }
    if (b.qkv.quantized() || b.gate_up.quantized()) return true;
  }
  return false;
}

}  // namespace gptqtool
