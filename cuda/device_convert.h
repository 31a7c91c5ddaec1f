// Element types on the device: converting caller buffers (F32 / F16 / BF16)
// to the precision a kernel computes in and back, and scanning a buffer for
// NaN/Inf and its largest magnitude (the checks the core makes of host
// buffers, done where device buffers live).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "gptq.h"

namespace gptq_cuda {

// Bytes per element; throws PluginError(UNSUPPORTED) for an unknown dtype.
size_t dtype_bytes(gptq_dtype dtype);

inline unsigned blocks_for(int64_t count, unsigned threads) {
  return static_cast<unsigned>((count + threads - 1) / threads);
}

// dst[i] = (T) src[i] for count elements of dtype, on `stream`.
template <typename T>
void convert_on_device(const void *src, gptq_dtype dtype, int64_t count, T *dst,
                       cudaStream_t stream);

// Index of the first non-finite element (or -1) and the largest |x| of the
// finite ones, for count elements of dtype; waits for the stream.
struct ScanOutcome {
  int64_t first_non_finite;
  double max_abs;
};
ScanOutcome scan_on_device(const void *x, gptq_dtype dtype, int64_t count, cudaStream_t stream);

}  // namespace gptq_cuda
