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

namespace {
const char *cusolver_status_name(cusolverStatus_t status) {
  switch (status) {
    case CUSOLVER_STATUS_NOT_INITIALIZED: return "CUSOLVER_STATUS_NOT_INITIALIZED";
    case CUSOLVER_STATUS_ALLOC_FAILED: return "CUSOLVER_STATUS_ALLOC_FAILED";
    case CUSOLVER_STATUS_INVALID_VALUE: return "CUSOLVER_STATUS_INVALID_VALUE";
    case CUSOLVER_STATUS_ARCH_MISMATCH: return "CUSOLVER_STATUS_ARCH_MISMATCH";
    case CUSOLVER_STATUS_EXECUTION_FAILED: return "CUSOLVER_STATUS_EXECUTION_FAILED";
    case CUSOLVER_STATUS_INTERNAL_ERROR: return "CUSOLVER_STATUS_INTERNAL_ERROR";
    case CUSOLVER_STATUS_NOT_SUPPORTED: return "CUSOLVER_STATUS_NOT_SUPPORTED";
    default: return "a cuSOLVER error";
  }
}
}  // namespace

void check_cusolver(cusolverStatus_t status, const char *call) {
  if (status == CUSOLVER_STATUS_SUCCESS) return;
  throw PluginError(status == CUSOLVER_STATUS_ALLOC_FAILED ? GPTQ_ERR_OUT_OF_MEMORY
                                                           : GPTQ_ERR_BACKEND_UNAVAILABLE,
                    std::string(call) + ": " + cusolver_status_name(status) + " (" +
                        std::to_string(static_cast<int>(status)) + ")");
}

void check_launch(const char *kernel) {
  check_cuda(cudaGetLastError(), (std::string(kernel) + " launch").c_str());
}

}  // namespace gptq_cuda
