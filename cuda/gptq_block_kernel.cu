#include "gptq_block_kernel.h"

#include "cuda_status.h"
#include "plugin_error.h"

namespace gptq_cuda {
namespace {

constexpr int kRows = 32;   // rows per thread block, one per lane
constexpr int kWarps = 8;   // warps sharing the feed-forward
constexpr int kStep = 8;    // columns whose errors go forward together (as the CPU)
constexpr int kPitch = kRows + 1;  // padded row of the tile: no bank conflicts

template <typename T>
__device__ __forceinline__ T u_at(const BlockKernelArgs<T> &a, int64_t row, int64_t col) {
  return a.u_inv[(a.count - 1 - row) + (a.count - 1 - col) * a.u_ld];
}

// Shared memory: the block's columns for the thread block's rows,
// tile[i·kPitch + lane] (column i of the block, lane's row), then one step's
// errors, errors[m·kRows + lane], then the lanes' losses.
template <typename T>
__global__ void __launch_bounds__(kRows *kWarps)
    block_kernel(const BlockKernelArgs<T> a) {
  extern __shared__ __align__(16) unsigned char shared_raw[];
  T *tile = reinterpret_cast<T *>(shared_raw);
  T *errors = tile + a.count * kPitch;
  double *lane_losses = reinterpret_cast<double *>(errors + kStep * kRows);

  const int lane = threadIdx.x % kRows;
  const int warp = threadIdx.x / kRows;
  const int64_t r0 = static_cast<int64_t>(blockIdx.x) * kRows;
  const int64_t rows = min(static_cast<int64_t>(kRows), a.n - r0);
  const int64_t first = a.span - a.count;  // state index of the block's last position

  // 1. The rows' block-start weights: into the state (coalesced along each
  //    row) and, for the block's own positions, into the tile.
  for (int64_t idx = threadIdx.x; idx < kRows * a.span; idx += blockDim.x) {
    const int64_t rl = idx / a.span, j = idx % a.span;
    if (rl >= rows) {
      if (j >= first) tile[(a.span - 1 - j) * kPitch + rl] = T(0);  // padding: never stored
      continue;
    }
    const int64_t r = r0 + rl;
    T v = a.w[r * a.k + a.c0 + j];
    if (a.update != nullptr) v = v + a.update[r * a.span + j];
    a.state[r * a.span + j] = v;
    if (j >= first) tile[(a.span - 1 - j) * kPitch + rl] = v;
  }
  __syncthreads();

  // 2. Parameters of the groups whose first position is in the block, from
  //    the block-start weights of their positions [p, p + group_size), which
  //    the state holds at [s_end − end, s_end − p): one warp per group.
  if (a.dynamic_groups) {
    const int64_t i2 = a.i1 + a.count;
    const int64_t first_group = (a.i1 + a.group_size - 1) / a.group_size;
    int64_t index = 0;
    for (int64_t p = first_group * a.group_size; p < i2; p += a.group_size, ++index) {
      if (index % kWarps != warp || lane >= rows) continue;
      const int64_t end = min(a.k, p + a.group_size);
      const int64_t r = r0 + lane;
      const int64_t g = a.group_of[p];
      find_group_params(a.state + r * a.span + (a.s_end - end), 1, end - p, a.quant,
                        &a.scale[g * a.n + r], &a.zero[g * a.n + r]);
    }
    __syncthreads();
  }

  // 3. The columns: warp 0 quantizes a step of kStep columns, feeding each
  //    column's error into the rest of the step; then all warps feed the
  //    step's errors into every later column of the block. Each weight sees
  //    the same products and subtractions, in the same order, as in the CPU
  //    kernel.
  const bool feed = a.u_inv != nullptr;
  double lane_loss = 0.0;
  int64_t current_group = -1;
  T s = T(1), z = T(0);
  const int64_t r = r0 + lane;
  for (int64_t i = 0; i < a.count; i += kStep) {
    const int64_t step_end = min(a.count, i + kStep);
    if (warp == 0) {
      for (int64_t j = i; j < step_end; ++j) {
        const int64_t p = a.i1 + j;
        const int64_t g = a.group_of[p];
        if (g != current_group) {
          if (lane < rows) {
            s = a.scale[g * a.n + r];
            z = a.zero[g * a.n + r];
          }
          current_group = g;
        }
        T deq, e;
        double loss_term;
        const T code = quantize_step(tile[j * kPitch + lane], s, z, a.quant.maxq,
                                     feed ? u_at(a, j, j) : T(0), &deq, &e, &loss_term);
        tile[j * kPitch + lane] = deq;
        if (lane < rows) {
          a.codes[p * a.n + r] = static_cast<uint8_t>(code);
          lane_loss += loss_term;
        }
        if (feed) {
          errors[(j - i) * kRows + lane] = e;
          for (int64_t t = j + 1; t < step_end; ++t)
            tile[t * kPitch + lane] = feed_forward(tile[t * kPitch + lane], e, u_at(a, j, t));
        }
      }
    }
    __syncthreads();
    if (feed && step_end - i == kStep) {
      T ev[kStep];
#pragma unroll
      for (int m = 0; m < kStep; ++m) ev[m] = errors[m * kRows + lane];
      for (int64_t t = step_end + warp; t < a.count; t += kWarps) {
        T v = tile[t * kPitch + lane];
#pragma unroll
        for (int m = 0; m < kStep; ++m) v = feed_forward(v, ev[m], u_at(a, i + m, t));
        tile[t * kPitch + lane] = v;
      }
      __syncthreads();
    }
  }

  // 4. The block's original weights become the residuals w − q (position
  //    i1 + i of row r at column K−1−i1−i), coalesced along each row.
  for (int64_t idx = threadIdx.x; idx < rows * a.count; idx += blockDim.x) {
    const int64_t rl = idx / a.count, i = idx % a.count;
    T *wp = a.w + (r0 + rl) * a.k + (a.k - 1 - a.i1 - i);
    *wp = sub_rn(*wp, tile[i * kPitch + rl]);
  }

  // 5. The loss of each tile of 16 rows, summed lane by lane in row order as
  //    the CPU sums it.
  if (warp == 0) lane_losses[lane] = lane_loss;
  __syncthreads();
  if (threadIdx.x == 0 || threadIdx.x == 16) {
    const int begin = threadIdx.x;
    if (begin < rows) {
      double loss = 0.0;
      for (int l = begin; l < begin + 16 && l < rows; ++l) loss += lane_losses[l];
      a.tile_loss[(r0 + begin) / 16] = loss;
    }
  }
}

}  // namespace

template <typename T>
size_t block_kernel_shared_bytes(int64_t count) {
  return sizeof(T) * static_cast<size_t>(count * kPitch + kStep * kRows) + sizeof(double) * kRows;
}

template <typename T>
void launch_block_kernel(const BlockKernelArgs<T> &args, cudaStream_t stream) {
  const size_t shared = block_kernel_shared_bytes<T>(args.count);
  static thread_local size_t raised = 48 * 1024;
  if (shared > raised) {
    check_cuda(cudaFuncSetAttribute(block_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    static_cast<int>(shared)),
               "cudaFuncSetAttribute");
    raised = shared;
  }
  const unsigned blocks = static_cast<unsigned>((args.n + kRows - 1) / kRows);
  block_kernel<T><<<blocks, kRows * kWarps, shared, stream>>>(args);
  check_launch("block_kernel");
}

template size_t block_kernel_shared_bytes<float>(int64_t);
template size_t block_kernel_shared_bytes<double>(int64_t);
template void launch_block_kernel<float>(const BlockKernelArgs<float> &, cudaStream_t);
template void launch_block_kernel<double>(const BlockKernelArgs<double> &, cudaStream_t);

}  // namespace gptq_cuda
