// The per-row arithmetic of the CUDA kernels, as __host__ __device__
// functions: the same source runs in the kernels and in CPU tests
// (tests/test_cuda_arith.cpp), which check it against the CPU backend on
// machines without a GPU. Every function mirrors cpu/group_params.h and
// cpu/gptq_block_kernel.cpp operation for operation (same roundings, no
// fused multiply-add), so that on the same inputs the GPU produces the CPU's
// codes bit for bit; what differs between the backends is only the order of
// the sums inside the factorization and the block updates.
#pragma once

#include <cstdint>

#ifdef __CUDACC__
#define GPTQ_HD __host__ __device__ __forceinline__
#else
#include <algorithm>
#include <cmath>
#define GPTQ_HD inline
#endif

namespace gptq_cuda {

// a·b and a − b rounded separately: nvcc would otherwise contract a − b·c
// into one fused multiply-add, which the CPU backend (built with
// -ffp-contract=off) never does.
GPTQ_HD float mul_rn(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
GPTQ_HD double mul_rn(double a, double b) {
#ifdef __CUDA_ARCH__
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}
GPTQ_HD float sub_rn(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fsub_rn(a, b);
#else
  return a - b;
#endif
}
GPTQ_HD double sub_rn(double a, double b) {
#ifdef __CUDA_ARCH__
  return __dsub_rn(a, b);
#else
  return a - b;
#endif
}

GPTQ_HD float round_even(float v) {
#ifdef __CUDA_ARCH__
  return rintf(v);
#else
  return std::rint(v);
#endif
}
GPTQ_HD double round_even(double v) {
#ifdef __CUDA_ARCH__
  return rint(v);
#else
  return std::rint(v);
#endif
}
GPTQ_HD float power(float a, float b) {
#ifdef __CUDA_ARCH__
  return powf(a, b);
#else
  return std::pow(a, b);
#endif
}
GPTQ_HD double power(double a, double b) {
#ifdef __CUDA_ARCH__
  return pow(a, b);
#else
  return std::pow(a, b);
#endif
}
template <typename T>
GPTQ_HD T min_of(T a, T b) {
  return b < a ? b : a;  // std::min's choice: the first on ties
}
template <typename T>
GPTQ_HD T max_of(T a, T b) {
  return a < b ? b : a;  // std::max's choice: the first on ties
}
template <typename T>
GPTQ_HD T abs_of(T a) {
  return a < T(0) ? -a : a;
}

// The quantizer's settings, as cpu::Quantizer holds them.
template <typename T>
struct QuantParams {
  T maxq;  // 2^bits − 1
  bool sym;
  bool mse;
  T norm;
  int grid;
  int shrink_steps;
};

// The smallest usable scale: the smallest normal float (FLT_MIN).
template <typename T>
GPTQ_HD T smallest_scale() {
  return static_cast<T>(1.17549435082228750797e-38f);
}

// clamp(round_half_even(w / scale) + zero, 0, maxq): the integer code.
template <typename T>
GPTQ_HD T quantize_code(T w, T scale, T zero, T maxq) {
  const T q = round_even(w / scale) + zero;
  return min_of(max_of(q, T(0)), maxq);
}

// Scale and zero of one row over `count` values at row[0], row[stride], …,
// exactly as cpu::Quantizer::find_params: the range always includes 0;
// symmetric ranges are made symmetric; empty or denormal ranges become
// [−1, 1]; then the optional MSE clip search.
template <typename T>
GPTQ_HD void find_group_params(const T *row, int64_t stride, int64_t count,
                               const QuantParams<T> &p, T *scale, T *zero) {
  T lo = T(0), hi = T(0);
  for (int64_t c = 0; c < count; ++c) {
    lo = min_of(lo, row[c * stride]);
    hi = max_of(hi, row[c * stride]);
  }
  if (p.sym) {
    hi = max_of(-lo, hi);
    if (lo < T(0)) lo = -hi;
  }
  if (lo == T(0) && hi == T(0)) {
    lo = T(-1);
    hi = T(1);
  }
  if ((hi - lo) / p.maxq < smallest_scale<T>()) {
    lo = T(-1);
    hi = T(1);
  }
  const T sym_zero = (p.maxq + T(1)) / T(2);
  T s = (hi - lo) / p.maxq;
  T z = p.sym ? sym_zero : round_even(-lo / s);
  if (p.mse) {
    double best = 1.0 / 0.0;
    for (int i = 0; i < p.shrink_steps; ++i) {
      const T shrink = static_cast<T>(1.0 - static_cast<double>(i) / p.grid);
      const T lo1 = mul_rn(shrink, lo), hi1 = mul_rn(shrink, hi);
      const T s1 = (hi1 - lo1) / p.maxq;
      if (s1 < smallest_scale<T>()) break;
      const T z1 = p.sym ? sym_zero : round_even(-lo1 / s1);
      double err = 0.0;
      for (int64_t c = 0; c < count; ++c) {
        const T w = row[c * stride];
        const T deq = mul_rn(s1, quantize_code(w, s1, z1, p.maxq) - z1);
        err += static_cast<double>(power(abs_of(deq - w), p.norm));
      }
      if (err < best) {
        best = err;
        s = s1;
        z = z1;
      }
    }
  }
  *scale = s;
  *zero = z;
}

// One column step of the GPTQ loop for one row: the weight w (its final,
// error-updated value) is rounded with its group's scale and zero. Returns
// the code; *dequantized is scale·(code − zero); *error is what is fed
// forward, (w − dequantized)/u_diag, or w − dequantized when nothing is fed
// forward (u_diag 0 means round-to-nearest); *loss_term is its square / 2.
template <typename T>
GPTQ_HD T quantize_step(T w, T scale, T zero, T maxq, T u_diag, T *dequantized, T *error,
                        double *loss_term) {
  const T c = quantize_code(w, scale, zero, maxq);
  const T deq = mul_rn(scale, c - zero);
  const T diff = sub_rn(w, deq);
  *dequantized = deq;
  if (u_diag != T(0)) {
    const T e = diff / u_diag;
    *error = e;
    *loss_term = static_cast<double>(mul_rn(e, e)) / 2.0;
  } else {
    *error = diff;
    *loss_term = static_cast<double>(mul_rn(diff, diff)) / 2.0;
  }
  return c;
}

// A later column's weight after one quantized column's error: w − e·u, the
// product rounded before the subtraction.
template <typename T>
GPTQ_HD T feed_forward(T w, T error, T u) {
  return sub_rn(w, mul_rn(error, u));
}

// ---------------------------------------------------------------------------
// The 4-bit matmul layout. The tensor-core kernel multiplies 16×16 tiles of
// weights (16 output rows × 16 input columns) as the A operand of
// mma.m16n8k16. In that instruction lane L of a warp holds, for g = L / 4
// and t = L % 4, the elements (row g, columns 2t and 2t+1), (row g+8, the
// same columns), (row g, columns 2t+8 and 2t+9) and (row g+8, those), two
// per 32-bit register. The layout stores exactly those eight 4-bit codes in
// one 32-bit word per lane and tile, nibble m holding element m of
// kFragmentElement, so that (word >> 4m) & 0x000F000F puts register m's two
// codes in the low bits of its two 16-bit halves.

struct TileElement {
  int row;  // 0..15 within the tile
  int col;  // 0..15 within the tile
};

// Nibble m (0..7) of lane `lane`'s word: register m % 4, half m / 4.
GPTQ_HD TileElement fragment_element(int lane, int nibble) {
  const int g = lane >> 2, t = lane & 3;
  const int reg = nibble & 3, half = nibble >> 2;
  TileElement e;
  e.row = g + ((reg & 1) ? 8 : 0);
  e.col = 2 * t + half + ((reg & 2) ? 8 : 0);
  return e;
}

// The word of lane `lane` for a 16×16 tile of codes (code(row, col) gives
// the 4-bit code of the tile's element).
template <typename CodeAt>
GPTQ_HD uint32_t pack_fragment_word(int lane, CodeAt code) {
  uint32_t word = 0;
  for (int m = 0; m < 8; ++m) {
    const TileElement e = fragment_element(lane, m);
    word |= (static_cast<uint32_t>(code(e.row, e.col)) & 0xFu) << (4 * m);
  }
  return word;
}

// Inside each pair of tiles (32 input columns, in the layout's column
// order) the kernel loads x once per lane, 8 consecutive elements: lane t
// (= L % 4) gets columns [8t, 8t + 8). The B operand of mma.m16n8k16 wants
// lane t to hold the tile's columns 2t, 2t+1 (first register) and 2t+8,
// 2t+9 (second); so column c of tile h (0, 1) of the pair is stored at
// column 8t + 4h + q of the pair, t = (c % 8) / 2, q = c % 2 + 2·(c / 8),
// and the weights are packed in the same order. The products then pair
// the same x and w whatever order the instruction sums them in.
GPTQ_HD int pair_column(int tile_in_pair, int col) {
  return 8 * ((col % 8) / 2) + 4 * tile_in_pair + (col % 2) + 2 * (col / 8);
}

// The code of nibble m of a word.
GPTQ_HD int fragment_code(uint32_t word, int nibble) {
  return static_cast<int>((word >> (4 * nibble)) & 0xFu);
}

// Register m's two halves as IEEE binary16 bit patterns 1024 + code: the
// magic-number conversion the kernel does with one AND and one OR
// (0x6400 is 1024.0 in binary16, whose last ten bits count units).
GPTQ_HD uint32_t fp16_magic_pair(uint32_t word, int reg) {
  return ((word >> (4 * reg)) & 0x000F000Fu) | 0x64006400u;
}

// The same for bfloat16: 0x4300 is 128.0, whose last seven bits count units.
GPTQ_HD uint32_t bf16_magic_pair(uint32_t word, int reg) {
  return ((word >> (4 * reg)) & 0x000F000Fu) | 0x43004300u;
}

}  // namespace gptq_cuda
