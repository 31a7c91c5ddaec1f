// Reading a GPTQ checkpoint directory back: its quantization_config (with
// GPTQModel's per-layer "dynamic" rules) and each quantized linear layer's
// qweight / qzeros / scales / g_idx, imported through gptq_qtensor_import.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/library_call.h"
#include "formats/layer_regex.h"
#include "pipeline/quant_spec.h"

namespace gptqtool {

class ModelDir;

struct DynamicRule {
  bool skip = false;        // "-:regex": the layer is left unquantized
  std::string regex;        // matched from the start of the layer name
  std::shared_ptr<const LayerRegex> matcher;  // regex, compiled once
  SpecOverride fields;      // "+:regex" (or a bare regex): settings that differ
};

struct GptqCheckpointConfig {
  LayerQuantSpec base;
  gptq_checkpoint_format format = GPTQ_FORMAT_V1;
  std::vector<DynamicRule> dynamic;
  bool quantize_lm_head = false;  // quantization_config.lm_head
};

bool is_gptq_checkpoint(const ModelDir &dir);
// Throws ToolError if quantization_config is missing, not "gptq", or malformed.
GptqCheckpointConfig read_gptq_checkpoint_config(const ModelDir &dir);
// The same from a config.json already parsed (`where` names it in messages).
GptqCheckpointConfig parse_gptq_checkpoint_config(const nlohmann::json &config,
                                                  const std::string &where);
// The settings the checkpoint declares for one layer (dynamic rules applied).
LayerQuantSpec checkpoint_spec_for(const GptqCheckpointConfig &cfg, const std::string &layer);

// Checks, from the headers alone, that every layer stored as qweight has the
// tensors its declared settings imply (dtypes and shapes), so that a broken
// checkpoint is refused before any long work. Throws ToolError.
void check_gptq_tensors(const ModelDir &dir, const GptqCheckpointConfig &cfg);

// Import `<name>.qweight/.qzeros/.scales/.g_idx` of a [out, in] layer, checking
// dtypes and shapes against the declared bits and group size.
std::shared_ptr<gptq_qtensor> load_quantized_linear(const ModelDir &dir,
                                                    const GptqCheckpointConfig &cfg,
                                                    const std::string &name, int64_t out,
                                                    int64_t in);

}  // namespace gptqtool
