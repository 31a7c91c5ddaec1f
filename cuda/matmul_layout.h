// A quantized tensor as the CUDA matmul keeps it on the device, made once
// from the core's host form (codes [N, K], fp16 scales, zeros, g_idx).
//
// Two layouts:
//  - Tiled4, for 4-bit tensors whose groups each cover whole pairs of
//    tiles (32 input columns) once the columns are sorted by group
//    (act-order tensors included): the codes of each 16 × 16 tile as the
//    eight nibbles of one 32-bit word per lane in the order the tensor-core
//    instruction wants them, the columns of each pair of tiles in the order
//    that lets a lane load its x in one piece (quant_arith.h), four tiles
//    (64 columns) per lane as one 16-byte load, stripes of 16 output rows
//    one after another; scales and zeros as pairs ready for the
//    dequantizing arithmetic, per group and row.
//  - Generic, for everything else (2, 3, 5–8 bits, groups that split a
//    tile): one byte per code, g_idx, float scales and zeros, for exact
//    float32 kernels.
// Both keep N and K as given; Tiled4 pads rows to 16 and columns to 64 with
// zero codes and zero scales, and its activations are gathered into the
// sorted, padded column order when the two differ.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>
#include <mutex>

#include "plugin_abi.h"

namespace gptq_cuda {

// An owning cudaMalloc allocation for the long-lived layout.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes);
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer &&o) noexcept : ptr_(o.ptr_) { o.ptr_ = nullptr; }
  DeviceBuffer &operator=(DeviceBuffer &&o) noexcept;
  DeviceBuffer(const DeviceBuffer &) = delete;
  DeviceBuffer &operator=(const DeviceBuffer &) = delete;
  template <typename T>
  T *as() const {
    return static_cast<T *>(ptr_);
  }

 private:
  void *ptr_ = nullptr;
};

struct Tiled4Layout {
  int64_t padded_n = 0;     // N rounded up to 16
  int64_t padded_k = 0;     // K rounded up to 64
  bool gather_x = false;    // columns sorted by group, or K padded: x is gathered first
  DeviceBuffer words;       // uint4 [padded_n/16][padded_k/64][32]
  DeviceBuffer pair_group;  // int32 [padded_k/32]: the group of each pair of tiles
  DeviceBuffer f16_params;  // half2 [G][padded_n]: (scale, 1024 + zero)
  DeviceBuffer bf16_params; // bfloat162 [G][padded_n]: (scale as bf16, 128 + zero)
  DeviceBuffer column_of;   // int32 [padded_k]: original column of each sorted one, −1 = padding
};

struct GenericLayout {
  DeviceBuffer codes;   // uint8 [N, K]
  DeviceBuffer g_idx;   // int32 [K]
  DeviceBuffer scales;  // float [G, N]
  DeviceBuffer zeros;   // float [G, N]
};

class DeviceWeights {
 public:
  int64_t n = 0, k = 0;  // as the tensor
  int64_t groups = 0;
  std::unique_ptr<Tiled4Layout> tiled4;  // null when the tensor cannot take it

  // The generic layout, made from the host tensor on first use (a Tiled4
  // tensor needs it only for F32 activations). Thread-safe.
  const GenericLayout &generic(const gptq_plugin_qtensor &q, cudaStream_t stream) const;

 private:
  mutable std::once_flag generic_once_;
  mutable std::unique_ptr<GenericLayout> generic_;
};

// The layout of q on the device, made on `stream` (waits for it).
std::unique_ptr<DeviceWeights> make_device_weights(const gptq_plugin_qtensor &q,
                                                   cudaStream_t stream);

}  // namespace gptq_cuda
