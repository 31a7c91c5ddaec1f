// The file types `--gguf-type` writes and which GGUF grid each tensor of
// such a file gets: llama.cpp's own choices (llama-quant.cpp's
// llama_tensor_get_type and tensor_type_fallback, for dense LLaMA-family
// models), so that a file of ours holds the same types as llama-quantize's
// of the same name.
//
//   Linear layers: the type's grid (Q4_K for Q4_K_M, Q5_K for Q5_K_M); in
//   the _M mixes, attn_v and ffn_down of the layers use_more_bits picks
//   get Q6_K: i < n/8, i >= 7n/8, or (i − n/8) mod 3 = 2, for layer i of n
//   (attn_v counted as llama.cpp counts them, one per layer), and a 70B
//   model as llama.cpp tells one (llama with 80 layers and grouped KV
//   heads, or qwen2 with 80 layers) has its Q4_K attn_v raised to Q5_K.
//   The output role (output.weight, or the token embeddings when tied):
//   Q8_0 in a Q8_0 file, Q6_K otherwise.
//   Untied token embeddings: the type's grid.
//   Then, for every tensor, a K-quant whose row length (the layer's input
//   width) is not a multiple of 256 falls back to a 32-column type, as
//   llama.cpp does: Q4_K to Q5_0, Q5_K to Q5_1, Q6_K to Q8_0.
//
// The plain K types (Q4_K, Q5_K, Q6_K) put every linear layer on their
// grid (what llama-quantize --pure does to them), with the output role and
// fallbacks as above.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "gptq.h"
#include "model/llama_model.h"

namespace gptqtool {

struct GgufType {
  std::string name;     // "Q4_0", ..., "Q4_K_M"
  gptq_grid grid;       // the linear layers' grid before the rules
  uint32_t file_type;   // llama.cpp's llama_ftype, general.file_type
  bool medium_mix;      // the _M rules (attn_v and ffn_down Q6_K)
};

// The types --gguf-type takes, in the order the help lists them.
const std::vector<GgufType> &gguf_types();
// Throws ToolError listing the types for an unknown name.
const GgufType &gguf_type_named(const std::string &name);
// "Q4_0, Q4_1, ..., Q5_K_M" for messages.
std::string gguf_type_list();

// llama.cpp's name of a grid ("Q6_K"), bits of its codes.
const char *grid_name(gptq_grid grid);
int32_t grid_bits(gptq_grid grid);
// Columns per group of the grid's codes (32; 16 for Q6_K).
int32_t grid_group(gptq_grid grid);

// A K-quant whose rows of `width` are not whole 256-column blocks becomes
// llama.cpp's fallback type; any other grid is returned as is.
gptq_grid gguf_fallback(gptq_grid grid, int64_t width);

// The grid of the linear layer `slot` of block `block` (see above).
gptq_grid gguf_linear_grid(const GgufType &type, const LlamaConfig &c, int64_t block,
                           LinearSlot slot);
// The grid of the output role, and of untied token embeddings.
gptq_grid gguf_output_grid(const GgufType &type, const LlamaConfig &c);
gptq_grid gguf_embedding_grid(const GgufType &type, const LlamaConfig &c);

// How many tensors the file holds in each grid, by grid name, for the
// run's report (norms and biases, always F32, not counted).
std::map<std::string, int64_t> gguf_grid_counts(const GgufType &type, const LlamaConfig &c);

}  // namespace gptqtool
