#include "device_convert.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "cuda_status.h"
#include "device_context.h"
#include "plugin_error.h"

namespace gptq_cuda {
namespace {

__device__ __forceinline__ float load_as_float(const void *src, gptq_dtype dtype, int64_t i) {
  if (dtype == GPTQ_DTYPE_F32) return static_cast<const float *>(src)[i];
  const unsigned short bits = static_cast<const unsigned short *>(src)[i];
  if (dtype == GPTQ_DTYPE_F16) return __half2float(__ushort_as_half(bits));
  return __bfloat162float(__ushort_as_bfloat16(bits));
}

template <typename T>
__global__ void convert_kernel(const void *src, gptq_dtype dtype, int64_t count, T *dst) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count;
       i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = static_cast<T>(load_as_float(src, dtype, i));
}

// One pass: each block reduces its share, then folds it into the result with
// atomics (the first bad index by atomicMin, max|x| as the bit pattern of a
// non-negative float, whose integer order is its numeric order).
__global__ void scan_kernel(const void *x, gptq_dtype dtype, int64_t count,
                            unsigned long long *first_bad, unsigned int *max_bits) {
  unsigned long long bad = ~0ull;
  float m = 0.0f;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count;
       i += int64_t(gridDim.x) * blockDim.x) {
    const float v = load_as_float(x, dtype, i);
    if (isfinite(v)) {
      m = fmaxf(m, fabsf(v));
    } else if (static_cast<unsigned long long>(i) < bad) {
      bad = static_cast<unsigned long long>(i);
    }
  }
  for (int offset = 16; offset > 0; offset >>= 1) {
    m = fmaxf(m, __shfl_down_sync(0xffffffffu, m, offset));
    const unsigned long long other = __shfl_down_sync(0xffffffffu, bad, offset);
    bad = other < bad ? other : bad;
  }
  if ((threadIdx.x & 31) == 0) {
    atomicMax(max_bits, __float_as_uint(m));
    if (bad != ~0ull) atomicMin(first_bad, bad);
  }
}

}  // namespace

size_t dtype_bytes(gptq_dtype dtype) {
  switch (dtype) {
    case GPTQ_DTYPE_F32: return 4;
    case GPTQ_DTYPE_F16:
    case GPTQ_DTYPE_BF16: return 2;
  }
  throw PluginError(GPTQ_ERR_UNSUPPORTED, "unknown dtype " + std::to_string(static_cast<int>(dtype)));
}

template <typename T>
void convert_on_device(const void *src, gptq_dtype dtype, int64_t count, T *dst,
                       cudaStream_t stream) {
  if (count <= 0) return;
  const unsigned blocks = std::min<unsigned>(blocks_for(count, 256), 65535u);
  convert_kernel<T><<<blocks, 256, 0, stream>>>(src, dtype, count, dst);
  check_launch("convert_kernel");
}
template void convert_on_device<float>(const void *, gptq_dtype, int64_t, float *, cudaStream_t);
template void convert_on_device<double>(const void *, gptq_dtype, int64_t, double *,
                                        cudaStream_t);

ScanOutcome scan_on_device(const void *x, gptq_dtype dtype, int64_t count, cudaStream_t stream) {
  dtype_bytes(dtype);
  DeviceArray<unsigned long long> result(2, stream);
  const unsigned long long init[2] = {~0ull, 0ull};
  check_cuda(cudaMemcpyAsync(result.get(), init, sizeof init, cudaMemcpyHostToDevice, stream),
             "cudaMemcpyAsync");
  const unsigned blocks = std::min<unsigned>(blocks_for(count, 256), 4096u);
  scan_kernel<<<blocks, 256, 0, stream>>>(x, dtype, count, result.get(),
                                          reinterpret_cast<unsigned int *>(result.get() + 1));
  check_launch("scan_kernel");
  unsigned long long host[2];
  check_cuda(cudaMemcpyAsync(host, result.get(), sizeof host, cudaMemcpyDeviceToHost, stream),
             "cudaMemcpyAsync");
  sync_stream(stream, "scan");
  ScanOutcome out;
  out.first_non_finite = host[0] == ~0ull ? -1 : static_cast<int64_t>(host[0]);
  unsigned int bits = static_cast<unsigned int>(host[1] & 0xffffffffu);
  float m;
  memcpy(&m, &bits, sizeof m);
  out.max_abs = m;
  return out;
}

}  // namespace gptq_cuda
