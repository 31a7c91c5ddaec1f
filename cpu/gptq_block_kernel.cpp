#include "gptq_block_kernel.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "group_params.h"
#include "isa.h"

// Lanes<T> values pass only between always_inline helpers, which are
// inlined into the build for each instruction set: no call passes or
// returns a vector, so the compiler's note that one would change the ABI
// is moot.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace gptq::cpu {

namespace {

// Every step below is inlined into the one function per instruction set,
// so that the compiler vectorizes all of it for that target.
#define GPTQ_INLINE __attribute__((always_inline)) inline

// Rows are processed kLanes at a time with each row in one SIMD lane: a
// column step quantizes kLanes weights at once, and feeding its errors into
// the rest of the block is, per later column, one vector multiply-subtract
// (a scalar of U times the lane vector of errors).
constexpr int64_t kLanes = 16;

// Errors are fed forward kStep columns at a time (see feed_forward).
constexpr int64_t kStep = 8;

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
GPTQ_INLINE Lanes<T> load_lanes(const T *p) {
  Lanes<T> v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}

template <typename T>
GPTQ_INLINE void store_lanes(T *p, const Lanes<T> &v) {
  __builtin_memcpy(p, &v, sizeof v);
}

// The kLanes rows [t0, t0 + lanes) while the block's columns are quantized;
// lanes past `lanes` are padding, never stored.
template <typename T>
struct Tile {
  int64_t t0, lanes;
  T (*wt)[kLanes];         // wt[i][l]: column i of the block for row t0 + l
  uint8_t *codes;          // [count][kLanes], stored to the rows at the end
  T s[kLanes], z[kLanes];  // scale and zero of `group`, per lane
  int64_t group;           // -1: none loaded yet
  double loss[kLanes];     // Σ error² / 2 per lane
};

// The tile's block-start weights, assembled just before they are read (the
// GEMM before the block streams all of W, so these rows of W are then in
// cache when the block's residuals are written back): W's columns of S
// plus the update, into the state and, for the block's own columns,
// straight into the lanes. Row index j of the state is position s_end−1−j:
// the block's column i is j = span−1−i.
template <typename T>
GPTQ_INLINE void load_tile(const BlockArgs<T> &a, Tile<T> &tile) {
  const int64_t first = a.span - a.count;
  for (int64_t l = 0; l < kLanes; ++l) {
    if (l >= tile.lanes) {
      for (int64_t i = 0; i < a.count; ++i) tile.wt[i][l] = T(0);
      continue;
    }
    const int64_t r = tile.t0 + l;
    const T *src = a.w + r * a.k + a.c0;
    T *dst = a.state + r * a.span;
    if (a.update != nullptr) {
      const T *add = a.update + r * a.update_ld;
      for (int64_t j = 0; j < a.span; ++j) dst[j] = src[j] + add[j];
    } else {
      for (int64_t j = 0; j < a.span; ++j) dst[j] = src[j];
    }
    for (int64_t j = first; j < a.span; ++j) tile.wt[a.span - 1 - j][l] = dst[j];
  }
}

// Rows [r0, r1)'s block-start inputs, the rows of W and of the update that
// the GEMM left in memory, not in cache: fetched to L2 while the tile
// before them is worked, so that their own tile does not wait on them.
template <typename T>
GPTQ_INLINE void prefetch_rows(const BlockArgs<T> &a, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t j = 0; j < a.span; j += 64 / static_cast<int64_t>(sizeof(T))) {
      __builtin_prefetch(a.w + r * a.k + a.c0 + j, 0, 2);
      if (a.update != nullptr) __builtin_prefetch(a.update + r * a.update_ld + j, 0, 2);
    }
}

// A K-quant's sub-block g starting at position p (super_block_params.h):
// the super-block's d and dmin first when p also starts the super-block,
// from the block-start weights of its positions, then the sub-block's
// integer scale and min, and its effective scale and zero into scale and
// zero.
template <typename T>
GPTQ_INLINE void enter_sub_block(const BlockArgs<T> &a, const Quantizer<T> &quant,
                                 const Tile<T> &tile, int64_t p, int64_t g, T *scale, T *zero) {
  const SuperBlockRule<T> rule{quant.gguf, quant.maxq};
  const SuperParams<T> &sp = a.super;
  // The super-block of sub-block g (with group-aware act-order, positions
  // are not columns, but a super-block's positions are still consecutive).
  const int64_t at = (g * a.group_size / sp.size) * a.n + tile.t0, sub_at = g * a.n + tile.t0;
  const int64_t end = std::min(a.k, p + a.group_size);
  if (p % sp.size == 0) {
    const int64_t super_end = std::min(a.k, p + sp.size);
    for (int64_t l = 0; l < tile.lanes; ++l)
      rule.find_super(a.state + (tile.t0 + l) * a.span, a.diag_state, a.s_end - super_end,
                      a.s_end - p, &sp.d[at + l], &sp.dmin[at + l]);
  }
  for (int64_t l = 0; l < tile.lanes; ++l)
    rule.find_sub(a.state + (tile.t0 + l) * a.span, a.diag_state, a.s_end - end, a.s_end - p,
                  sp.d[at + l], sp.dmin[at + l], &sp.sc[sub_at + l], &sp.mc[sub_at + l], &scale[l],
                  &zero[l]);
}

// Makes s and z those of position p's group. A dynamic group's parameters
// are found when its first position is reached, from the block-start
// weights of positions [p, p + group_size), which the state holds at
// [s_end − min(k, p + group_size), s_end − p).
template <typename T>
GPTQ_INLINE void enter_group(const BlockArgs<T> &a, const Quantizer<T> &quant, Tile<T> &tile,
                             int64_t p) {
  const int64_t g = a.group_of[p];
  T *scale = a.scale + g * a.n + tile.t0, *zero = a.zero + g * a.n + tile.t0;
  if (a.dynamic_groups && p % a.group_size == 0) {
    const int64_t end = std::min(a.k, p + a.group_size);
    if (a.super.size > 0) {
      enter_sub_block(a, quant, tile, p, g, scale, zero);
    } else {
      for (int64_t l = 0; l < tile.lanes; ++l)
        quant.find_params(a.state + (tile.t0 + l) * a.span, 1, a.span, a.s_end - end,
                          a.s_end - p, &scale[l], &zero[l], a.diag_state);
    }
    tile.group = -1;
  }
  if (g == tile.group) return;
  for (int64_t l = 0; l < kLanes; ++l) {
    tile.s[l] = l < tile.lanes ? scale[l] : T(1);
    tile.z[l] = l < tile.lanes ? zero[l] : T(0);
  }
  tile.group = g;
}

// Quantizes column i, whose weights are final: its codes go to the tile's
// buffer, its slot keeps the dequantized weights (subtracted from the
// original weights once the block is done), and diff gets w − q.
template <typename T>
GPTQ_INLINE void quantize_column(const BlockArgs<T> &a, const Quantizer<T> &quant, Tile<T> &tile,
                                 int64_t i, T (&diff)[kLanes]) {
  enter_group(a, quant, tile, a.i1 + i);
  T code[kLanes], deq[kLanes];
  if (quant.gguf == nullptr) {
    for (int64_t l = 0; l < kLanes; ++l) {
      code[l] = quant.code(tile.wt[i][l], tile.s[l], tile.z[l]);
      deq[l] = tile.s[l] * (code[l] - tile.z[l]);
      diff[l] = tile.wt[i][l] - deq[l];
    }
  } else {
    for (int64_t l = 0; l < kLanes; ++l) {
      code[l] = quant.block_code(tile.wt[i][l], tile.s[l], tile.z[l]);
      deq[l] = quant.block_value(code[l], tile.s[l], tile.z[l]);
      diff[l] = tile.wt[i][l] - deq[l];
    }
  }
  for (int64_t l = 0; l < kLanes; ++l) {
    tile.codes[i * kLanes + l] = static_cast<uint8_t>(code[l]);
    tile.wt[i][l] = deq[l];
  }
}

// Round-to-nearest: every column on its own, nothing fed forward (U = I).
template <typename T>
GPTQ_INLINE void quantize_columns_rtn(const BlockArgs<T> &a, const Quantizer<T> &quant,
                                      Tile<T> &tile) {
  for (int64_t i = 0; i < a.count; ++i) {
    T diff[kLanes];
    quantize_column(a, quant, tile, i, diff);
    for (int64_t l = 0; l < kLanes; ++l)
      tile.loss[l] += static_cast<double>(diff[l] * diff[l]) / 2.0;
  }
}

// Columns [i, i + kStep) (fewer at the block's end): each is quantized, and
// its errors (w − q)/U[j][j], into ev, go at once to the step's later
// columns.
template <typename T>
GPTQ_INLINE void quantize_step(const BlockArgs<T> &a, const Quantizer<T> &quant, Tile<T> &tile,
                               int64_t i, int64_t step_end, Lanes<T> (&ev)[kStep]) {
  const int64_t count = a.count;  // a local: the stores below may alias `a`
  for (int64_t j = i; j < step_end; ++j) {
    T diff[kLanes];
    quantize_column(a, quant, tile, j, diff);
    const T *u_row = a.u_tile + j * count;
    Lanes<T> &e = ev[j - i];
    for (int64_t l = 0; l < kLanes; ++l) {
      e[l] = diff[l] / u_row[j];
      tile.loss[l] += static_cast<double>(e[l] * e[l]) / 2.0;
    }
    for (int64_t t = j + 1; t < step_end; ++t)
      store_lanes(tile.wt[t], load_lanes(tile.wt[t]) - e * u_row[t]);
  }
}

// The errors of the step [i, i + kStep) into every later column of the
// block: each is loaded once, takes the kStep updates in column order, and
// is stored once.
template <typename T>
GPTQ_INLINE void feed_forward(const BlockArgs<T> &a, Tile<T> &tile, int64_t i,
                              const Lanes<T> (&ev)[kStep]) {
  const int64_t count = a.count;  // a local: the stores below may alias `a`
  const T *u = a.u_tile + i * count;
  for (int64_t t = i + kStep; t < count; ++t) {
    Lanes<T> r = load_lanes(tile.wt[t]);
#pragma GCC unroll 8
    for (int64_t m = 0; m < kStep; ++m) r -= ev[m] * u[m * count + t];
    store_lanes(tile.wt[t], r);
  }
}

// GPTQ: errors fed forward kStep columns at a time. Each weight sees the
// same multiply and subtract, in the same order, as one column at a time
// (bit-identical), with an eighth of the loads and stores of later
// columns, which are what bounds the loop (steps of 4 were slower:
// bench/RESULTS.md). Written with GCC's vector type because, as a loop
// over lanes, GCC vectorized the loop over columns instead, transposing
// 16 × 16 tiles in and out.
template <typename T>
GPTQ_INLINE void quantize_columns_gptq(const BlockArgs<T> &a, const Quantizer<T> &quant,
                                       Tile<T> &tile) {
  for (int64_t i = 0; i < a.count; i += kStep) {
    const int64_t step_end = std::min(a.count, i + kStep);
    Lanes<T> ev[kStep];
    quantize_step(a, quant, tile, i, step_end, ev);
    if (step_end - i == kStep) feed_forward(a, tile, i, ev);
  }
}

// The tile's results to its rows: the block's original weights become the
// residuals w − q, and the codes go to the block's array. Returns the
// tile's loss, summed in row order.
template <typename T>
GPTQ_INLINE double store_tile(const BlockArgs<T> &a, const Tile<T> &tile) {
  double loss = 0.0;
  for (int64_t l = 0; l < tile.lanes; ++l) {
    loss += tile.loss[l];
    T *w = a.w + (tile.t0 + l) * a.k + (a.k - 1 - a.i1);  // position i1 + i at w[−i]
    uint8_t *codes = a.codes + (tile.t0 + l) * a.count;
    for (int64_t i = 0; i < a.count; ++i) {
      w[-i] -= tile.wt[i][l];
      codes[i] = tile.codes[i * kLanes + l];
    }
  }
  return loss;
}

// Rows [r0, r1), a tile of kLanes rows at a time: its block-start weights
// in, the block's columns quantized (errors fed forward unless the layer
// fell back to round-to-nearest), its residuals, codes and loss out.
template <typename T>
GPTQ_INLINE void block_rows(const BlockArgs<T> &a, int64_t r0, int64_t r1, double *tile_loss) {
  const Quantizer<T> quant = a.quant;
  // The tile's codes are kept here until store_tile: scattered stores to
  // the rows inside the column loop kept the compiler from keeping
  // pointers and lanes in registers.
  std::vector<uint8_t> codes(static_cast<size_t>(a.count * kLanes));
  for (int64_t t0 = r0; t0 < r1; t0 += kLanes) {
    Tile<T> tile;
    tile.t0 = t0;
    tile.lanes = std::min(kLanes, r1 - t0);
    tile.wt = reinterpret_cast<T(*)[kLanes]>(a.scratch + t0 * a.count);
    tile.codes = codes.data();
    tile.group = -1;
    std::fill_n(tile.loss, kLanes, 0.0);
    load_tile(a, tile);
    prefetch_rows(a, t0 + kLanes, std::min(r1, t0 + 2 * kLanes));
    if (a.feed_errors)
      quantize_columns_gptq(a, quant, tile);
    else
      quantize_columns_rtn(a, quant, tile);
    tile_loss[(t0 - r0) / kLanes] = store_tile(a, tile);
  }
}

// One build per instruction set, each with all of the above inlined.
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
