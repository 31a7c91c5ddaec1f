// Whether this process can use the CUDA backend: a device visible to the CUDA
// runtime, of compute capability 8.0 or newer, on which cuBLAS starts.
#pragma once

#include <string>

namespace gptq_cuda {

// Returns a one-line description of the device that will be used; throws
// PluginError(GPTQ_ERR_BACKEND_UNAVAILABLE) with the CUDA error text if none
// can be.
std::string probe_device();

}  // namespace gptq_cuda
