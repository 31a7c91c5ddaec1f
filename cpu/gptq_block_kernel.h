// The inner work of one GPTQ block for a range of weight rows: for each row,
// quantize the block's columns one by one and feed each column's error into
// the rest of the block. Rows are independent here (a row's group parameters
// depend only on that row), which is what makes the block row-parallel.
#pragma once

#include <cstdint>

#include "group_params.h"
#include "super_block_params.h"

namespace gptq::cpu {

template <typename T>
struct BlockArgs {
  // Weights in reversed quantization order (position p at index k-1-p of a
  // row): the original weights for positions not yet quantized; the kernel
  // overwrites the block's positions with the residual w - q.
  T *w;
  int64_t k;
  int64_t n;
  int64_t i1, count;  // the block: positions [i1, i1+count)
  // The block-start weights of positions [i1, s_end), reversed: position p
  // of row r at state[r·span + (s_end-1-p)]. The kernel writes them for its
  // rows: W's reversed columns [c0, c0+span), plus update (row r at
  // update[r·update_ld], same column order as state) unless it is null.
  T *state;
  int64_t s_end, span, c0;
  const T *update;
  int64_t update_ld;
  const T *u_tile;   // [count, count] row-major: U[i1+a][i1+b], upper part
  bool feed_errors;  // false: round-to-nearest (U = I, nothing fed forward)
  // Groups and their parameters.
  int64_t group_size;       // columns per group (K for one group)
  bool dynamic_groups;      // parameters computed when a group's first column is reached
  const int32_t *group_of;  // [K]: group of each position
  T *scale, *zero;          // [G, N]
  // GGUF grids: the Hessian diagonal aligned with the state's columns
  // ([span]: column j is position s_end−1−j), which weighs the block scale
  // search (group_params.h, super_block_params.h); null for GPTQ's grid.
  const T *diag_state;
  // K-quants: the super-blocks' d and dmin, fixed when a super-block's first
  // position is reached, and the sub-blocks' integer scales and mins (the
  // groups); size 0 for the other grids.
  SuperParams<T> super;
  Quantizer<T> quant;
  // Outputs: the block's codes, [N, count], row by row in position order
  // (contiguous per block, so that a tile's writes are 16·count
  // consecutive bytes).
  uint8_t *codes;
  // [N rounded up to 16, count]: the block's columns while they update, 16
  // rows at a time.
  T *scratch;
};

// Processes rows [r0, r1) (r0 a multiple of 16) and writes the loss of each
// tile of 16 rows to tile_loss[0, ceil((r1 − r0)/16)): the caller sums them
// in row order, so the total does not depend on how rows were split among
// threads. Runs the AVX-512, AVX2 or portable build of the same code, as
// cpu_isa() says (isa.h: CPUID, capped by GPTQ_CPU_KERNELS); all give
// bit-identical results (no FMA contraction, same operation order).
void gptq_block_rows(const BlockArgs<float> &args, int64_t r0, int64_t r1, double *tile_loss);
void gptq_block_rows(const BlockArgs<double> &args, int64_t r0, int64_t r1, double *tile_loss);

}  // namespace gptq::cpu
