// The CUDA matmul kernels, y = x·Wᵀ (+ bias), over the layouts of
// matmul_layout.h. Launchers queue work on a stream and never wait.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "gptq.h"
#include "matmul_layout.h"

namespace gptq_cuda {

// Tiled4: x [rows, ldx] of F16 or BF16 (already gathered into the layout's
// column order when the layout says so; padded columns zero), bias [N] or
// null, y [rows, N], all of dtype. Any number of rows.
void tiled4_matmul(const Tiled4Layout &w, int64_t n, const void *x, int64_t ldx,
                   gptq_dtype dtype, int64_t rows, const void *bias, void *y, cudaStream_t stream);

// x gathered for Tiled4: dst[r][j] = x[r][column_of[j]] (0 where −1),
// [rows, padded_k], element type of 2 bytes.
void gather_columns(const void *x, int64_t rows, int64_t k, const int32_t *column_of,
                    int64_t padded_k, void *dst, cudaStream_t stream);

// Generic, a warp per output row: exact float32 dequantization and sums, for
// up to 8 rows of x at a time (more rows: repeated).
void generic_matmul_rows(const GenericLayout &w, int64_t n, int64_t k, const void *x,
                         gptq_dtype dtype, int64_t rows, const void *bias, void *y,
                         cudaStream_t stream);

// Generic dequantization of W's rows [r0, r1) into float [r1 − r0, K].
void dequantize_rows(const GenericLayout &w, int64_t n, int64_t k, int64_t r0, int64_t r1,
                     float *out, cudaStream_t stream);

// y (dtype) = y32 + bias (dtype or null), count = rows·n elements.
void finish_output(const float *y32, int64_t rows, int64_t n, const void *bias, gptq_dtype dtype,
                   void *y, cudaStream_t stream);

}  // namespace gptq_cuda
