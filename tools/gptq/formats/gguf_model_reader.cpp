#include "formats/gguf_model_reader.h"

#include <algorithm>
#include <map>

#include "common/tool_error.h"
#include "formats/gguf_names.h"
#include "formats/gguf_reader.h"
#include "model/model_dir.h"

namespace gptqtool {

namespace {

std::string type_name_of(uint32_t type) {
  switch (type) {
    case 0: return "F32";
    case 1: return "F16";
    case 2: return "Q4_0";
    case 3: return "Q4_1";
    case 6: return "Q5_0";
    case 7: return "Q5_1";
    case 8: return "Q8_0";
    case 12: return "Q4_K";
    case 13: return "Q5_K";
    case 14: return "Q6_K";
    default: return "type " + std::to_string(type);
  }
}

// llama.cpp's LLaMA rows (dimension pairs adjacent) back to Hugging Face's
// (each head's halves): row j·head_dim/2 + i of a head is row 2i + j.
std::vector<float> unpermute_rope_rows(const std::vector<float> &in, int64_t heads,
                                       int64_t head_dim, int64_t row_len) {
  std::vector<float> out(in.size());
  const int64_t half = head_dim / 2;
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t i = 0; i < half; ++i)
      for (int64_t j = 0; j < 2; ++j) {
        const int64_t hf = h * head_dim + j * half + i, cpp = h * head_dim + 2 * i + j;
        std::copy_n(&in[cpp * row_len], row_len, &out[hf * row_len]);
      }
  return out;
}

}  // namespace

LlamaModel load_gguf_model(const ModelDir &original, const std::string &path,
                           std::string *type_name) {
  const LlamaConfig &c = original.config();
  if (c.model_type != "llama" && c.model_type != "mistral" && c.model_type != "qwen2") {
    throw ToolError("--gguf: --model " + original.path() + " is a " + c.architecture +
                    "; GGUF files are read for LLaMA, Mistral and Qwen2 models only");
  }
  GgufReader file(path);
  const std::string arch = file.string_value("general.architecture");
  const std::string want_arch = c.model_type == "qwen2" ? "qwen2" : "llama";
  if (arch != want_arch)
    throw ToolError("--gguf " + path + " is a " + arch + " model, but --model " + original.path() +
                    " is " + want_arch + " in llama.cpp's terms");
  std::map<std::string, const GgufTensorView *> tensors;
  for (const GgufTensorView &t : file.tensors()) tensors[t.name] = &t;
  // A tensor as float32, after checking its shape ([rows, cols]; rows 0 for
  // a vector of cols).
  const auto load = [&](const std::string &name, int64_t rows, int64_t cols) {
    const auto it = tensors.find(name);
    if (it == tensors.end()) throw ToolError("--gguf " + path + " has no tensor " + name);
    const GgufTensorView &t = *it->second;
    const std::vector<int64_t> want = rows > 0 ? std::vector<int64_t>{cols, rows}
                                               : std::vector<int64_t>{cols};
    if (t.ne != want)
      throw ToolError("--gguf " + path + ": tensor " + name + " does not have the shape --model " +
                      original.path() + " gives it");
    return gguf_tensor_floats(t);
  };

  LlamaModel m;
  m.config = c;
  m.embed = EmbeddingTable(c.vocab_size, c.hidden_size,
                           load("token_embd.weight", c.vocab_size, c.hidden_size));
  const bool permute = arch == "llama";
  type_name->clear();
  for (int64_t b = 0; b < c.num_hidden_layers; ++b) {
    const std::string blk = "blk." + std::to_string(b) + ".";
    LlamaBlock block;
    block.sliding_window = block_sliding_window(c, b);
    block.input_norm = load(blk + "attn_norm.weight", 0, c.hidden_size);
    block.post_norm = load(blk + "ffn_norm.weight", 0, c.hidden_size);
    for (const LinearSlot slot : block_slots(c)) {
      int64_t out = 0, in = 0;
      slot_shape(c, slot, &out, &in);
      const std::string name = blk + gguf_slot_name(slot);
      std::vector<float> weight = load(name + ".weight", out, in);
      // The linear layers' types in order of first appearance ("Q4_0";
      // "Q5_0+Q4_K+Q6_K" for a mix), naming the file's row.
      const std::string type = type_name_of(tensors.at(name + ".weight")->type);
      if (("+" + *type_name + "+").find("+" + type + "+") == std::string::npos)
        *type_name += (type_name->empty() ? "" : "+") + type;
      std::vector<float> bias;
      if (slot_has_bias(c, slot)) bias = load(name + ".bias", 0, out);
      const int64_t heads = slot == LinearSlot::Q   ? c.num_attention_heads
                            : slot == LinearSlot::K ? c.num_key_value_heads
                                                    : 0;
      if (permute && heads > 0) {
        weight = unpermute_rope_rows(weight, heads, c.head_dim, in);
        if (!bias.empty()) bias = unpermute_rope_rows(bias, heads, c.head_dim, 1);
      }
      block_linear(block, slot) = Linear(out, in, std::move(weight), std::move(bias));
    }
    m.blocks.push_back(std::move(block));
  }
  m.final_norm = load("output_norm.weight", 0, c.hidden_size);
  // No output.weight: llama.cpp ties the output to the embeddings, whose
  // float32 rows the lm_head then shares.
  m.lm_head = tensors.count("output.weight")
                  ? Linear(c.vocab_size, c.hidden_size,
                           load("output.weight", c.vocab_size, c.hidden_size), {})
                  : Linear(c.vocab_size, c.hidden_size, m.embed.f32_rows(), {});
  return m;
}

}  // namespace gptqtool
