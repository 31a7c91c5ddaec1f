#include "matmul_kernels.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>

#include "cuda_status.h"
#include "device_context.h"
#include "device_convert.h"
#include "quant_arith.h"
#include "tiled4_plan.h"

namespace gptq_cuda {
namespace {

// ---------------------------------------------------------------------------
// Tiled4: tensor-core tiles of 16 output rows × 16 input columns, the
// weights as the A operand of mma.m16n8k16 (dequantized in registers), eight
// rows of x as the B operand per instruction. A thread block takes one
// stripe of 16 output rows; its warps split the input columns and add their
// partial sums in a fixed order at the end.

constexpr int kUnroll = 4;  // 16-byte weight loads in flight per lane

__device__ __forceinline__ uint4 load_streaming(const uint4 *p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

template <typename Act>
struct ActOps;

template <>
struct ActOps<__half> {
  // (scale, 1024 + zero) of one row → the two broadcast pairs.
  static __device__ __forceinline__ void split_params(uint32_t params, uint32_t &scale2,
                                                      uint32_t &offset2) {
    const __half2 p = *reinterpret_cast<const __half2 *>(&params);
    const __half2 s = __low2half2(p), o = __high2half2(p);
    scale2 = *reinterpret_cast<const uint32_t *>(&s);
    offset2 = *reinterpret_cast<const uint32_t *>(&o);
  }
  // Two codes (in the low bits of each half) → scale·(code − zero), each
  // rounded once: 1024 + code and 1024 + zero are exact, so is their
  // difference.
  static __device__ __forceinline__ uint32_t dequantize(uint32_t codes, uint32_t scale2,
                                                        uint32_t offset2) {
    const uint32_t magic = (codes & 0x000F000Fu) | 0x64006400u;
    __half2 v = *reinterpret_cast<const __half2 *>(&magic);
    v = __hsub2(v, *reinterpret_cast<const __half2 *>(&offset2));
    v = __hmul2(v, *reinterpret_cast<const __half2 *>(&scale2));
    return *reinterpret_cast<const uint32_t *>(&v);
  }
  static __device__ __forceinline__ void mma(float (&c)[4], const uint32_t (&a)[4],
                                             uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, "
        "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
  static __device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
  static __device__ __forceinline__ __half from_float(float v) { return __float2half_rn(v); }
};

template <>
struct ActOps<__nv_bfloat16> {
  static __device__ __forceinline__ void split_params(uint32_t params, uint32_t &scale2,
                                                      uint32_t &offset2) {
    const __nv_bfloat162 p = *reinterpret_cast<const __nv_bfloat162 *>(&params);
    const __nv_bfloat162 s = __low2bfloat162(p), o = __high2bfloat162(p);
    scale2 = *reinterpret_cast<const uint32_t *>(&s);
    offset2 = *reinterpret_cast<const uint32_t *>(&o);
  }
  // 128 + code and 128 + zero are exact in bfloat16; the product with the
  // (bfloat16) scale is rounded once.
  static __device__ __forceinline__ uint32_t dequantize(uint32_t codes, uint32_t scale2,
                                                        uint32_t offset2) {
    const uint32_t magic = (codes & 0x000F000Fu) | 0x43004300u;
    __nv_bfloat162 v = *reinterpret_cast<const __nv_bfloat162 *>(&magic);
    v = __hsub2(v, *reinterpret_cast<const __nv_bfloat162 *>(&offset2));
    v = __hmul2(v, *reinterpret_cast<const __nv_bfloat162 *>(&scale2));
    return *reinterpret_cast<const uint32_t *>(&v);
  }
  static __device__ __forceinline__ void mma(float (&c)[4], const uint32_t (&a)[4],
                                             uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, "
        "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
  static __device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
  static __device__ __forceinline__ __nv_bfloat16 from_float(float v) {
    return __float2bfloat16_rn(v);
  }
};

// Up to 16 warps a block; 8 for the widest tiles, whose accumulators need
// the registers.
template <int NT>
constexpr int max_warps() {
  return NT >= 8 ? 8 : 16;
}

template <typename Act, int NT>
__global__ void __launch_bounds__(max_warps<NT>() * 32)
    tiled4_kernel(const uint4 *__restrict__ words, const int32_t *__restrict__ pair_group,
                  const uint32_t *__restrict__ params, const Act *__restrict__ x, int64_t ldx,
                  int64_t rows, int64_t n, int64_t padded_n, int64_t chunks,
                  const Act *__restrict__ bias, Act *__restrict__ y) {
  extern __shared__ float partial[];  // [warps][32][NT·4]
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int warps = blockDim.x >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int64_t stripe = blockIdx.x;
  const int per_warp = static_cast<int>((chunks + warps - 1) / warps);
  const int c_begin = warp * per_warp;
  const int c_end = min(static_cast<int>(chunks), c_begin + per_warp);

  float acc[NT][4];
#pragma unroll
  for (int j = 0; j < NT; ++j) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.0f;
  // This lane's row of x in each group of 8 rows (B operand column g), from
  // its 8 elements of each pair of tiles on, or none past the last row.
  const uint4 *x_row[NT];
#pragma unroll
  for (int j = 0; j < NT; ++j) {
    const int64_t b = j * 8 + g;
    x_row[j] = b < rows ? reinterpret_cast<const uint4 *>(x + b * ldx) + t : nullptr;
  }
  const uint4 *w = words + stripe * chunks * 32 + lane;
  const uint32_t *row_params = params + stripe * kStripeRows + g;
  int current = -1;
  uint32_t scale0 = 0, offset0 = 0, scale1 = 0, offset1 = 0;

  for (int c = c_begin; c < c_end; c += kUnroll) {
    uint4 q[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u)
      if (c + u < c_end) q[u] = load_streaming(w + (c + u) * 32);
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      if (c + u >= c_end) break;
      const uint32_t tile_words[4] = {q[u].x, q[u].y, q[u].z, q[u].w};
#pragma unroll
      for (int pair = 0; pair < 2; ++pair) {
        const int kp = (c + u) * 2 + pair;
        const int group = pair_group[kp];
        if (group != current) {
          ActOps<Act>::split_params(row_params[group * padded_n], scale0, offset0);
          ActOps<Act>::split_params(row_params[group * padded_n + 8], scale1, offset1);
          current = group;
        }
        uint4 xv[NT];
#pragma unroll
        for (int j = 0; j < NT; ++j)
          xv[j] = x_row[j] != nullptr ? x_row[j][kp * 4] : make_uint4(0, 0, 0, 0);
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const uint32_t word = tile_words[pair * 2 + h];
          uint32_t a[4];
          a[0] = ActOps<Act>::dequantize(word, scale0, offset0);
          a[1] = ActOps<Act>::dequantize(word >> 4, scale1, offset1);
          a[2] = ActOps<Act>::dequantize(word >> 8, scale0, offset0);
          a[3] = ActOps<Act>::dequantize(word >> 12, scale1, offset1);
#pragma unroll
          for (int j = 0; j < NT; ++j)
            ActOps<Act>::mma(acc[j], a, h == 0 ? xv[j].x : xv[j].z, h == 0 ? xv[j].y : xv[j].w);
        }
      }
    }
  }

  float *mine = partial + (warp * 32 + lane) * (NT * 4);
#pragma unroll
  for (int j = 0; j < NT; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) mine[j * 4 + e] = acc[j][e];
  __syncthreads();
  // Element (row r, column col) of the stripe's 16 × 8·NT result sits in
  // lane (r % 8)·4 + (col % 8)/2, register (r >= 8 ? 2 : 0) + col % 2 of
  // n-tile col / 8.
  for (int idx = threadIdx.x; idx < kStripeRows * 8 * NT; idx += blockDim.x) {
    const int r = idx % kStripeRows, col = idx / kStripeRows;
    const int64_t out_row = stripe * kStripeRows + r;
    if (out_row >= n || col >= rows) continue;
    const int j = col / 8, cj = col % 8;
    const int src_lane = (r % 8) * 4 + cj / 2;
    const int e = j * 4 + (r >= 8 ? 2 : 0) + (cj & 1);
    float sum = 0.0f;
    for (int v = 0; v < warps; ++v) sum += partial[(v * 32 + src_lane) * (NT * 4) + e];
    if (bias != nullptr) sum += ActOps<Act>::to_float(bias[out_row]);
    y[col * n + out_row] = ActOps<Act>::from_float(sum);
  }
}

template <typename Act, int NT>
void launch_tiled4(const Tiled4Layout &w, int64_t n, const Act *x, int64_t ldx, int64_t rows,
                   const Act *bias, Act *y, cudaStream_t stream) {
  const int64_t stripes = w.padded_n / kStripeRows;
  const int64_t chunks = w.padded_k / kChunkCols;
  // Enough warps to keep every SM streaming (about 32 each), at least two
  // 64-column chunks per warp, at most 16 warps (8 for the widest tiles,
  // whose partial sums fill the shared memory).
  const int64_t target = static_cast<int64_t>(device_info().sm_count) * 32;
  int warps = 1;
  while (warps < max_warps<NT>() && stripes * warps < target && chunks / (warps * 2) >= 2)
    warps *= 2;
  const size_t shared = sizeof(float) * warps * 32 * NT * 4;
  const unsigned grid = static_cast<unsigned>(stripes);
  const uint32_t *params = std::is_same<Act, __half>::value ? w.f16_params.as<uint32_t>()
                                                             : w.bf16_params.as<uint32_t>();
  tiled4_kernel<Act, NT><<<grid, warps * 32, shared, stream>>>(
      w.words.as<uint4>(), w.pair_group.as<int32_t>(), params, x, ldx, rows, n, w.padded_n,
      chunks, bias, y);
  check_launch("tiled4_kernel");
}

template <typename Act>
void tiled4_typed(const Tiled4Layout &w, int64_t n, const Act *x, int64_t ldx, int64_t rows,
                  const Act *bias, Act *y, cudaStream_t stream) {
  // Eight rows of x per instruction; up to 64 rows per pass over the
  // weights.
  for (int64_t r0 = 0; r0 < rows; r0 += 64) {
    const int64_t count = std::min<int64_t>(64, rows - r0);
    const Act *xs = x + r0 * ldx;
    Act *ys = y + r0 * n;
    if (count <= 8)
      launch_tiled4<Act, 1>(w, n, xs, ldx, count, bias, ys, stream);
    else if (count <= 16)
      launch_tiled4<Act, 2>(w, n, xs, ldx, count, bias, ys, stream);
    else if (count <= 32)
      launch_tiled4<Act, 4>(w, n, xs, ldx, count, bias, ys, stream);
    else
      launch_tiled4<Act, 8>(w, n, xs, ldx, count, bias, ys, stream);
  }
}

__global__ void gather_kernel(const uint16_t *x, int64_t rows, int64_t k,
                              const int32_t *column_of, int64_t padded_k, uint16_t *dst) {
  const int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  const int64_t r = blockIdx.y;
  if (j >= padded_k || r >= rows) return;
  const int32_t from = column_of[j];
  dst[r * padded_k + j] = from >= 0 ? x[r * k + from] : uint16_t(0);
}

// ---------------------------------------------------------------------------
// Generic: exact float32, as the CPU's dequantize-then-multiply.

__device__ __forceinline__ float load_float(const void *p, gptq_dtype dtype, int64_t i) {
  if (dtype == GPTQ_DTYPE_F32) return static_cast<const float *>(p)[i];
  const unsigned short bits = static_cast<const unsigned short *>(p)[i];
  if (dtype == GPTQ_DTYPE_F16) return __half2float(__ushort_as_half(bits));
  return __bfloat162float(__ushort_as_bfloat16(bits));
}

__device__ __forceinline__ void store_float(void *p, gptq_dtype dtype, int64_t i, float v) {
  if (dtype == GPTQ_DTYPE_F32) {
    static_cast<float *>(p)[i] = v;
  } else if (dtype == GPTQ_DTYPE_F16) {
    static_cast<unsigned short *>(p)[i] = __half_as_ushort(__float2half_rn(v));
  } else {
    static_cast<unsigned short *>(p)[i] = __bfloat16_as_ushort(__float2bfloat16_rn(v));
  }
}

constexpr int kGenericRows = 8;

__global__ void generic_rows_kernel(const uint8_t *codes, const int32_t *g_idx,
                                    const float *scales, const float *zeros, int64_t n,
                                    int64_t k, const void *x, gptq_dtype dtype, int64_t rows,
                                    const void *bias, void *y) {
  const int lane = threadIdx.x & 31;
  const int64_t row = blockIdx.x * int64_t(blockDim.x / 32) + threadIdx.x / 32;
  if (row >= n) return;
  float acc[kGenericRows] = {};
  const uint8_t *c = codes + row * k;
  for (int64_t col = lane; col < k; col += 32) {
    const int64_t g = g_idx[col];
    const float w = scales[g * n + row] * (static_cast<float>(c[col]) - zeros[g * n + row]);
#pragma unroll
    for (int m = 0; m < kGenericRows; ++m)
      if (m < rows) acc[m] += load_float(x, dtype, m * k + col) * w;
  }
#pragma unroll
  for (int m = 0; m < kGenericRows; ++m) {
    float v = acc[m];
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
    if (lane == 0 && m < rows) {
      if (bias != nullptr) v += load_float(bias, dtype, row);
      store_float(y, dtype, m * n + row, v);
    }
  }
}

__global__ void dequantize_kernel(const uint8_t *codes, const int32_t *g_idx, const float *scales,
                                  const float *zeros, int64_t n, int64_t k, int64_t r0,
                                  int64_t r1, float *out) {
  const int64_t col = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  const int64_t row = r0 + blockIdx.y + int64_t(gridDim.y) * blockIdx.z;
  if (col >= k || row >= r1) return;
  const int64_t g = g_idx[col];
  out[(row - r0) * k + col] =
      scales[g * n + row] * (static_cast<float>(codes[row * k + col]) - zeros[g * n + row]);
}

__global__ void finish_kernel(const float *y32, int64_t count, int64_t n, const void *bias,
                              gptq_dtype dtype, void *y) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i >= count) return;
  float v = y32[i];
  if (bias != nullptr) v += load_float(bias, dtype, i % n);
  store_float(y, dtype, i, v);
}

}  // namespace

void tiled4_matmul(const Tiled4Layout &w, int64_t n, const void *x, int64_t ldx,
                   gptq_dtype dtype, int64_t rows, const void *bias, void *y, cudaStream_t stream) {
  if (dtype == GPTQ_DTYPE_F16)
    tiled4_typed(w, n, static_cast<const __half *>(x), ldx, rows,
                 static_cast<const __half *>(bias), static_cast<__half *>(y), stream);
  else
    tiled4_typed(w, n, static_cast<const __nv_bfloat16 *>(x), ldx, rows,
                 static_cast<const __nv_bfloat16 *>(bias), static_cast<__nv_bfloat16 *>(y),
                 stream);
}

void gather_columns(const void *x, int64_t rows, int64_t k, const int32_t *column_of,
                    int64_t padded_k, void *dst, cudaStream_t stream) {
  for (int64_t r0 = 0; r0 < rows; r0 += 65535) {
    const int64_t count = std::min<int64_t>(65535, rows - r0);
    const dim3 grid(blocks_for(padded_k, 256), static_cast<unsigned>(count));
    gather_kernel<<<grid, 256, 0, stream>>>(static_cast<const uint16_t *>(x) + r0 * k, count, k,
                                            column_of, padded_k,
                                            static_cast<uint16_t *>(dst) + r0 * padded_k);
    check_launch("gather_kernel");
  }
}

void generic_matmul_rows(const GenericLayout &w, int64_t n, int64_t k, const void *x,
                         gptq_dtype dtype, int64_t rows, const void *bias, void *y,
                         cudaStream_t stream) {
  const size_t size = dtype_bytes(dtype);
  constexpr int kWarpsPerBlock = 8;
  const unsigned grid = blocks_for(n, kWarpsPerBlock);
  for (int64_t r0 = 0; r0 < rows; r0 += kGenericRows) {
    const int64_t count = std::min<int64_t>(kGenericRows, rows - r0);
    generic_rows_kernel<<<grid, kWarpsPerBlock * 32, 0, stream>>>(
        w.codes.as<uint8_t>(), w.g_idx.as<int32_t>(), w.scales.as<float>(), w.zeros.as<float>(),
        n, k, static_cast<const char *>(x) + r0 * k * size, dtype, count, bias,
        static_cast<char *>(y) + r0 * n * size);
    check_launch("generic_rows_kernel");
  }
}

void dequantize_rows(const GenericLayout &w, int64_t n, int64_t k, int64_t r0, int64_t r1,
                     float *out, cudaStream_t stream) {
  const int64_t rows = r1 - r0;
  const int64_t gy = std::min<int64_t>(rows, 65535);
  const dim3 grid(blocks_for(k, 256), static_cast<unsigned>(gy),
                  static_cast<unsigned>((rows + gy - 1) / gy));
  dequantize_kernel<<<grid, 256, 0, stream>>>(w.codes.as<uint8_t>(), w.g_idx.as<int32_t>(),
                                              w.scales.as<float>(), w.zeros.as<float>(), n, k,
                                              r0, r1, out);
  check_launch("dequantize_kernel");
}

void finish_output(const float *y32, int64_t rows, int64_t n, const void *bias, gptq_dtype dtype,
                   void *y, cudaStream_t stream) {
  const int64_t count = rows * n;
  finish_kernel<<<blocks_for(count, 256), 256, 0, stream>>>(y32, count, n, bias, dtype, y);
  check_launch("finish_kernel");
}

}  // namespace gptq_cuda
