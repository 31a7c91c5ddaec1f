#include "cuda_probe.h"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <string>

#include "cuda_status.h"
#include "plugin_error.h"

namespace gptq_cuda {
namespace {

// The kernels to come use bf16 tensor-core paths and cp.async, which need
// Ampere or newer; the module is compiled for sm_80, sm_89, sm_90 (+ PTX).
constexpr int kMinMajor = 8;

std::string version_text(int v) {  // 13000 -> "13.0"
  return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10);
}

[[noreturn]] void unavailable(const std::string &why) {
  throw PluginError(GPTQ_ERR_BACKEND_UNAVAILABLE, why);
}

}  // namespace

std::string probe_device() {
  int count = 0;
  // The first runtime call: without a driver or a device this is where it
  // says so (cudaErrorNoDevice, cudaErrorInsufficientDriver, ...).
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    cudaGetLastError();
    unavailable("cudaGetDeviceCount failed: " + cuda_error_text(err));
  }
  if (count == 0) unavailable("cudaGetDeviceCount found no CUDA device");

  int device = 0;
  check_cuda(cudaGetDevice(&device), "cudaGetDevice");
  cudaDeviceProp prop{};
  check_cuda(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
  const std::string cc = std::to_string(prop.major) + "." + std::to_string(prop.minor);
  if (prop.major < kMinMajor)
    unavailable("CUDA device " + std::to_string(device) + " (" + prop.name +
                ") has compute capability " + cc + "; the CUDA backend needs " +
                std::to_string(kMinMajor) + ".0 or newer");

  // cuBLAS initialises its own state on the device; a broken installation
  // shows here rather than in the middle of a layer.
  cublasHandle_t handle = nullptr;
  check_cublas(cublasCreate(&handle), "cublasCreate");
  cublasDestroy(handle);

  int runtime = 0, driver = 0;
  cudaRuntimeGetVersion(&runtime);
  cudaDriverGetVersion(&driver);
  return "device " + std::to_string(device) + ": " + prop.name + ", compute capability " + cc +
         ", CUDA runtime " + version_text(runtime) + ", driver " + version_text(driver);
}

}  // namespace gptq_cuda
