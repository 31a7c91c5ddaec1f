// Writing a quantized model as one GGUF file that llama.cpp loads: llama.cpp's
// architecture metadata (llama for LLaMA and Mistral, qwen2 for Qwen2), the
// tokenizer, and every tensor under llama.cpp's name: the linear layers as
// GPTQ left them on the GGUF grid (q and k rows permuted for llama.cpp's
// LLaMA RoPE, which pairs adjacent dimensions where Hugging Face pairs
// halves), the embeddings and output round-to-nearest on the grid llama.cpp
// gives them for the type (formats/gguf_types.h), norms and biases as
// float32.
#pragma once

#include <atomic>
#include <string>
#include <vector>

#include "formats/gguf_types.h"
#include "gptq.h"
#include "pipeline/quantize_model.h"

namespace gptqtool {

class ModelDir;

// Checks, before any work, that llama.cpp can represent the model as a GGUF
// of this type (architecture, RoPE, sliding windows, biases, tokenizer,
// widths the blocks need). Throws ToolError naming the problem.
void check_gguf_representable(const ModelDir &model, const GgufType &type);

// Writes the file atomically (formats/gguf_file.h); result holds the linear
// layers quantized with the grids gguf_linear_grid gives them. Throws
// ToolError; on failure `path` is left as it was.
void write_gguf_model(const ModelDir &model, const QuantizeResult &result, const GgufType &type,
                      int32_t num_threads, const std::string &path,
                      const std::atomic<bool> *interrupted);

// Whether `path` is a GGUF file (starts with the magic "GGUF"): what
// quantize --overwrite may replace.
bool is_gguf_file(const std::string &path);

}  // namespace gptqtool
