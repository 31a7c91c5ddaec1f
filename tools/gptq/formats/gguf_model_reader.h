// A GGUF file of a model (ours, or llama.cpp's own quantization of it) read
// back into the tool's forward pass: every tensor decoded to float32 (as
// llama.cpp dequantizes it), llama.cpp's names mapped back to the model's
// layers and the q/k row permutation of its LLaMA layout undone. The
// model's own directory supplies the config; the file must be of that
// model (architecture and shapes are checked).
#pragma once

#include <string>

#include "model/llama_model.h"

namespace gptqtool {

class ModelDir;

// Throws ToolError naming the file and the first mismatch or missing tensor.
// *type_name gets the GGML types of the linear layers in order of first
// appearance ("Q4_0"; "Q5_0+Q4_K+Q6_K" for a mix).
LlamaModel load_gguf_model(const ModelDir &original, const std::string &path,
                           std::string *type_name);

}  // namespace gptqtool
