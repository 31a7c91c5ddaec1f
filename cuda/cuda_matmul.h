// y = x·Wᵀ (+ bias) on the GPU: picks the kernel for the tensor's layout and
// the activations' type (matmul_kernels.h), and stages host buffers through
// device scratch when the caller's pointers are host memory.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "gptq.h"
#include "matmul_layout.h"
#include "plugin_abi.h"

namespace gptq_cuda {

// x [rows, K], bias [N] or null, y [rows, N], all of dtype, on the device
// (device true: only queued on `stream`) or on the host (copied in and out;
// waits for the stream).
void run_matmul(const DeviceWeights &w, const gptq_plugin_qtensor &q, const void *x,
                gptq_dtype dtype, int64_t rows, const void *bias, void *y, bool device,
                cudaStream_t stream);

}  // namespace gptq_cuda
