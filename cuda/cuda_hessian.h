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
  virtual int64_t dim() const = 0;
  virtual gptq_precision precision() const = 0;
  // Column-major [dim, dim] of float (F32) or double (F64) on the device;
  // only the upper triangle (i <= j at i + j·dim) is meaningful.
  virtual const void *data() const = 0;
  // The stream the Hessian's work runs on (the context's).
  virtual void *stream() const = 0;
  // H ← beta·H + alpha·xᵀx; x [rows, dim] of dtype, on the host or (device
  // true) on the plugin's device. f16/bf16 are converted on the device. Only
  // queued: a host x has been copied when this returns.
  virtual void add_batch(const void *x, gptq_dtype dtype, int64_t rows, bool device, double beta,
                         double alpha) = 0;
  // H ← keep·H + take·src, src a full row-major host matrix of doubles,
  // evaluated in double and rounded to H's precision.
  virtual void merge(const double *src, double keep, double take) = 0;
  // Full symmetric row-major copy to host doubles.
  virtual void export_to(double *dst) const = 0;
};

// An all-zero Hessian on the plugin's device, float or double per
// precision, whose work runs on `stream`.
std::unique_ptr<DeviceHessian> make_device_hessian(int64_t dim, gptq_precision precision,
                                                   void *stream);

}  // namespace gptq_cuda
