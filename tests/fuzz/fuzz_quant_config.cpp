// libFuzzer harness: a checkpoint's quantization_config, GPTQModel's
// per-layer "dynamic" rules (regular expressions from the file) included
// (tools/gptq/formats/checkpoint_reader). An accepted config is applied to
// the layer names of a LLaMA model, as loading a checkpoint does: the rules'
// matcher must stay within its time and memory bounds on every name.
#include <cstdint>
#include <cstdlib>
#include <string>

#include <nlohmann/json.hpp>

#include "common/tool_error.h"
#include "formats/checkpoint_reader.h"

using namespace gptqtool;

namespace {

const char *const kLayers[] = {
    "model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.k_proj",
    "model.layers.1.self_attn.v_proj", "model.layers.11.self_attn.o_proj",
    "model.layers.2.mlp.gate_proj",    "model.layers.30.mlp.up_proj",
    "model.layers.123.mlp.down_proj",  "lm_head",
    "",                                "model.layers.7.mlp.down_proj.weight",
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const nlohmann::json config =
      nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (config.is_discarded()) return 0;
  try {
    const GptqCheckpointConfig cfg = parse_gptq_checkpoint_config(config, "fuzz/config.json");
    for (const char *layer : kLayers) {
      const LayerQuantSpec s = checkpoint_spec_for(cfg, layer);
      if (!s.skip) validate_spec(s, layer);  // may refuse (ToolError), never crash
    }
  } catch (const ToolError &) {
  }
  return 0;
}
