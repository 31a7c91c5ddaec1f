#include "gptq_block_kernel.h"

#include "cuda_status.h"
#include "device_context.h"
#include "plugin_error.h"

namespace gptq_cuda {
namespace {

// A thread block takes 32 rows; each of its warps owns 8 of them outright,
// so the column loop needs no barrier across warps. In a warp, lane L works
// on row L % 8 and on the columns t with t % 4 = L / 8 (its slice): the
// lane of a column's slice quantizes it and broadcasts the error to the
// row's other lanes, and every lane feeds the errors into its own columns.
// Each element of the block is thus only ever touched by one lane, and each
// weight sees the same products and subtractions, in the same order, as in
// the CPU kernel (steps of 8 columns: within a step column by column, then
// the step's 8 errors into every later column).
constexpr int kRowsPerWarp = 8;
constexpr int kSlices = 4;
constexpr int kWarps = 4;
constexpr int kRows = kRowsPerWarp * kWarps;  // rows per thread block
constexpr int kStep = 8;                      // columns whose errors go forward together

// U's tile, from shared memory when it was copied there (the column loop
// reads an element of it for every multiply-subtract, and a global read in
// the chain of one column's quantization to the next costs its latency each
// time), else from global memory.
template <typename T>
struct UTile {
  const T *data;
  int64_t ld, last;  // U[a][b] = data[(last − a) + (last − b)·ld]
  __device__ __forceinline__ T operator()(int64_t a, int64_t b) const {
    return data[(last - a) + (last - b) * ld];
  }
};

// Shared memory: per warp, the block's columns of its 8 rows,
// tile[i·8 + r]; the 32 rows' losses; the block's groups; then, when
// shared_u, U's tile.
template <typename T>
__global__ void __launch_bounds__(kRows *kSlices)
    block_kernel(const BlockKernelArgs<T> a, bool shared_u) {
  extern __shared__ __align__(16) unsigned char shared_raw[];
  T *tiles = reinterpret_cast<T *>(shared_raw);
  double *row_losses = reinterpret_cast<double *>(tiles + kWarps * a.count * kRowsPerWarp);
  int32_t *groups_of_block = reinterpret_cast<int32_t *>(row_losses + kRows);
  T *u_shared = reinterpret_cast<T *>(groups_of_block + (a.count + 3) / 4 * 4);
  for (int64_t i = threadIdx.x; i < a.count; i += blockDim.x) groups_of_block[i] = a.group_of[a.i1 + i];
  UTile<T> u_at{a.u_inv, a.u_ld, a.count - 1};
  const int lane = threadIdx.x % 32;
  const int warp = threadIdx.x / 32;
  if (shared_u && a.u_inv != nullptr) {
    // Leading dimension count + 1: a warp's four slices read four adjacent
    // columns of U at once, which would otherwise share one bank.
    const int64_t ld = a.count + 1;
    for (int64_t col = warp; col < a.count; col += kWarps)
      for (int64_t row = lane; row < a.count; row += 32)
        u_shared[row + col * ld] = a.u_inv[row + col * a.u_ld];
    u_at.data = u_shared;
    u_at.ld = ld;
  }

  const int64_t r0 = static_cast<int64_t>(blockIdx.x) * kRows;
  const int64_t rows = min(static_cast<int64_t>(kRows), a.n - r0);
  const int64_t first = a.span - a.count;  // state index of the block's last position

  // 1. The rows' block-start weights: into the state (coalesced along each
  //    row) and, for the block's own positions, into the warps' tiles.
  for (int rl = warp; rl < kRows; rl += kWarps) {
    T *tile = tiles + (rl / kRowsPerWarp) * a.count * kRowsPerWarp + rl % kRowsPerWarp;
    const int64_t r = r0 + rl;
    for (int64_t j = lane; j < a.span; j += 32) {
      if (rl >= rows) {
        if (j >= first) tile[(a.span - 1 - j) * kRowsPerWarp] = T(0);  // padding: never stored
        continue;
      }
      T v = a.w[r * a.k + a.c0 + j];
      if (a.update != nullptr) v = v + a.update[r * a.span + j];
      a.state[r * a.span + j] = v;
      if (j >= first) tile[(a.span - 1 - j) * kRowsPerWarp] = v;
    }
  }
  __syncthreads();

  // 2. Parameters of the groups whose first position is in the block, from
  //    the block-start weights of their positions [p, p + group_size), which
  //    the state holds at [s_end − end, s_end − p): a thread per group and
  //    row.
  if (a.dynamic_groups) {
    const int64_t i2 = a.i1 + a.count;
    const int64_t p0 = (a.i1 + a.group_size - 1) / a.group_size * a.group_size;
    const int64_t groups = p0 < i2 ? (i2 - p0 + a.group_size - 1) / a.group_size : 0;
    for (int64_t idx = threadIdx.x; idx < groups * kRows; idx += blockDim.x) {
      const int64_t rl = idx % kRows, p = p0 + (idx / kRows) * a.group_size;
      if (rl >= rows) continue;
      const int64_t end = min(a.k, p + a.group_size);
      const int64_t r = r0 + rl;
      const int64_t g = a.group_of[p];
      if (end <= i2) {
        // Inside the block: from the tile, read backwards (the state's order).
        const T *row = tiles + (rl / kRowsPerWarp) * a.count * kRowsPerWarp + rl % kRowsPerWarp;
        find_group_params(row + (end - 1 - a.i1) * kRowsPerWarp, -kRowsPerWarp, end - p, a.quant,
                          &a.scale[g * a.n + r], &a.zero[g * a.n + r]);
      } else {
        find_group_params(a.state + r * a.span + (a.s_end - end), 1, end - p, a.quant,
                          &a.scale[g * a.n + r], &a.zero[g * a.n + r]);
      }
    }
    __syncthreads();
  }

  // 3. The columns.
  const int rw = lane % kRowsPerWarp;    // this lane's row in the warp
  const int slice = lane / kRowsPerWarp;  // this lane's columns: t % 4 == slice
  const int64_t rl = static_cast<int64_t>(warp) * kRowsPerWarp + rw;
  const int64_t r = r0 + rl;
  const bool valid = rl < rows;
  T *tile = tiles + warp * a.count * kRowsPerWarp + rw;
  const bool feed = a.u_inv != nullptr;
  double loss = 0.0;
  int64_t current_group = -1;
  T s = T(1), z = T(0);
  for (int64_t i = 0; i < a.count; i += kStep) {
    const int64_t step_end = min(a.count, i + kStep);
    T ev[kStep];
#pragma unroll
    for (int jj = 0; jj < kStep; ++jj) {
      const int64_t j = i + jj;
      if (j >= step_end) break;
      const int64_t p = a.i1 + j;
      const int64_t g = groups_of_block[j];
      if (g != current_group) {
        if (valid) {
          s = a.scale[g * a.n + r];
          z = a.zero[g * a.n + r];
        }
        current_group = g;
      }
      const int owner = static_cast<int>(j % kSlices);
      T e = T(0);
      double term = 0.0;
      if (slice == owner) {
        T deq;
        const T code = quantize_step(tile[j * kRowsPerWarp], s, z, a.quant.maxq,
                                     feed ? u_at(j, j) : T(0), &deq, &e, &term);
        tile[j * kRowsPerWarp] = deq;
        if (valid) a.codes[p * a.n + r] = static_cast<uint8_t>(code);
      }
      e = __shfl_sync(0xffffffffu, e, owner * kRowsPerWarp + rw);
      loss += term;  // this lane's columns only; the row's sum is taken at the end
      if (feed) {
        ev[jj] = e;
        for (int64_t t = j + 1; t < step_end; ++t)
          if (t % kSlices == slice)
            tile[t * kRowsPerWarp] = feed_forward(tile[t * kRowsPerWarp], e, u_at(j, t));
      }
    }
    if (feed && step_end - i == kStep) {
      const int64_t t0 = step_end + ((slice - step_end % kSlices) + kSlices) % kSlices;
      for (int64_t t = t0; t < a.count; t += kSlices) {
        T v = tile[t * kRowsPerWarp];
#pragma unroll
        for (int m = 0; m < kStep; ++m) v = feed_forward(v, ev[m], u_at(i + m, t));
        tile[t * kRowsPerWarp] = v;
      }
    }
  }
  __syncwarp();

  // 4. The block's original weights become the residuals w − q (position
  //    i1 + i of row r at column K−1−i1−i), coalesced along each row.
  const T *warp_tile = tiles + warp * a.count * kRowsPerWarp;
  for (int rr = 0; rr < kRowsPerWarp; ++rr) {
    const int64_t row_local = static_cast<int64_t>(warp) * kRowsPerWarp + rr;
    if (row_local >= rows) break;
    T *w_row = a.w + (r0 + row_local) * a.k + (a.k - 1 - a.i1);  // position i1 + i at w_row[-i]
    for (int64_t i = lane; i < a.count; i += 32)
      w_row[-i] = sub_rn(w_row[-i], warp_tile[i * kRowsPerWarp + rr]);
  }

  // 5. The loss of each tile of 16 rows: a row's four slices, then the
  //    rows in order (the CPU sums each row column by column: the totals
  //    differ in rounding only).
  loss += __shfl_down_sync(0xffffffffu, loss, 2 * kRowsPerWarp);
  loss += __shfl_down_sync(0xffffffffu, loss, kRowsPerWarp);
  if (slice == 0) row_losses[rl] = loss;
  __syncthreads();
  if (threadIdx.x == 0 || threadIdx.x == 16) {
    const int begin = threadIdx.x;
    if (begin < rows) {
      double sum = 0.0;
      for (int l = begin; l < begin + 16 && l < rows; ++l) sum += row_losses[l];
      a.tile_loss[(r0 + begin) / 16] = sum;
    }
  }
}

}  // namespace

template <typename T>
size_t block_kernel_shared_bytes(int64_t count) {
  return sizeof(T) * static_cast<size_t>(kWarps * count * kRowsPerWarp) + sizeof(double) * kRows +
         sizeof(int32_t) * static_cast<size_t>((count + 3) / 4 * 4);
}

template <typename T>
void launch_block_kernel(const BlockKernelArgs<T> &args, cudaStream_t stream) {
  const size_t base = block_kernel_shared_bytes<T>(args.count);
  const size_t with_u = base + sizeof(T) * static_cast<size_t>(args.count * (args.count + 1));
  const bool shared_u = with_u <= device_info().shared_per_block_optin;
  const size_t shared = shared_u ? with_u : base;
  static thread_local size_t raised = 48 * 1024;
  if (shared > raised) {
    check_cuda(cudaFuncSetAttribute(block_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    static_cast<int>(shared)),
               "cudaFuncSetAttribute");
    raised = shared;
  }
  const unsigned blocks = static_cast<unsigned>((args.n + kRows - 1) / kRows);
  block_kernel<T><<<blocks, kRows * kSlices, shared, stream>>>(args, shared_u);
  check_launch("block_kernel");
}

template size_t block_kernel_shared_bytes<float>(int64_t);
template size_t block_kernel_shared_bytes<double>(int64_t);
template void launch_block_kernel<float>(const BlockKernelArgs<float> &, cudaStream_t);
template void launch_block_kernel<double>(const BlockKernelArgs<double> &, cudaStream_t);

}  // namespace gptq_cuda
