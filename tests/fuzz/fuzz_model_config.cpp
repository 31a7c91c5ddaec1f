// libFuzzer harness: a model's config.json (tools/gptq/model/model_config)
// on arbitrary bytes. A config the parser accepts must be usable as the
// loader uses it: its dimension products are computed (overflow-checked),
// and where the head is small enough to try cheaply, the RoPE tables are
// built and applied to one token of every head, as the forward pass does.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/tool_error.h"
#include "model/model_config.h"
#include "model/rope.h"

using namespace gptqtool;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const nlohmann::json config =
      nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (config.is_discarded()) return 0;  // not JSON: the reader refuses it before parsing
  try {
    const LlamaConfig c = parse_llama_config(config, "fuzz/config.json");
    const int64_t q = c.q_dim(), kv = c.kv_dim();  // throw ToolError on overflow
    if (q <= 0 || kv <= 0 || c.head_dim <= 0 || c.head_dim % 2 != 0) std::abort();
    if (c.num_attention_heads % c.num_key_value_heads != 0) std::abort();
    if (c.head_dim <= 256 && c.num_attention_heads <= 64) {
      const RopeFrequencies f = rope_frequencies(c, 4);
      if (static_cast<int64_t>(f.inv_freq.size()) != c.head_dim / 2) std::abort();
      const Rope rope(c, 4);
      std::vector<float> x(static_cast<size_t>(q), 1.0f);
      rope.apply(x.data(), 1, c.num_attention_heads, 3);
    }
  } catch (const ToolError &) {
  }
  return 0;
}
