#include "formats/gguf_model_writer.h"

#include <cstring>
#include <fstream>
#include <map>

#include "common/checked_size.h"
#include "common/library_call.h"
#include "formats/gguf_file.h"
#include "formats/gguf_names.h"
#include "formats/gguf_tokenizer.h"
#include "model/llama_model.h"
#include "model/model_dir.h"

namespace gptqtool {

namespace {

GgmlType ggml_type_of(gptq_grid grid) {
  switch (grid) {
    case GPTQ_GRID_Q4_0: return GgmlType::Q4_0;
    case GPTQ_GRID_Q4_1: return GgmlType::Q4_1;
    case GPTQ_GRID_Q5_0: return GgmlType::Q5_0;
    case GPTQ_GRID_Q5_1: return GgmlType::Q5_1;
    case GPTQ_GRID_Q8_0: return GgmlType::Q8_0;
    case GPTQ_GRID_Q4_K: return GgmlType::Q4_K;
    case GPTQ_GRID_Q5_K: return GgmlType::Q5_K;
    case GPTQ_GRID_Q6_K: return GgmlType::Q6_K;
    default: throw ToolError("internal error: grid " + std::to_string(grid) + " has no GGML type");
  }
}

std::string block_name(int64_t b, const std::string &what) {
  return "blk." + std::to_string(b) + "." + what;
}

// llama.cpp's architecture for a model_type: Mistral is run as LLaMA.
std::string gguf_architecture(const LlamaConfig &c) { return c.model_type == "qwen2" ? "qwen2" : "llama"; }

std::string float_bytes(const std::vector<float> &v) {
  std::string s(v.size() * sizeof(float), '\0');
  std::memcpy(&s[0], v.data(), s.size());
  return s;
}

int64_t grid_bytes(gptq_grid grid, int64_t rows, int64_t cols, const std::string &what) {
  int64_t bytes = 0;
  check_status(gptq_gguf_size(grid, rows, cols, &bytes), what);
  return bytes;
}

std::string export_blocks(const gptq_qtensor *q, gptq_grid grid, int64_t rows, int64_t cols,
                          const std::string &what) {
  std::string bytes(static_cast<size_t>(grid_bytes(grid, rows, cols, what)), '\0');
  check_status(gptq_gguf_export(q, &bytes[0], static_cast<int64_t>(bytes.size())), what);
  return bytes;
}

// Rows of q or k from Hugging Face's RoPE layout (each head's first half of
// dimensions paired with its second half) to llama.cpp's LLaMA layout
// (dimension pairs adjacent): within each head of `head_dim` rows, new row
// 2i + j is old row j·head_dim/2 + i. `row_bytes` bytes per row.
std::string permute_rope_rows(const std::string &in, int64_t heads, int64_t head_dim,
                              size_t row_bytes) {
  std::string out(in.size(), '\0');
  const int64_t half = head_dim / 2;
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t i = 0; i < half; ++i)
      for (int64_t j = 0; j < 2; ++j) {
        const int64_t to = h * head_dim + 2 * i + j, from = h * head_dim + j * half + i;
        std::memcpy(&out[to * row_bytes], &in[from * row_bytes], row_bytes);
      }
  return out;
}

void add_architecture(GgufFile &f, const ModelDir &model, const GgufType &type) {
  const LlamaConfig &c = model.config();
  const std::string arch = gguf_architecture(c);
  f.add_string("general.architecture", arch);
  f.add_string("general.type", "model");
  std::string name = model.path();
  while (name.size() > 1 && name.back() == '/') name.pop_back();
  f.add_string("general.name", name.substr(name.find_last_of('/') + 1));
  f.add_string("general.quantized_by", std::string("libgptq ") + gptq_version_string() +
                                           " (GPTQ on the " + type.name + " grid)");
  f.add_u32("general.file_type", type.file_type);
  f.add_u32("general.quantization_version", 2);
  const auto u32 = [](int64_t v) { return static_cast<uint32_t>(v); };
  f.add_u32(arch + ".block_count", u32(c.num_hidden_layers));
  f.add_u32(arch + ".context_length", u32(c.max_position_embeddings));
  f.add_u32(arch + ".embedding_length", u32(c.hidden_size));
  f.add_u32(arch + ".feed_forward_length", u32(c.intermediate_size));
  f.add_u32(arch + ".attention.head_count", u32(c.num_attention_heads));
  f.add_u32(arch + ".attention.head_count_kv", u32(c.num_key_value_heads));
  f.add_f32(arch + ".rope.freq_base", static_cast<float>(c.rope_theta));
  f.add_f32(arch + ".attention.layer_norm_rms_epsilon", static_cast<float>(c.rms_norm_eps));
  f.add_u32(arch + ".attention.key_length", u32(c.head_dim));
  f.add_u32(arch + ".attention.value_length", u32(c.head_dim));
  f.add_u32(arch + ".rope.dimension_count", u32(c.head_dim));
  f.add_u32(arch + ".vocab_size", u32(c.vocab_size));
  if (c.rope_type == "linear") {
    f.add_string(arch + ".rope.scaling.type", "linear");
    f.add_f32(arch + ".rope.scaling.factor", static_cast<float>(c.rope_factor));
  }
}

}  // namespace

void check_gguf_representable(const ModelDir &model, const GgufType &type) {
  const LlamaConfig &c = model.config();
  const std::string what = model.path() + " cannot be written as a llama.cpp GGUF: ";
  if (c.model_type != "llama" && c.model_type != "mistral" && c.model_type != "qwen2")
    throw ToolError(what + "model_type '" + c.model_type + "' (llama, mistral and qwen2 are written)");
  if (c.rope_type != "default" && c.rope_type != "linear")
    throw ToolError(what + "its RoPE type '" + c.rope_type +
                    "' is not written (default and linear are)");
  if (c.sliding_window > 0)
    throw ToolError(what + "it uses sliding-window attention (window " +
                    std::to_string(c.sliding_window) + "), which llama.cpp's " +
                    gguf_architecture(c) + " architecture does not have");
  if (c.mlp_bias) throw ToolError(what + "its MLP has biases, which are not written");
  if (c.o_proj_bias && c.model_type == "qwen2")
    throw ToolError(what + "o_proj has a bias, which llama.cpp's qwen2 has not");
  if (c.head_dim % 2 != 0)
    throw ToolError(what + "head_dim " + std::to_string(c.head_dim) + " is odd");
  const struct {
    const char *name;
    int64_t width;
  } widths[] = {{"hidden_size", c.hidden_size}, {"intermediate_size", c.intermediate_size},
                {"num_attention_heads · head_dim", c.q_dim()}};
  for (const auto &w : widths)
    if (w.width % 32 != 0)
      throw ToolError(what + w.name + " " + std::to_string(w.width) + " is not a multiple of the " +
                      (type.grid == gguf_fallback(type.grid, w.width)
                           ? type.name + " block of 32 columns"
                           : std::string("32-column block of ") + grid_name(gguf_fallback(type.grid, w.width)) +
                                 ", which " + type.name + " falls back to for widths that are not a "
                                 "multiple of 256"));
  GgufFile scratch;  // the tokenizer's checks, before any work
  add_gguf_tokenizer(model.path(), c.vocab_size, scratch);
}

void write_gguf_model(const ModelDir &model, const QuantizeResult &result, const GgufType &type,
                      int32_t num_threads, const std::string &path,
                      const std::atomic<bool> *interrupted) {
  const LlamaConfig &c = model.config();
  check_gguf_representable(model, type);
  GgufFile f;
  add_architecture(f, model, type);
  add_gguf_tokenizer(model.path(), c.vocab_size, f);

  const bool permute = gguf_architecture(c) == "llama";
  std::map<std::string, const LayerResult *> layers;
  for (const LayerResult &l : result.layers) layers[l.name] = &l;

  const auto add_f32 = [&](const std::string &name, const std::string &source,
                           std::vector<int64_t> shape) {
    const int64_t n = shape.front();
    f.add_tensor(name, {n}, GgmlType::F32, static_cast<uint64_t>(n) * 4,
                 [&model, source, shape] { return float_bytes(model.load_f32(source, shape)); });
  };
  // A dense matrix [rows, cols] of the model, round-to-nearest on `grid`.
  const auto add_rtn = [&](const std::string &name, const std::string &source, int64_t rows,
                           int64_t cols, gptq_grid grid) {
    f.add_tensor(name, {cols, rows}, ggml_type_of(grid),
                 static_cast<uint64_t>(grid_bytes(grid, rows, cols, name)),
                 [&model, name, source, rows, cols, grid, num_threads] {
                   LayerQuantSpec spec;
                   spec.grid = grid;
                   const auto q = quantize_rtn(model.load_f32(source, {rows, cols}), rows, cols,
                                               spec, num_threads, nullptr);
                   return export_blocks(q.get(), grid, rows, cols, name);
                 });
  };

  add_rtn("token_embd.weight", "model.embed_tokens.weight", c.vocab_size, c.hidden_size,
          gguf_embedding_grid(type, c));
  for (int64_t b = 0; b < c.num_hidden_layers; ++b) {
    const std::string prefix = "model.layers." + std::to_string(b) + ".";
    add_f32(block_name(b, "attn_norm.weight"), prefix + "input_layernorm.weight", {c.hidden_size});
    for (const LinearSlot slot : block_slots(c)) {
      const std::string source = linear_name(b, slot);
      const auto found = layers.find(source);
      if (found == layers.end() || !found->second->qtensor)
        throw ToolError("internal error: " + source + " was not quantized");
      const LayerResult &l = *found->second;
      const std::string name = block_name(b, std::string(gguf_slot_name(slot)) + ".weight");
      const int64_t heads = slot == LinearSlot::Q   ? c.num_attention_heads
                            : slot == LinearSlot::K ? c.num_key_value_heads
                                                    : 0;
      const gptq_grid grid = gguf_linear_grid(type, c, b, slot);
      if (l.spec.grid != grid)
        throw ToolError("internal error: " + source + " was quantized on grid " +
                        std::to_string(l.spec.grid) + ", not " + grid_name(grid));
      const int64_t rows = l.out_features, cols = l.in_features;
      const uint64_t bytes = static_cast<uint64_t>(grid_bytes(grid, rows, cols, name));
      f.add_tensor(name, {cols, rows}, ggml_type_of(grid), bytes,
                   [&l, name, grid, rows, cols, heads, permute, head_dim = c.head_dim] {
                     std::string data = export_blocks(l.qtensor.get(), grid, rows, cols, name);
                     if (permute && heads > 0)
                       data = permute_rope_rows(data, heads, head_dim, data.size() / rows);
                     return data;
                   });
      if (slot_has_bias(c, slot)) {
        const std::string bias_name = block_name(b, std::string(gguf_slot_name(slot)) + ".bias");
        f.add_tensor(bias_name, {rows}, GgmlType::F32, static_cast<uint64_t>(rows) * 4,
                     [&model, source, rows, heads, permute, head_dim = c.head_dim] {
                       std::string data = float_bytes(model.load_f32(source + ".bias", {rows}));
                       if (permute && heads > 0) data = permute_rope_rows(data, heads, head_dim, 4);
                       return data;
                     });
      }
      if (slot == LinearSlot::O)
        add_f32(block_name(b, "ffn_norm.weight"), prefix + "post_attention_layernorm.weight",
                {c.hidden_size});
    }
  }
  add_f32("output_norm.weight", "model.norm.weight", {c.hidden_size});
  if (!c.tie_word_embeddings)
    add_rtn("output.weight", "lm_head.weight", c.vocab_size, c.hidden_size, gguf_output_grid(type, c));
  f.write(path, interrupted);
}

bool is_gguf_file(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  return in.read(magic, 4) && std::memcmp(magic, "GGUF", 4) == 0;
}

}  // namespace gptqtool
