// Writing a quantized model as a GPTQ checkpoint directory that transformers,
// vLLM and GPTQModel load: model.safetensors (or shards and their index) with qweight / qzeros / scales /
// g_idx per quantized layer and every other tensor in the checkpoint's float
// dtype (config.json's torch_dtype), config.json
// with quantization_config, quantize_config.json, the tokenizer files, and a
// per-layer report. The directory appears whole or not at all: everything is
// written into a temporary sibling directory, synced, and renamed into place.
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include "formats/safetensors.h"
#include "pipeline/quantize_model.h"

namespace gptqtool {

class ModelDir;

struct CheckpointOptions {
  // V1 (zero − 1, what readers assume by default) for symmetric runs; V2 is
  // chosen automatically when any layer is asymmetric (V1 cannot store a
  // zero of 0). Forcing V1 on such a model fails before anything is written.
  enum class Format { Auto, V1, V2 } format = Format::Auto;
  // The dtype of every tensor left unquantized (embeddings, norms, biases,
  // an unquantized lm_head); scales are always F16, as the format requires.
  // Auto follows the Hugging Face GPTQ convention: bfloat16 when the source
  // model is bfloat16, float16 otherwise (a float32 model included).
  enum class DType { Auto, F16, BF16, F32 } dtype = DType::Auto;
  // Tensor data per safetensors file, as transformers' max_shard_size: when
  // the weights exceed it they are split, in order, into
  // model-0000N-of-0000M.safetensors with model.safetensors.index.json; a
  // tensor larger than the limit gets a file of its own.
  uint64_t max_shard_bytes = 4'000'000'000;
  // Replace an existing output directory, which must be a checkpoint this
  // tool wrote (is_checkpoint_we_wrote); anything else is refused.
  bool overwrite = false;
  // What the run read besides the source model (calibration files): the
  // output must be apart from all of them and from the model.
  std::vector<std::string> inputs;
  const std::atomic<bool> *interrupted = nullptr;
  // Called before each file is written (its name); a throw aborts the write.
  // Tests use it to interrupt a write half-way.
  std::function<void(const std::string &file)> before_file;
  std::string tool_version;  // recorded in the report
  // Mixtral: write the experts and router under the names GPTQModel 7
  // loads under transformers 5 (model.layers.N.mlp.experts.E.gate_proj /
  // up_proj / down_proj, mlp.gate) instead of the model's own
  // (block_sparse_moe.experts.E.w1 / w3 / w2, block_sparse_moe.gate). This
  // tool reads both. Other models' names are GPTQModel's already.
  bool gptqmodel_expert_names = false;
};

// The dtype `choice` resolves to for `source`: BF16 when the source's
// config.json says bfloat16 (or says nothing and its embeddings are BF16),
// else F16, unless `choice` names one.
TensorDType unquantized_dtype(const ModelDir &source, CheckpointOptions::DType choice);

// Before any work: every float tensor that is certain to be written
// unquantized (all but the linear layers' weights, which a run may
// quantize: embeddings, norms, biases) fits `dtype`. Throws the ToolError
// the writer would throw hours later, naming the tensor.
void check_unquantized_tensors_fit(const ModelDir &source, TensorDType dtype);

// The report as JSON text (also written into the checkpoint).
std::string quantize_report_json(const QuantizeResult &result, const std::string &source_dir);

// Throws ToolError; on any failure the output path is left exactly as it was.
// An output that is, contains or lies inside an input is refused before
// anything is written.
void write_gptq_checkpoint(const ModelDir &source, const QuantizeResult &result,
                           const QuantizeOptions &quantize_options,
                           const CheckpointOptions &options, const std::string &out_dir);

// Files copied from the source directory when present.
extern const char *const kTokenizerFiles[];

}  // namespace gptqtool
