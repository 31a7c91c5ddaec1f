#include "gptq_block_kernel.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "group_params.h"
#include "isa.h"

// Lanes<T> values pass only between always_inline helpers, which are
// inlined into the build for each instruction set: no call passes or
// returns a vector, so GCC's note that one would change the ABI is moot.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

namespace gptq::cpu {

namespace {

// Rows are processed kLanes at a time with each row in one SIMD lane: a
// column step quantizes kLanes weights at once, and feeding its errors into
// the rest of the block is, per later column, one vector multiply-subtract
// (a scalar of U times the lane vector of errors).
constexpr int64_t kLanes = 16;

// kLanes values of T as one GCC vector (one zmm of floats on AVX-512), for
// values only: locals and arrays of it get the type's own alignment from
// the compiler, whatever it is. Memory of T (a tile's rows) is read and
// written through load_lanes / store_lanes, which assume only T's
// alignment: a vector type whose alignment was lowered by an attribute is
// not kept consistently by every compiler (clang used aligned 64-byte
// moves on such stack arrays that were 32-byte aligned).
template <typename T>
struct LaneVector;
template <>
struct LaneVector<float> {
  typedef float type __attribute__((vector_size(kLanes * sizeof(float))));
};
template <>
struct LaneVector<double> {
  typedef double type __attribute__((vector_size(kLanes * sizeof(double))));
};
template <typename T>
using Lanes = typename LaneVector<T>::type;

template <typename T>
__attribute__((always_inline)) inline Lanes<T> load_lanes(const T *p) {
  Lanes<T> v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}

template <typename T>
__attribute__((always_inline)) inline void store_lanes(T *p, const Lanes<T> &v) {
  __builtin_memcpy(p, &v, sizeof v);
}

template <typename T>
__attribute__((always_inline)) inline void block_rows(const BlockArgs<T> &a, int64_t r0, int64_t r1,
                                                      double *tile_loss) {
  Quantizer<T> quant;
  quant.maxq = a.maxq;
  quant.sym = a.sym;
  quant.mse = a.mse;
  quant.norm = a.norm;
  quant.grid = a.grid;
  quant.shrink_steps = a.shrink_steps;

  const int64_t k = a.k, n = a.n, count = a.count;
  // The tile's codes, [count][kLanes], written to their rows after the
  // column loop (scattered stores in the loop kept the compiler from
  // keeping pointers and lanes in registers).
  std::vector<uint8_t> tile_codes(static_cast<size_t>(count * kLanes));
  for (int64_t t0 = r0; t0 < r1; t0 += kLanes) {
    const int64_t lanes = std::min(kLanes, r1 - t0);
    // wt[i][l]: column i of the block for row t0+l (the tile's scratch area).
    T(*wt)[kLanes] = reinterpret_cast<T(*)[kLanes]>(a.scratch + t0 * count);
    // The rows' block-start weights, assembled here, just before they are
    // read (the GEMM before the block streams all of W, so these rows of W
    // are then in cache when the block's residuals are written back), into
    // the state and, for the block's own columns, straight into the lanes.
    // Row index j of the state is position s_end−1−j: the block's column i
    // is j = span−1−i.
    const int64_t first = a.span - count;
    for (int64_t l = 0; l < kLanes; ++l) {
      if (l < lanes) {
        const T *src = a.w + (t0 + l) * k + a.c0;
        T *dst = a.state + (t0 + l) * a.span;
        if (a.update != nullptr) {
          const T *add = a.update + (t0 + l) * a.update_ld;
          for (int64_t j = 0; j < a.span; ++j) dst[j] = src[j] + add[j];
        } else {
          for (int64_t j = 0; j < a.span; ++j) dst[j] = src[j];
        }
        for (int64_t j = first; j < a.span; ++j) wt[a.span - 1 - j][l] = dst[j];
      } else {
        for (int64_t i = 0; i < count; ++i) wt[i][l] = T(0);  // padding lanes: never stored
      }
    }
    // The next tile's block-start inputs: rows of W and of the update that
    // the GEMM left in memory, not in cache. Fetched to L2 while this
    // tile's columns are worked, so that the next tile does not wait on
    // them.
    for (int64_t r = t0 + kLanes; r < std::min(r1, t0 + 2 * kLanes); ++r)
      for (int64_t j = 0; j < a.span; j += 64 / static_cast<int64_t>(sizeof(T))) {
        __builtin_prefetch(a.w + r * k + a.c0 + j, 0, 2);
        if (a.update != nullptr) __builtin_prefetch(a.update + r * a.update_ld + j, 0, 2);
      }
    T s[kLanes], z[kLanes];
    double lane_loss[kLanes] = {};
    int64_t current_group = -1;
    // Quantizes column i (its weights final) and sets ev to its lanes'
    // errors (w − q)/U[i][i] when errors are fed forward.
    auto quantize_column = [&](int64_t i, Lanes<T> & ev) __attribute__((always_inline)) {
      const int64_t p = a.i1 + i;
      const int64_t g = a.group_of[p];
      if (a.dynamic_groups && p % a.group_size == 0) {
        // From the block-start weights of positions [p, p+gs), which the
        // state holds at [s_end - min(k, p+gs), s_end - p).
        const int64_t end = std::min(k, p + a.group_size);
        for (int64_t l = 0; l < lanes; ++l)
          quant.find_params(a.state + (t0 + l) * a.span, 1, a.span, a.s_end - end, a.s_end - p,
                            &a.scale[g * n + t0 + l], &a.zero[g * n + t0 + l]);
        current_group = -1;
      }
      if (g != current_group) {
        for (int64_t l = 0; l < kLanes; ++l) {
          s[l] = l < lanes ? a.scale[g * n + t0 + l] : T(1);
          z[l] = l < lanes ? a.zero[g * n + t0 + l] : T(0);
        }
        current_group = g;
      }
      T c[kLanes], deq[kLanes], diff[kLanes];
      for (int64_t l = 0; l < kLanes; ++l) {
        // clamp(round_half_even(w / s) + z, 0, maxq), as Quantizer::code.
        const T q = std::rint(wt[i][l] / s[l]) + z[l];
        c[l] = std::min(std::max(q, T(0)), a.maxq);
        deq[l] = s[l] * (c[l] - z[l]);
        diff[l] = wt[i][l] - deq[l];
      }
      // Column i is final: its slot keeps what is subtracted from the
      // weight once the block is done, the code goes to the tile's buffer.
      for (int64_t l = 0; l < kLanes; ++l) {
        tile_codes[i * kLanes + l] = static_cast<uint8_t>(c[l]);
        wt[i][l] = deq[l];
      }
      if (a.feed_errors) {
        const T d = a.u_tile[i * count + i];
        for (int64_t l = 0; l < kLanes; ++l) {
          ev[l] = diff[l] / d;
          lane_loss[l] += static_cast<double>(ev[l] * ev[l]) / 2.0;
        }
      } else {
        for (int64_t l = 0; l < kLanes; ++l)
          lane_loss[l] += static_cast<double>(diff[l] * diff[l]) / 2.0;
      }
    };
    if (!a.feed_errors) {
      Lanes<T> unused;
      for (int64_t i = 0; i < count; ++i) quantize_column(i, unused);
    } else {
      // Error feed-forward, kStep columns at a time: inside a step each
      // column's errors go at once to the step's later columns; then every
      // later column is loaded once, takes the step's kStep updates in
      // column order and is stored once. Each weight sees the same multiply
      // and subtract, in the same order, as one column at a time (bit-
      // identical), with an eighth of the loads and stores, which are what
      // bounds the loop (steps of 4 were slower: bench/RESULTS.md). Written with
      // GCC's vector type because, as a loop over lanes, GCC vectorized the
      // loop over columns instead, transposing 16 × 16 tiles in and out.
      constexpr int64_t kStep = 8;
      for (int64_t i = 0; i < count; i += kStep) {
        const int64_t step_end = std::min(count, i + kStep);
        Lanes<T> ev[kStep];
        for (int64_t j = i; j < step_end; ++j) {
          quantize_column(j, ev[j - i]);
          const T *u_row = a.u_tile + j * count;
          for (int64_t t = j + 1; t < step_end; ++t)
            store_lanes(wt[t], load_lanes(wt[t]) - ev[j - i] * u_row[t]);
        }
        const T *u = a.u_tile + i * count;
        if (step_end - i == kStep) {
          for (int64_t t = step_end; t < count; ++t) {
            Lanes<T> r = load_lanes(wt[t]);
#pragma GCC unroll 8
            for (int64_t m = 0; m < kStep; ++m) r -= ev[m] * u[m * count + t];
            store_lanes(wt[t], r);
          }
        }
      }
    }
    double loss = 0.0;
    for (int64_t l = 0; l < lanes; ++l) {
      loss += lane_loss[l];
      // The original weights of the block become the residuals w − q.
      T *w = a.w + (t0 + l) * k + (k - 1 - a.i1);  // position i1+i at w[-i]
      uint8_t *codes = a.codes + (t0 + l) * count;
      for (int64_t i = 0; i < count; ++i) {
        w[-i] -= wt[i][l];
        codes[i] = tile_codes[i * kLanes + l];
      }
    }
    tile_loss[(t0 - r0) / kLanes] = loss;
  }
}

// One build per instruction set; the template is inlined into each, so the
// compiler vectorizes the error-feedback loop for that target.
#define GPTQ_BLOCK_VARIANT(NAME, TARGET)                                               \
  TARGET void NAME(const BlockArgs<float> &a, int64_t r0, int64_t r1, double *loss) {  \
    block_rows(a, r0, r1, loss);                                                       \
  }                                                                                    \
  TARGET void NAME(const BlockArgs<double> &a, int64_t r0, int64_t r1, double *loss) { \
    block_rows(a, r0, r1, loss);                                                       \
  }

#ifdef GPTQ_X86
GPTQ_BLOCK_VARIANT(block_rows_avx512, __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw"))))
GPTQ_BLOCK_VARIANT(block_rows_avx2, __attribute__((target("avx2"))))
#endif
GPTQ_BLOCK_VARIANT(block_rows_portable, )

// The level this process runs at (see isa.h); every build gives the same
// results.
const Isa kIsa = cpu_isa();

template <typename T>
void dispatch(const BlockArgs<T> &a, int64_t r0, int64_t r1, double *loss) {
  switch (kIsa) {
#ifdef GPTQ_X86
    case Isa::kAvx512Vnni:
    case Isa::kAvx512: return block_rows_avx512(a, r0, r1, loss);
    case Isa::kAvx2: return block_rows_avx2(a, r0, r1, loss);
#endif
    default: return block_rows_portable(a, r0, r1, loss);
  }
}

}  // namespace

void gptq_block_rows(const BlockArgs<float> &a, int64_t r0, int64_t r1, double *tile_loss) {
  dispatch(a, r0, r1, tile_loss);
}
void gptq_block_rows(const BlockArgs<double> &a, int64_t r0, int64_t r1, double *tile_loss) {
  dispatch(a, r0, r1, tile_loss);
}

}  // namespace gptq::cpu
