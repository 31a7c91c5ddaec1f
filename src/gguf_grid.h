// llama.cpp's GGUF block formats as grids for GPTQ: what each format's
// blocks hold (bits, block width, bytes, GGML type number) and how its
// parameters are found. One table, read by the config check, the CPU
// solver's quantizer and the block writer.
#pragma once

#include <cstdint>

#include "gptq.h"

namespace gptq {

// How a block's parameters follow from its weights (see gptq_grid in gptq.h;
// all then refine d (and m) by a Hessian-weighted search,
// cpu/group_params.h).
enum class BlockRule {
  kSignedMax,  // d = (weight of largest |w|, sign kept) / divisor; value (q − zero)·d
  kAbsMax,     // d = max|w| / divisor; value (q − zero)·d
  kMinMax,     // d = (max − min) / (2^bits − 1), m = min; value q·d + m
};

struct GgufGrid {
  gptq_grid grid;
  const char *name;  // llama.cpp's name of the type
  int32_t bits;
  int32_t block;        // weights per block
  int32_t block_bytes;  // bytes per block
  int32_t ggml_type;    // GGML's type number in GGUF files
  BlockRule rule;
  float divisor;  // kSignedMax, kAbsMax
  int32_t zero;   // the code of value 0 for kSignedMax and kAbsMax
};

// ggml-common.h's block_q4_0 .. block_q8_0; type numbers from ggml.h's
// ggml_type.
inline constexpr GgufGrid kGgufGrids[] = {
    {GPTQ_GRID_Q4_0, "Q4_0", 4, 32, 18, 2, BlockRule::kSignedMax, -8.0f, 8},
    {GPTQ_GRID_Q4_1, "Q4_1", 4, 32, 20, 3, BlockRule::kMinMax, 0.0f, 0},
    {GPTQ_GRID_Q5_0, "Q5_0", 5, 32, 22, 6, BlockRule::kSignedMax, -16.0f, 16},
    {GPTQ_GRID_Q5_1, "Q5_1", 5, 32, 24, 7, BlockRule::kMinMax, 0.0f, 0},
    {GPTQ_GRID_Q8_0, "Q8_0", 8, 32, 34, 8, BlockRule::kAbsMax, 127.0f, 128},
};

// The format of `grid`, or nullptr for GPTQ_GRID_GPTQ and for values that
// are not a gptq_grid. (Inline: the solver's header-only quantizer, which
// tests link without the library, reads it.)
inline const GgufGrid *gguf_grid(int32_t grid) {
  for (const GgufGrid &g : kGgufGrids)
    if (static_cast<int32_t>(g.grid) == grid) return &g;
  return nullptr;
}

}  // namespace gptq
