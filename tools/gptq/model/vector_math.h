// Elementwise float32 helpers for the forward pass, written so that the
// compiler vectorizes the loops over them (the C library's expf is a call
// per element, and a plain running max or sum is a dependency chain the
// compiler may not reorder). They vectorize only with -fno-trapping-math
// (tools/gptq/meson.build), as GCC otherwise keeps the clamps below as branches.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

// A loop over whole activations, built once per vector width with the
// widest one the CPU has picked at load time: the tool is compiled for
// baseline x86-64, whose 4-float vectors leave three quarters of an AVX-512
// core idle. Every clone computes the same values (the tool is built with
// -ffp-contract=off, and the reductions below fix their lane count), so what
// these loops give does not depend on the CPU.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define GPTQ_VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#else
#define GPTQ_VECTOR_CLONES
#endif

namespace gptqtool {

// x = cap·tanh(x / cap) over n values: Gemma 2's soft cap of attention
// scores and final logits (cap > 0).
inline void soft_cap(float *x, int64_t n, float cap) {
  const float inv = 1.0f / cap;
  for (int64_t i = 0; i < n; ++i) x[i] = cap * std::tanh(x[i] * inv);
}

// e^x: range reduction to x = n·ln2 + r, |r| <= ln2/2, Cephes' polynomial
// for e^r, and 2^n put into the exponent bits. Within 1 ulp of the exact
// value where e^x is a normal float; inputs above 88 give e^88 and below -87
// give e^-87 (used only where such values no longer matter: softmax terms,
// silu).
inline float fast_exp(float x) {
  x = std::min(std::max(x, -87.0f), 88.0f);
  // Adding 1.5·2^23 rounds x·log2(e) to an integer in the low mantissa bits.
  const float shifter = 12582912.0f;
  const float shifted = x * 1.44269504088896341f + shifter;
  const float n = shifted - shifter;
  // ln2 split so that n·ln2_hi is exact.
  const float r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t bits;
  std::memcpy(&bits, &shifted, sizeof bits);
  // The low bits of `shifted` hold n; move n + 127 into the exponent field.
  const int32_t scale_bits = (bits - 0x4B400000 + 127) << 23;
  float scale;
  std::memcpy(&scale, &scale_bits, sizeof scale);
  return p * scale;
}

// Reductions run in this many independent lanes.
constexpr int kVectorLanes = 16;

// max(x[0 .. n-1]), n >= 1.
inline float max_of(const float *x, int64_t n) {
  float lane[kVectorLanes];
  std::fill(lane, lane + kVectorLanes, x[0]);
  int64_t i = 0;
  for (; i + kVectorLanes <= n; i += kVectorLanes) {
    for (int l = 0; l < kVectorLanes; ++l) lane[l] = std::max(lane[l], x[i + l]);
  }
  for (; i < n; ++i) lane[0] = std::max(lane[0], x[i]);
  return *std::max_element(lane, lane + kVectorLanes);
}

// Σ f(x[i]), accumulated in float lanes over short runs and in double
// across them, so that even a sum over a whole vocabulary keeps double-like
// accuracy.
template <typename F>
double sum_of(const float *x, int64_t n, F f) {
  constexpr int64_t kRun = 64 * kVectorLanes;
  double sum = 0.0;
  int64_t i = 0;
  while (i + kVectorLanes <= n) {
    float lane[kVectorLanes] = {};
    const int64_t end = std::min(n, i + kRun);
    for (; i + kVectorLanes <= end; i += kVectorLanes) {
      for (int l = 0; l < kVectorLanes; ++l) lane[l] += f(x[i + l]);
    }
    for (float v : lane) sum += v;
  }
  for (; i < n; ++i) sum += f(x[i]);
  return sum;
}

// N floats at any float-aligned address as one value (Lanes<N>::Float),
// for the kernels written with explicit vectors (the decoded token's
// attention). Each such kernel is built once per vector width with the
// width's own N (vector_width.h): 16 in the AVX-512 build, 8 in the AVX2
// one, 4 in the baseline one. A vector wider than the build's registers has
// no machine type in GCC, so its arithmetic would go through the stack.
// Reached only through references (at), never passed by value: that calling
// convention differs between those builds, and Clang refuses such calls.
// Bf16: N bfloat16 values (their bits) at any 2-byte-aligned address; Word:
// the same lanes widened to 32-bit words.
template <int N>
struct Lanes;

#define GPTQ_DEFINE_LANES(N)                                                                  \
  template <>                                                                                 \
  struct Lanes<N> {                                                                           \
    static constexpr int64_t kCount = N;                                                      \
    typedef float Float __attribute__((vector_size(4 * N), aligned(4), may_alias));          \
    typedef uint16_t Bf16 __attribute__((vector_size(2 * N), aligned(2), may_alias));        \
    typedef uint32_t Word __attribute__((vector_size(4 * N)));                                \
    typedef uint32_t PackedBf16 __attribute__((vector_size(4 * N), aligned(2), may_alias));   \
    [[gnu::always_inline]] static Float &at(float *p) { return *reinterpret_cast<Float *>(p); } \
    /* N floats read from p into out: float32 as they are, bfloat16 widened */                \
    /* exactly (its bits are a float32's upper half). */                                      \
    [[gnu::always_inline]] static void load(const float *p, Float &out) {                     \
      out = *reinterpret_cast<const Float *>(p);                                              \
    }                                                                                         \
    [[gnu::always_inline]] static void load(const uint16_t *p, Float &out) {                  \
      out = (Float)(__builtin_convertvector(*reinterpret_cast<const Bf16 *>(p), Word) << 16); \
    }                                                                                         \
    /* 2N bfloat16 values at p, widened exactly: those at even offsets into */                \
    /* even, those at odd offsets into odd. Each 32-bit word holds an even */                 \
    /* value in its low half and the next one in its high half, so this is */                 \
    /* one shift and one mask, where load() spends several instructions on */                 \
    /* N values (GCC 12). */                                                                  \
    [[gnu::always_inline]] static void load_pair(const uint16_t *p, Float &even, Float &odd) { \
      const Word w = *reinterpret_cast<const PackedBf16 *>(p);                                \
      even = (Float)(w << 16);                                                                \
      odd = (Float)(w & 0xFFFF0000u);                                                         \
    }                                                                                         \
    /* even and odd (as load_pair gives them) stored back in order at p. */                   \
    [[gnu::always_inline]] static void store_interleaved(const Float &even, const Float &odd, \
                                                         float *p) {                          \
      at(p) = __builtin_shufflevector(even, odd, GPTQ_INTERLEAVE_LOW_##N);                    \
      at(p + N) = __builtin_shufflevector(even, odd, GPTQ_INTERLEAVE_HIGH_##N);               \
    }                                                                                         \
  };
// Lanes of (even, odd) in the order store_interleaved writes them: the low
// N values, then the high N.
#define GPTQ_INTERLEAVE_LOW_4 0, 4, 1, 5
#define GPTQ_INTERLEAVE_HIGH_4 2, 6, 3, 7
#define GPTQ_INTERLEAVE_LOW_8 0, 8, 1, 9, 2, 10, 3, 11
#define GPTQ_INTERLEAVE_HIGH_8 4, 12, 5, 13, 6, 14, 7, 15
#define GPTQ_INTERLEAVE_LOW_16 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23
#define GPTQ_INTERLEAVE_HIGH_16 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31
GPTQ_DEFINE_LANES(4)
GPTQ_DEFINE_LANES(8)
GPTQ_DEFINE_LANES(16)
#undef GPTQ_DEFINE_LANES
#undef GPTQ_INTERLEAVE_LOW_4
#undef GPTQ_INTERLEAVE_HIGH_4
#undef GPTQ_INTERLEAVE_LOW_8
#undef GPTQ_INTERLEAVE_HIGH_8
#undef GPTQ_INTERLEAVE_LOW_16
#undef GPTQ_INTERLEAVE_HIGH_16

// One value as float, for the tails of those loops.
inline float widen(float x) { return x; }
inline float widen(uint16_t bf16) {
  const uint32_t bits = static_cast<uint32_t>(bf16) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// x rounded to bfloat16 bits, to nearest even, as float_to_bf16 rounds it
// (NaN stays a quiet NaN, a finite value past bfloat16's range becomes
// infinity), without a branch, so that loops over it vectorize.
inline uint16_t narrow_to_bf16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  const uint32_t quiet_nan = (u >> 16) | 0x40u;
  return static_cast<uint16_t>((u & 0x7fffffffu) > 0x7f800000u ? quiet_nan : rounded);
}

inline double sum_of(const float *x, int64_t n) {
  return sum_of(x, n, [](float v) { return v; });
}

// Σ e^(x[i] − shift).
inline double sum_exp(const float *x, int64_t n, float shift) {
  return sum_of(x, n, [shift](float v) { return fast_exp(v - shift); });
}

}  // namespace gptqtool
