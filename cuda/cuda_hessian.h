// The CUDA backend's Hessian: H = 2/n Σ x xᵀ kept on the device in the
// context's precision and accumulated with cuBLAS syrk, the same running
// mean as cpu/cpu_hessian.cpp (the core hands in the weights beta = n/(n+s)
// and alpha = 2/(n+s)). Only one triangle is maintained; export mirrors it.
// Plain C++ interface so that cuda_plugin.cpp needs no CUDA headers.
#pragma once

#include <cstdint>
#include <memory>

#include "gptq.h"

namespace gptq_cuda {

class DeviceHessian {
 public:
  virtual ~DeviceHessian() = default;
  // H ← beta·H + alpha·xᵀx; x [rows, dim] of dtype, on the host or (device
  // true) on the current device. f16/bf16 are converted on the device.
  virtual void add_batch(const void *x, gptq_dtype dtype, int64_t rows, bool device, double beta,
                         double alpha) = 0;
  // H ← keep·H + take·src, src a full row-major host matrix of doubles,
  // evaluated in double and rounded to H's precision.
  virtual void merge(const double *src, double keep, double take) = 0;
  // Full symmetric row-major copy to host doubles.
  virtual void export_to(double *dst) const = 0;
};

// An all-zero Hessian on the current device, float or double per precision.
std::unique_ptr<DeviceHessian> make_device_hessian(int64_t dim, gptq_precision precision);

}  // namespace gptq_cuda
