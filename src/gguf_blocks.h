// A quantized tensor as the bytes of its GGUF block format (see "GGUF
// blocks" in gptq.h): the size query and the writer.
#pragma once

#include <cstdint>

#include "qtensor.h"

namespace gptq {

// Bytes of a [rows, cols] tensor of `grid`'s format. Throws Error
// (INVALID_CONFIG: not a GGUF grid; INVALID_SIZE: bad shape).
int64_t gguf_tensor_bytes(int32_t grid, int64_t rows, int64_t cols, const char *where);

// Writes q's blocks into out (out_len bytes). Throws Error (UNSUPPORTED: q
// is not on a GGUF grid; SIZE_MISMATCH: out_len too small) before writing.
void export_gguf(const QTensorData &q, void *out, int64_t out_len, const char *where);

// Decodes [rows, cols] of grid's blocks into float; the caller has checked
// the lengths (gguf_tensor_bytes, rows·cols).
void dequantize_gguf(int32_t grid, const void *bytes, int64_t rows, int64_t cols, float *out);

}  // namespace gptq
