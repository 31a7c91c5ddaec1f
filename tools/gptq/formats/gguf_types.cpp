#include "formats/gguf_types.h"

#include "common/tool_error.h"

namespace gptqtool {

namespace {

// llama.cpp's use_more_bits: the first and last eighth of the layers and
// every third one between.
bool use_more_bits(int64_t layer, int64_t layers) {
  return layer < layers / 8 || layer >= 7 * layers / 8 || (layer - layers / 8) % 3 == 2;
}

// llama.cpp calls a model 70B (and then raises its Q4_K attn_v to Q5_K)
// when it is a llama of 80 layers with grouped KV heads, or a qwen2 of 80
// layers.
bool llama_cpp_70b(const LlamaConfig &c) {
  if (c.num_hidden_layers != 80) return false;
  if (c.model_type == "qwen2") return true;
  return c.num_attention_heads != c.num_key_value_heads;
}

bool is_k_quant(gptq_grid grid) {
  return grid == GPTQ_GRID_Q4_K || grid == GPTQ_GRID_Q5_K || grid == GPTQ_GRID_Q6_K;
}

}  // namespace

const std::vector<GgufType> &gguf_types() {
  // llama_ftype numbers: LLAMA_FTYPE_MOSTLY_Q4_0 = 2, Q4_1 = 3, Q8_0 = 7,
  // Q5_0 = 8, Q5_1 = 9, Q4_K_M = 15, Q5_K_M = 17, Q6_K = 18. The plain
  // Q4_K and Q5_K files record Q4_K_M and Q5_K_M, the type llama.cpp itself
  // infers for a file whose tensors are mostly Q4_K or Q5_K.
  static const std::vector<GgufType> types = {
      {"Q4_0", GPTQ_GRID_Q4_0, 2, false},   {"Q4_1", GPTQ_GRID_Q4_1, 3, false},
      {"Q5_0", GPTQ_GRID_Q5_0, 8, false},   {"Q5_1", GPTQ_GRID_Q5_1, 9, false},
      {"Q8_0", GPTQ_GRID_Q8_0, 7, false},   {"Q4_K", GPTQ_GRID_Q4_K, 15, false},
      {"Q5_K", GPTQ_GRID_Q5_K, 17, false},  {"Q6_K", GPTQ_GRID_Q6_K, 18, false},
      {"Q4_K_M", GPTQ_GRID_Q4_K, 15, true}, {"Q5_K_M", GPTQ_GRID_Q5_K, 17, true},
  };
  return types;
}

std::string gguf_type_list() {
  std::string names;
  for (const GgufType &t : gguf_types()) names += (names.empty() ? "" : ", ") + t.name;
  return names;
}

const GgufType &gguf_type_named(const std::string &name) {
  for (const GgufType &t : gguf_types())
    if (t.name == name) return t;
  throw ToolError("--gguf-type '" + name + "' is not a type this tool writes (" + gguf_type_list() +
                  ")");
}

const char *grid_name(gptq_grid grid) {
  switch (grid) {
    case GPTQ_GRID_Q4_0: return "Q4_0";
    case GPTQ_GRID_Q4_1: return "Q4_1";
    case GPTQ_GRID_Q5_0: return "Q5_0";
    case GPTQ_GRID_Q5_1: return "Q5_1";
    case GPTQ_GRID_Q8_0: return "Q8_0";
    case GPTQ_GRID_Q4_K: return "Q4_K";
    case GPTQ_GRID_Q5_K: return "Q5_K";
    case GPTQ_GRID_Q6_K: return "Q6_K";
    default: throw ToolError("internal error: grid " + std::to_string(grid) + " has no GGML name");
  }
}

int32_t grid_bits(gptq_grid grid) {
  switch (grid) {
    case GPTQ_GRID_Q5_0:
    case GPTQ_GRID_Q5_1:
    case GPTQ_GRID_Q5_K: return 5;
    case GPTQ_GRID_Q6_K: return 6;
    case GPTQ_GRID_Q8_0: return 8;
    default: return 4;
  }
}

int32_t grid_group(gptq_grid grid) { return grid == GPTQ_GRID_Q6_K ? 16 : 32; }

gptq_grid gguf_fallback(gptq_grid grid, int64_t width) {
  if (!is_k_quant(grid) || width % 256 == 0) return grid;
  switch (grid) {
    case GPTQ_GRID_Q4_K: return GPTQ_GRID_Q5_0;
    case GPTQ_GRID_Q5_K: return GPTQ_GRID_Q5_1;
    default: return GPTQ_GRID_Q8_0;
  }
}

gptq_grid gguf_linear_grid(const GgufType &type, const LlamaConfig &c, int64_t block,
                           LinearSlot slot) {
  gptq_grid grid = type.grid;
  if (type.medium_mix) {
    const bool more_bits = use_more_bits(block, c.num_hidden_layers);
    if ((slot == LinearSlot::V || slot == LinearSlot::Down) && more_bits) grid = GPTQ_GRID_Q6_K;
    if (slot == LinearSlot::Qkv)  // fused q/k/v: one step up
      grid = type.grid == GPTQ_GRID_Q4_K ? GPTQ_GRID_Q5_K : GPTQ_GRID_Q6_K;
  }
  if (type.medium_mix && slot == LinearSlot::V && llama_cpp_70b(c) && grid == GPTQ_GRID_Q4_K)
    grid = GPTQ_GRID_Q5_K;
  int64_t out = 0, in = 0;
  slot_shape(c, slot, &out, &in);
  return gguf_fallback(grid, in);
}

gptq_grid gguf_output_grid(const GgufType &type, const LlamaConfig &c) {
  return type.grid == GPTQ_GRID_Q8_0 ? GPTQ_GRID_Q8_0 : gguf_fallback(GPTQ_GRID_Q6_K, c.hidden_size);
}

gptq_grid gguf_embedding_grid(const GgufType &type, const LlamaConfig &c) {
  return c.tie_word_embeddings ? gguf_output_grid(type, c) : gguf_fallback(type.grid, c.hidden_size);
}

std::map<std::string, int64_t> gguf_grid_counts(const GgufType &type, const LlamaConfig &c) {
  std::map<std::string, int64_t> counts;
  ++counts[grid_name(gguf_embedding_grid(type, c))];
  if (!c.tie_word_embeddings) ++counts[grid_name(gguf_output_grid(type, c))];
  for (int64_t b = 0; b < c.num_hidden_layers; ++b)
    for (const LinearSlot slot : block_slots(c)) ++counts[grid_name(gguf_linear_grid(type, c, b, slot))];
  return counts;
}

}  // namespace gptqtool
