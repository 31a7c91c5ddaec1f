#include "cuda_status.h"

#include <string>

namespace gptq_cuda {

std::string cuda_error_text(cudaError_t err) {
  return std::string(cudaGetErrorName(err)) + ": " + cudaGetErrorString(err);
}

void check_cuda(cudaError_t err, const char *call) {
  if (err == cudaSuccess) return;
  // Clear the runtime's sticky "last error" for non-sticky failures, so the
  // next call does not report this one again.
  cudaGetLastError();
  throw PluginError(err == cudaErrorMemoryAllocation ? GPTQ_ERR_OUT_OF_MEMORY
                                                     : GPTQ_ERR_BACKEND_UNAVAILABLE,
                    std::string(call) + ": " + cuda_error_text(err));
}

void check_cublas(cublasStatus_t status, const char *call) {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  throw PluginError(status == CUBLAS_STATUS_ALLOC_FAILED ? GPTQ_ERR_OUT_OF_MEMORY
                                                         : GPTQ_ERR_BACKEND_UNAVAILABLE,
                    std::string(call) + ": " + cublasGetStatusName(status) + ": " +
                        cublasGetStatusString(status));
}

}  // namespace gptq_cuda
