// Widening the 16-bit float formats a checkpoint stores (IEEE binary16 and
// bfloat16) to float32, narrowing float32 to them, rounding to nearest even as PyTorch does, and
// re-encoding a whole safetensors float tensor in another float dtype. A
// value too large for the narrower format is an error naming the tensor, not
// a silent infinity: a checkpoint whose norms became inf would load and
// compute garbage.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "formats/safetensors.h"

namespace gptqtool {

// Widening: every binary16 and bfloat16 value is a float32, so these are
// exact (NaN payloads kept).
float f16_to_float(uint16_t bits);
float bf16_to_float(uint16_t bits);

// Round to nearest even; subnormals kept; NaN stays NaN (quiet) and inf
// stays inf. *overflow is set (never cleared) when a finite value rounds to
// infinity.
uint16_t float_to_f16(float f, bool *overflow);
uint16_t float_to_bf16(float f, bool *overflow);

// Tensor `t` of `file` (F64, F32, F16 or BF16) as little-endian bytes of
// `to` (F32, F16 or BF16). The same dtype is copied byte for byte. Throws
// ToolError naming the tensor when a finite value does not fit `to`.
std::vector<uint8_t> convert_float_tensor(const SafetensorsFile &file, const TensorInfo &t,
                                          TensorDType to);

}  // namespace gptqtool
