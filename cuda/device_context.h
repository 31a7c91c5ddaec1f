// What every CUDA entry shares: the device the plugin runs on (the one
// current when it was probed), a guard that makes it current for the length
// of an entry and gives the caller back its own, the stream-ordered memory
// pool scratch comes from, and per-thread cuBLAS / cuSOLVER handles.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cusolverDn.h>

#include <cstddef>
#include <utility>

namespace gptq_cuda {

struct DeviceInfo {
  int id = 0;
  int sm_count = 0;
  size_t shared_per_block_optin = 0;  // bytes of shared memory a block may ask for
};

// Records the current device as the plugin's; called once, by probe.
void adopt_current_device();
const DeviceInfo &device_info();

// Makes the plugin's device current; restores the caller's on destruction.
class DeviceGuard {
 public:
  DeviceGuard();
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard &) = delete;
  DeviceGuard &operator=(const DeviceGuard &) = delete;

 private:
  int previous_ = -1;
};

inline cudaStream_t as_stream(void *stream) { return static_cast<cudaStream_t>(stream); }

// Stream-ordered device memory from the plugin's pool: allocated and freed
// in the order of the stream's work, so that scratch needs no
// synchronization. The pool keeps up to 1 GiB cached between calls (layer
// after layer of a quantization reuses it) and gives back the rest.
void *pool_allocate(size_t bytes, cudaStream_t stream);
void pool_free(void *p, cudaStream_t stream);

// A typed stream-ordered array; freed on its stream when it goes out of
// scope (also when an exception unwinds).
template <typename T>
class DeviceArray {
 public:
  DeviceArray() = default;
  DeviceArray(size_t count, cudaStream_t stream) : stream_(stream), count_(count) {
    if (count > 0) ptr_ = static_cast<T *>(pool_allocate(count * sizeof(T), stream));
  }
  ~DeviceArray() { reset(); }
  DeviceArray(DeviceArray &&o) noexcept
      : ptr_(std::exchange(o.ptr_, nullptr)), stream_(o.stream_), count_(o.count_) {}
  DeviceArray &operator=(DeviceArray &&o) noexcept {
    if (this != &o) {
      reset();
      ptr_ = std::exchange(o.ptr_, nullptr);
      stream_ = o.stream_;
      count_ = o.count_;
    }
    return *this;
  }
  DeviceArray(const DeviceArray &) = delete;
  DeviceArray &operator=(const DeviceArray &) = delete;

  T *get() const { return ptr_; }
  size_t size() const { return count_; }
  void reset() {
    if (ptr_ != nullptr) pool_free(ptr_, stream_);
    ptr_ = nullptr;
  }

 private:
  T *ptr_ = nullptr;
  cudaStream_t stream_ = nullptr;
  size_t count_ = 0;
};

// The calling thread's cuBLAS / cuSOLVER handle, bound to `stream`.
cublasHandle_t blas_handle(cudaStream_t stream);
cusolverDnHandle_t solver_handle(cudaStream_t stream);

// Waits for the stream; a failure of work queued earlier surfaces here.
void sync_stream(cudaStream_t stream, const char *where);

}  // namespace gptq_cuda
