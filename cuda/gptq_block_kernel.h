// The inner work of one GPTQ block on the GPU, the counterpart of
// cpu/gptq_block_kernel.h: for every weight row, quantize the block's
// columns one by one and feed each column's error into the rest of the
// block. Each warp owns 8 rows (see the .cu for how its lanes share them).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "quant_arith.h"

namespace gptq_cuda {

template <typename T>
struct BlockKernelArgs {
  // Weights [N, K] row-major in reversed quantization order (position p at
  // column K−1−p): original weights for positions not yet quantized; the
  // kernel turns the block's positions into the residuals w − q.
  T *w;
  int64_t n, k;
  int64_t i1, count;  // the block: positions [i1, i1 + count)
  // The block-start weights of positions [i1, s_end): the kernel writes
  // state[r·span + j] = w[r·K + c0 + j] (+ update[r·span + j]), position
  // s_end−1−j. update may be state itself (it is read before it is
  // written) or null.
  T *state;
  const T *update;
  int64_t s_end, span, c0;
  // U's diagonal tile for the block through the inverse of L's tile,
  // column-major with leading dimension u_ld: U[a][b] =
  // u_inv[(count−1−a) + (count−1−b)·u_ld]. Null: round-to-nearest.
  const T *u_inv;
  int64_t u_ld;
  int64_t group_size;       // columns per group (K for one group)
  bool dynamic_groups;      // parameters taken when a group's first position is reached
  const int32_t *group_of;  // [K] group of each position
  T *scale, *zero;          // [G, N]
  QuantParams<T> quant;
  uint8_t *codes;           // [K, N]: position p of row r at codes[p·N + r]
  double *tile_loss;        // this block's loss per tile of 16 rows, [ceil(N/16)]
};

// Bytes of shared memory the kernel needs for a block of `count` columns.
template <typename T>
size_t block_kernel_shared_bytes(int64_t count);

// Queues the kernel for all rows on `stream`.
template <typename T>
void launch_block_kernel(const BlockKernelArgs<T> &args, cudaStream_t stream);

}  // namespace gptq_cuda
