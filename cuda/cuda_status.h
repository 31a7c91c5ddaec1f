// Turning CUDA runtime, cuBLAS and cuSOLVER failures into PluginErrors whose message
// carries the library's own error name and text (what a user searches for),
// prefixed by the call that failed.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cusolverDn.h>

#include <string>

#include "plugin_error.h"

namespace gptq_cuda {

// Throws unless err is cudaSuccess. Allocation failures become
// GPTQ_ERR_OUT_OF_MEMORY, everything else GPTQ_ERR_BACKEND_UNAVAILABLE.
void check_cuda(cudaError_t err, const char *call);

// The same for cuBLAS statuses.
void check_cublas(cublasStatus_t status, const char *call);

// The same for cuSOLVER statuses.
void check_cusolver(cusolverStatus_t status, const char *call);

// Any error a kernel launch left (cudaGetLastError), as check_cuda.
void check_launch(const char *kernel);

// "cudaErrorNoDevice: no CUDA-capable device is detected".
std::string cuda_error_text(cudaError_t err);

}  // namespace gptq_cuda
