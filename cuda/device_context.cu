#include "device_context.h"

#include <cstdint>
#include <mutex>
#include <string>

#include "cuda_status.h"

namespace gptq_cuda {
namespace {

DeviceInfo g_device;
cudaMemPool_t g_pool = nullptr;
std::once_flag g_pool_once;

// Handles of one thread, destroyed when the thread ends (before the CUDA
// runtime's own teardown at process exit).
struct ThreadHandles {
  cublasHandle_t blas = nullptr;
  cusolverDnHandle_t solver = nullptr;
  ~ThreadHandles() {
    if (blas != nullptr) cublasDestroy(blas);
    if (solver != nullptr) cusolverDnDestroy(solver);
  }
};
thread_local ThreadHandles t_handles;

cudaMemPool_t pool() {
  std::call_once(g_pool_once, [] {
    cudaMemPoolProps props{};
    props.allocType = cudaMemAllocationTypePinned;
    props.handleTypes = cudaMemHandleTypeNone;
    props.location.type = cudaMemLocationTypeDevice;
    props.location.id = g_device.id;
    check_cuda(cudaMemPoolCreate(&g_pool, &props), "cudaMemPoolCreate");
    uint64_t keep = uint64_t(1) << 30;
    check_cuda(cudaMemPoolSetAttribute(g_pool, cudaMemPoolAttrReleaseThreshold, &keep),
               "cudaMemPoolSetAttribute");
  });
  return g_pool;
}

}  // namespace

void adopt_current_device() {
  int id = 0;
  check_cuda(cudaGetDevice(&id), "cudaGetDevice");
  DeviceInfo info;
  info.id = id;
  check_cuda(cudaDeviceGetAttribute(&info.sm_count, cudaDevAttrMultiProcessorCount, id),
             "cudaDeviceGetAttribute");
  int optin = 0;
  check_cuda(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, id),
             "cudaDeviceGetAttribute");
  info.shared_per_block_optin = static_cast<size_t>(optin);
  g_device = info;
}

const DeviceInfo &device_info() { return g_device; }

DeviceGuard::DeviceGuard() {
  int current = -1;
  check_cuda(cudaGetDevice(&current), "cudaGetDevice");
  if (current != g_device.id) {
    check_cuda(cudaSetDevice(g_device.id), "cudaSetDevice");
    previous_ = current;
  }
}

DeviceGuard::~DeviceGuard() {
  if (previous_ >= 0) cudaSetDevice(previous_);
}

void *pool_allocate(size_t bytes, cudaStream_t stream) {
  void *p = nullptr;
  check_cuda(cudaMallocFromPoolAsync(&p, bytes, pool(), stream), "cudaMallocFromPoolAsync");
  return p;
}

void pool_free(void *p, cudaStream_t stream) {
  if (p != nullptr) cudaFreeAsync(p, stream);
}

cublasHandle_t blas_handle(cudaStream_t stream) {
  if (t_handles.blas == nullptr) check_cublas(cublasCreate(&t_handles.blas), "cublasCreate");
  check_cublas(cublasSetStream(t_handles.blas, stream), "cublasSetStream");
  return t_handles.blas;
}

cusolverDnHandle_t solver_handle(cudaStream_t stream) {
  if (t_handles.solver == nullptr)
    check_cusolver(cusolverDnCreate(&t_handles.solver), "cusolverDnCreate");
  check_cusolver(cusolverDnSetStream(t_handles.solver, stream), "cusolverDnSetStream");
  return t_handles.solver;
}

void sync_stream(cudaStream_t stream, const char *where) {
  const cudaError_t err = cudaStreamSynchronize(stream);
  if (err != cudaSuccess) check_cuda(err, (std::string(where) + ": cudaStreamSynchronize").c_str());
}

}  // namespace gptq_cuda
