#include "solver_kernels.h"

#include <algorithm>

#include "cuda_status.h"
#include "device_convert.h"

namespace gptq_cuda {
namespace {

template <typename T>
__global__ void diagonal_kernel(const T *h, int64_t k, T *diag) {
  const int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (j < k) diag[j] = h[j + j * k];
}

template <typename T>
__global__ void group_params_kernel(const T *w, int64_t n, int64_t k, int64_t group_size,
                                    int64_t groups, QuantParams<T> quant, T *scale, T *zero) {
  const int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (idx >= n * groups) return;
  const int64_t r = idx % n, g = idx / n;
  const int64_t c0 = g * group_size, c1 = min(k, c0 + group_size);
  find_group_params(w + r * k + c0, 1, c1 - c0, quant, &scale[g * n + r], &zero[g * n + r]);
}

template <typename T>
__global__ void zero_kernel(T *w, int64_t n, int64_t k, const uint8_t *dead) {
  const int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  const int64_t r = blockIdx.y + int64_t(gridDim.y) * blockIdx.z;
  if (c < k && r < n && dead[c]) w[r * k + c] = T(0);
}

template <typename T>
__global__ void permute_kernel(const T *src, int64_t n, int64_t k, const int64_t *rperm, T *dst) {
  const int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  const int64_t r = blockIdx.y + int64_t(gridDim.y) * blockIdx.z;
  if (c < k && r < n) dst[r * k + c] = src[r * k + rperm[c]];
}

template <typename T>
__global__ void fill_kernel(const T *h, int64_t k, const int64_t *rperm, const T *diag, T damp,
                            T *a) {
  const int64_t row = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  const int64_t col = blockIdx.y + int64_t(gridDim.y) * blockIdx.z;
  if (row >= k || col >= k || row < col) return;
  const int64_t i = rperm[row];
  if (row == col) {
    a[row + col * k] = diag[i] + damp;
    return;
  }
  const int64_t j = rperm[col];
  a[row + col * k] = i < j ? h[i + j * k] : h[j + i * k];
}

template <typename T>
__global__ void check_kernel(const T *l, int64_t k, int *bad) {
  const int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (j >= k) return;
  const T d = l[j + j * k];
  if (!(d > T(0)) || !isfinite(d) || !isfinite(T(1) / d)) atomicOr(bad, 1);
}

template <typename T>
__global__ void tiles_kernel(const T *l, int64_t k, int64_t block, T *diagonal, T *inverses) {
  const int64_t b = blockIdx.y;
  const int64_t i1 = b * block, i2 = min(k, i1 + block);
  const int64_t count = i2 - i1, base = k - i2;
  T *tile = diagonal + b * block * block;
  T *inverse = inverses + b * block * block;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < block * block;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t row = idx % block, col = idx / block;
    T v;
    if (row < count && col < count)
      v = row >= col ? l[(base + row) + (base + col) * k] : T(0);
    else
      v = row == col ? T(1) : T(0);
    tile[idx] = v;
    inverse[idx] = row == col ? T(1) : T(0);
  }
}

// A 32 × 32 transpose through shared memory: reads along positions' rows of
// codes, writes along the weight rows.
__global__ void unpermute_kernel(const uint8_t *by_position, int64_t n, int64_t k,
                                 const int64_t *perm, uint8_t *codes) {
  __shared__ uint8_t tile[32][33];
  const int64_t p0 = static_cast<int64_t>(blockIdx.y) * 32, r0 = static_cast<int64_t>(blockIdx.x) * 32;
  for (int i = threadIdx.y; i < 32; i += blockDim.y) {
    const int64_t p = p0 + i, r = r0 + threadIdx.x;
    if (p < k && r < n) tile[i][threadIdx.x] = by_position[p * n + r];
  }
  __syncthreads();
  for (int i = threadIdx.y; i < 32; i += blockDim.y) {
    const int64_t r = r0 + i, p = p0 + threadIdx.x;
    if (p < k && r < n) codes[r * k + perm[p]] = tile[threadIdx.x][i];
  }
}

// A grid of (ceil(x/threads), y) blocks, with y split over gridDim.z when it
// exceeds the 65535 limit of gridDim.y.
dim3 grid_2d(int64_t x, unsigned threads, int64_t y) {
  const int64_t gy = std::min<int64_t>(y, 65535);
  return dim3(blocks_for(x, threads), static_cast<unsigned>(gy),
              static_cast<unsigned>((y + gy - 1) / gy));
}

}  // namespace

template <typename T>
void extract_diagonal(const T *h, int64_t k, T *diag, cudaStream_t stream) {
  diagonal_kernel<T><<<blocks_for(k, 256), 256, 0, stream>>>(h, k, diag);
  check_launch("diagonal_kernel");
}

template <typename T>
void group_params_from_weights(const T *w, int64_t n, int64_t k, int64_t group_size,
                               int64_t groups, const QuantParams<T> &quant, T *scale, T *zero,
                               cudaStream_t stream) {
  group_params_kernel<T><<<blocks_for(n * groups, 128), 128, 0, stream>>>(w, n, k, group_size,
                                                                         groups, quant, scale,
                                                                         zero);
  check_launch("group_params_kernel");
}

template <typename T>
void zero_columns(T *w, int64_t n, int64_t k, const uint8_t *dead, cudaStream_t stream) {
  zero_kernel<T><<<grid_2d(k, 256, n), 256, 0, stream>>>(w, n, k, dead);
  check_launch("zero_kernel");
}

template <typename T>
void permute_columns(const T *src, int64_t n, int64_t k, const int64_t *rperm, T *dst,
                     cudaStream_t stream) {
  permute_kernel<T><<<grid_2d(k, 256, n), 256, 0, stream>>>(src, n, k, rperm, dst);
  check_launch("permute_kernel");
}

template <typename T>
void fill_reversed_hessian(const T *h, int64_t k, const int64_t *rperm, const T *diag, T damp,
                           T *a, cudaStream_t stream) {
  fill_kernel<T><<<grid_2d(k, 256, k), 256, 0, stream>>>(h, k, rperm, diag, damp, a);
  check_launch("fill_kernel");
}

template <typename T>
void check_factor_diagonal(const T *l, int64_t k, int *bad, cudaStream_t stream) {
  check_kernel<T><<<blocks_for(k, 256), 256, 0, stream>>>(l, k, bad);
  check_launch("check_kernel");
}

template <typename T>
void gather_diagonal_tiles(const T *l, int64_t k, int64_t block, int64_t tiles, T *diagonal,
                           T *inverses, cudaStream_t stream) {
  const dim3 grid(std::min<unsigned>(blocks_for(block * block, 256), 64u),
                  static_cast<unsigned>(tiles));
  tiles_kernel<T><<<grid, 256, 0, stream>>>(l, k, block, diagonal, inverses);
  check_launch("tiles_kernel");
}

void unpermute_codes(const uint8_t *by_position, int64_t n, int64_t k, const int64_t *perm,
                     uint8_t *codes, cudaStream_t stream) {
  const dim3 grid(blocks_for(n, 32), blocks_for(k, 32));
  unpermute_kernel<<<grid, dim3(32, 8), 0, stream>>>(by_position, n, k, perm, codes);
  check_launch("unpermute_kernel");
}

#define GPTQ_SOLVER_KERNELS(T)                                                                   \
  template void extract_diagonal<T>(const T *, int64_t, T *, cudaStream_t);                      \
  template void group_params_from_weights<T>(const T *, int64_t, int64_t, int64_t, int64_t,      \
                                             const QuantParams<T> &, T *, T *, cudaStream_t);    \
  template void zero_columns<T>(T *, int64_t, int64_t, const uint8_t *, cudaStream_t);           \
  template void permute_columns<T>(const T *, int64_t, int64_t, const int64_t *, T *,            \
                                   cudaStream_t);                                                \
  template void fill_reversed_hessian<T>(const T *, int64_t, const int64_t *, const T *, T, T *, \
                                         cudaStream_t);                                          \
  template void check_factor_diagonal<T>(const T *, int64_t, int *, cudaStream_t);               \
  template void gather_diagonal_tiles<T>(const T *, int64_t, int64_t, int64_t, T *, T *,         \
                                         cudaStream_t);
GPTQ_SOLVER_KERNELS(float)
GPTQ_SOLVER_KERNELS(double)
#undef GPTQ_SOLVER_KERNELS

}  // namespace gptq_cuda
