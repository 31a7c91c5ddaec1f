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
  // K-quants: super-blocks of 256 columns whose fp16 d (and dmin) scale
  // each sub-block's small integer scale (and min); see
  // cpu/super_block_params.h for how they are chosen.
  kSuperMin,     // Q4_K, Q5_K: value d·sc·q − dmin·m, sc and m 6-bit
  kSuperSigned,  // Q6_K: value d·sc·(q − zero), sc int8
};

struct GgufGrid {
  gptq_grid grid;
  const char *name;  // llama.cpp's name of the type
  int32_t bits;
  int32_t block;        // weights per block (a K-quant's super-block)
  int32_t block_bytes;  // bytes per block
  int32_t ggml_type;    // GGML's type number in GGUF files
  BlockRule rule;
  float divisor;  // kSignedMax, kAbsMax
  int32_t zero;   // the code of value 0 for kSignedMax, kAbsMax, kSuperSigned
  // Columns per group, the unit whose parameters GPTQ fixes when it starts:
  // the block itself, or a K-quant's sub-block.
  int32_t group;

  bool super_blocks() const { return rule == BlockRule::kSuperMin || rule == BlockRule::kSuperSigned; }
  // value = q·scale + m (a min) rather than (q − zero)·scale.
  bool has_min() const { return rule == BlockRule::kMinMax || rule == BlockRule::kSuperMin; }
};

// ggml-common.h's block_q4_0 .. block_q8_0 and block_q4_K .. block_q6_K;
// type numbers from ggml.h's ggml_type. K-quants' divisor is that of a
// sub-block's own scale (Q6_K: the signed max over −32, as Q4_0's over −8).
inline constexpr GgufGrid kGgufGrids[] = {
    {GPTQ_GRID_Q4_0, "Q4_0", 4, 32, 18, 2, BlockRule::kSignedMax, -8.0f, 8, 32},
    {GPTQ_GRID_Q4_1, "Q4_1", 4, 32, 20, 3, BlockRule::kMinMax, 0.0f, 0, 32},
    {GPTQ_GRID_Q5_0, "Q5_0", 5, 32, 22, 6, BlockRule::kSignedMax, -16.0f, 16, 32},
    {GPTQ_GRID_Q5_1, "Q5_1", 5, 32, 24, 7, BlockRule::kMinMax, 0.0f, 0, 32},
    {GPTQ_GRID_Q8_0, "Q8_0", 8, 32, 34, 8, BlockRule::kAbsMax, 127.0f, 128, 32},
    {GPTQ_GRID_Q4_K, "Q4_K", 4, 256, 144, 12, BlockRule::kSuperMin, 0.0f, 0, 32},
    {GPTQ_GRID_Q5_K, "Q5_K", 5, 256, 176, 13, BlockRule::kSuperMin, 0.0f, 0, 32},
    {GPTQ_GRID_Q6_K, "Q6_K", 6, 256, 210, 14, BlockRule::kSuperSigned, -32.0f, 32, 16},
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
