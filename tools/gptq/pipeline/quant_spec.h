// What to do with each linear layer: the run's settings, refined per layer by
// --override rules matched on the layer's name (mixed precision, skipping).
// The same rules are written into the checkpoint as GPTQModel's "dynamic"
// map, so loaders apply the same per-layer settings.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace gptqtool {

struct LayerQuantSpec {
  bool skip = false;  // leave the layer in full precision
  int32_t bits = 4;
  int32_t group_size = 128;
  bool sym = true;
  bool act_order = false;        // full act-order: g_idx follows the permutation
  bool act_group_aware = false;  // act-order that keeps groups contiguous (trivial g_idx)
  bool static_groups = false;
  double damp_percent = 0.01;
  bool mse = false;
  // gptq_precision of the Hessian, the factorization and the loop (F32 or F64).
  int32_t precision = 0;
  // GPTQ's own grid, or a GGUF block format (gptq_grid), which then fixes
  // bits and groups.
  int32_t grid = 0;
};

// One --override: a glob over layer names ('*' any run, '?' one character)
// and the fields it sets.
struct SpecOverride {
  std::string text;  // as given ("model.layers.0.*:bits=8"), for messages
  std::string pattern;
  bool skip = false;
  std::optional<int32_t> bits, group_size;
  std::optional<bool> sym, act_order, act_group_aware, mse;
  std::optional<double> damp_percent;
  // Not parsed from text: a GGUF type's per-layer grid (formats/gguf_types.h),
  // with the bits and groups that grid fixes.
  std::optional<int32_t> grid;
};

// Parses "PATTERN:skip" or "PATTERN:bits=8,group=-1,sym=0,act-order=1,damp=0.05,mse=0"
// (act-group-aware=1 is the other act-order; either one set to 1 clears the
// other, so a later rule can switch a layer's order).
// Throws ToolError naming the bad part.
SpecOverride parse_override(const std::string &text);

bool glob_match(const std::string &pattern, const std::string &name);

// The glob as an anchored regular expression (for the checkpoint's "dynamic").
std::string glob_to_regex(const std::string &pattern);

// base refined by every override whose pattern matches, in order (later wins).
LayerQuantSpec spec_for(const LayerQuantSpec &base, const std::vector<SpecOverride> &overrides,
                        const std::string &layer_name);

// Range checks of a spec (bits 2..8, group -1 or >= 1, damp in [0,1), one
// act-order at most),
// naming the layer in the message.
void validate_spec(const LayerQuantSpec &spec, const std::string &layer_name);

// The bit widths a GPTQ checkpoint can hold: 2, 3, 4 and 8. The library
// quantizes to any width from 2 to 8, but the packed layout transformers,
// vLLM and GPTQModel read has no 5-, 6- or 7-bit form.
bool storable_bits(int32_t bits);
// Throws ToolError("<what>: ... 2, 3, 4 and 8 bits ...") unless storable.
void check_storable_bits(int32_t bits, const std::string &what);

}  // namespace gptqtool
