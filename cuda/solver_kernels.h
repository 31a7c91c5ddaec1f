// The small kernels around the GPTQ block loop on the GPU: everything the
// solver does to the weights and the Hessian before and after the loop, each
// the device form of a step of cpu/gptq_solver.cpp.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "quant_arith.h"

namespace gptq_cuda {

// diag[j] = H[j][j] of a column-major [k, k] matrix.
template <typename T>
void extract_diagonal(const T *h, int64_t k, T *diag, cudaStream_t stream);

// Group parameters from the weights as they are (row-major [n, k]): for
// each group g < groups and row r, over columns [g·group_size,
// min(k, (g+1)·group_size)), written to scale/zero[g·n + r].
template <typename T>
void group_params_from_weights(const T *w, int64_t n, int64_t k, int64_t group_size,
                               int64_t groups, const QuantParams<T> &quant, T *scale, T *zero,
                               cudaStream_t stream);

// w[r·k + c] = 0 for the columns c with dead[c] non-zero.
template <typename T>
void zero_columns(T *w, int64_t n, int64_t k, const uint8_t *dead, cudaStream_t stream);

// dst[r·k + c] = src[r·k + rperm[c]].
template <typename T>
void permute_columns(const T *src, int64_t n, int64_t k, const int64_t *rperm, T *dst,
                     cudaStream_t stream);

// The lower triangle (column-major) of A = J·Hp·J + damp·I: A(a, b) =
// H(rperm[a], rperm[b]) off the diagonal, diag[rperm[a]] + damp on it, H
// the column-major upper triangle of the Hessian.
template <typename T>
void fill_reversed_hessian(const T *h, int64_t k, const int64_t *rperm, const T *diag, T damp,
                           T *a, cudaStream_t stream);

// Sets *bad to 1 unless every diagonal element d of the column-major
// factor satisfies d > 0 with d and 1/d finite (cpu/hessian_factor.cpp's
// test of a usable factor). *bad must be 0 before.
template <typename T>
void check_factor_diagonal(const T *l, int64_t k, int *bad, cudaStream_t stream);

// The factor's diagonal tiles, one per block of `block` positions, padded
// to block × block with the identity (tile b covers L's rows and columns
// [k − i2, k − i1) for positions [i1, i2) = [b·block, ...)), and an
// identity matrix in each of `inverses`, both column-major, tile after tile.
template <typename T>
void gather_diagonal_tiles(const T *l, int64_t k, int64_t block, int64_t tiles, T *diagonal,
                           T *inverses, cudaStream_t stream);

// codes[r·k + perm[p]] = by_position[p·n + r]: the codes back into each
// row's original column order.
void unpermute_codes(const uint8_t *by_position, int64_t n, int64_t k, const int64_t *perm,
                     uint8_t *codes, cudaStream_t stream);

}  // namespace gptq_cuda
