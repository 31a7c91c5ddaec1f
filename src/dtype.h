// Caller buffers come in three element types (gptq_dtype). These helpers read
// them as float/double, write float results back, and scan for NaN/Inf.
#pragma once

#include <cstddef>
#include <cstdint>

#include "gptq.h"

namespace gptq {

// Bytes per element; throws Error(UNSUPPORTED) for an unknown dtype, naming
// the calling function `where`.
size_t dtype_size(gptq_dtype dtype, const char *where);

// Index of the first non-finite element among `count`, or -1 if all are finite.
int64_t find_non_finite(const void *data, gptq_dtype dtype, int64_t count);

// dst[i] = (T) src[i] for i < count; src has element type `dtype`.
void convert_to_float(const void *src, gptq_dtype dtype, int64_t count, float *dst);
void convert_to_double(const void *src, gptq_dtype dtype, int64_t count, double *dst);

// dst (element type `dtype`)[i] = src[i], rounded to nearest even.
void convert_from_float(const float *src, int64_t count, gptq_dtype dtype, void *dst);

template <typename T>
inline void convert_to(const void *src, gptq_dtype dtype, int64_t count, T *dst);
template <>
inline void convert_to<float>(const void *src, gptq_dtype dtype, int64_t count, float *dst) {
  convert_to_float(src, dtype, count, dst);
}
template <>
inline void convert_to<double>(const void *src, gptq_dtype dtype, int64_t count, double *dst) {
  convert_to_double(src, dtype, count, dst);
}

}  // namespace gptq
