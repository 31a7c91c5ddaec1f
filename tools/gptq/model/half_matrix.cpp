#include "model/half_matrix.h"

#include <algorithm>
#include <cstring>

#include "formats/float_formats.h"
#include "model/model_dir.h"
#include "model/vector_math.h"
#include "model/vector_width.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>
#define GPTQ_HALF_X86 1
// GCC 12 flags the deliberately undefined pass-through operand inside its own
// AVX-512 intrinsics (_mm512_undefined_*) as maybe-uninitialized.
#ifndef __clang__
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#endif

namespace gptqtool {

namespace {

// Partial sums per dot product: every build keeps 16 (one 16-float vector,
// two 8-float or four 4-float ones), so that each gives the same values.
constexpr int kPartials = 16;
// Rows of x multiplied with a row of W while it is in registers.
constexpr int64_t kRowsAtOnce = 4;

// Rows of W are widened to float32 (exactly) before the products read them
// once per group of rows of x. Float16 goes through F16C where the build has
// it: in functions of their own, since their intrinsics cannot be inlined
// into the templates below, which every build shares.
void widen_row_f16_scalar(const uint16_t *p, int64_t n, float *out) {
  for (int64_t j = 0; j < n; ++j) out[j] = f16_to_float(p[j]);
}

template <typename L>
[[gnu::always_inline]] inline void widen_row_bf16(const uint16_t *p, int64_t n, float *out) {
  int64_t j = 0;
  for (; j + L::kCount <= n; j += L::kCount) L::load(p + j, L::at(out + j));
  for (; j < n; ++j) out[j] = bf16_to_float(p[j]);
}

#ifdef GPTQ_HALF_X86
GPTQ_TARGET_AVX512 void widen_row_f16_avx512(const uint16_t *p, int64_t n, float *out) {
  int64_t j = 0;
  for (; j + 16 <= n; j += 16)
    _mm512_storeu_ps(out + j,
                     _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(p + j))));
  for (; j < n; ++j) out[j] = f16_to_float(p[j]);
}
[[gnu::target("avx2,f16c")]] void widen_row_f16_f16c(const uint16_t *p, int64_t n, float *out) {
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    _mm256_storeu_ps(out + j, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(p + j))));
  for (; j < n; ++j) out[j] = f16_to_float(p[j]);
}
// (Clang's __builtin_cpu_supports does not know "f16c".) The AVX2 build
// runs only where the OS keeps the vector registers, so the CPUID bit is all
// there is to check.
bool cpu_has_f16c() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  return __get_cpuid(1, &a, &b, &c, &d) != 0 && (c & bit_F16C) != 0;
}
#endif

template <typename L>
[[gnu::always_inline]] inline void widen_row(const HalfMatrix &w, int64_t r, float *out) {
  const uint16_t *p = w.bits.data() + r * w.cols;
  if (w.dtype != TensorDType::F16) return widen_row_bf16<L>(p, w.cols, out);
#ifdef GPTQ_HALF_X86
  if constexpr (L::kCount == 16) return widen_row_f16_avx512(p, w.cols, out);
  static const bool f16c = cpu_has_f16c();
  if (L::kCount == 8 && f16c) return widen_row_f16_f16c(p, w.cols, out);
#endif
  widen_row_f16_scalar(p, w.cols, out);
}

template <typename L>
[[gnu::always_inline]] inline void widen_rows_lanes(const HalfMatrix &w, int64_t r0, int64_t r1,
                                                    float *out) {
  for (int64_t r = r0; r < r1; ++r) widen_row<L>(w, r, out + (r - r0) * w.cols);
}

// The 16 partial sums of one dot product (V vectors of N lanes, partial
// sum i in lane i mod N of vector i / N) added pairwise: i and i + 8, then
// i and i + 4, i + 2, i + 1. The first step in vectors where a vector holds
// at most 8 of them.
template <typename L>
[[gnu::always_inline]] inline float sum_partials(const typename L::Float *acc) {
  constexpr int N = static_cast<int>(L::kCount);
  float part[kPartials / 2];
  if constexpr (N == 16) {
    for (int i = 0; i < 8; ++i) part[i] = acc[0][i] + acc[0][i + 8];
  } else {
    for (int v = 0; v < 8 / N; ++v) {
      const typename L::Float t = acc[v] + acc[v + 8 / N];
      std::memcpy(part + v * N, &t, sizeof t);
    }
  }
  for (int s = kPartials / 4; s >= 1; s /= 2)
    for (int i = 0; i < s; ++i) part[i] += part[i + s];
  return part[0];
}

// out[m] = Σ_k x[m·ldx + k]·w[k] for R rows of x, k < cols (a multiple of
// 16; zero weights past the row's end).
template <typename L, int R>
[[gnu::always_inline]] inline void dot_rows(const float *w, const float *x, int64_t ldx,
                                            int64_t cols, float *out) {
  constexpr int N = static_cast<int>(L::kCount), V = kPartials / N;
  typename L::Float acc[R][V];
  for (int m = 0; m < R; ++m)
    for (int v = 0; v < V; ++v) acc[m][v] = typename L::Float{};
  for (int64_t k = 0; k < cols; k += kPartials) {
    for (int v = 0; v < V; ++v) {
      typename L::Float wv;
      L::load(w + k + v * N, wv);
      for (int m = 0; m < R; ++m) {
        typename L::Float xv;
        L::load(x + m * ldx + k + v * N, xv);
        acc[m][v] += wv * xv;
      }
    }
  }
  for (int m = 0; m < R; ++m) out[m] = sum_partials<L>(acc[m]);
}

template <typename L>
[[gnu::always_inline]] inline void half_matmul_lanes(const HalfMatrix &w, const float *x,
                                                     int64_t x_rows, int64_t n0, int64_t n1,
                                                     float *y, int64_t ldy) {
  const int64_t cols = w.cols;
  // Rows padded with zeros to whole spans of 16, so that every product runs
  // whole vectors: the padding adds zero products to the partial sums.
  const int64_t padded = (cols + kPartials - 1) / kPartials * kPartials;
  // Kept by each thread between calls: a decode step makes one per thread
  // and layer.
  thread_local std::vector<float> row, x_padded;
  row.resize(static_cast<size_t>(padded));
  std::fill(row.begin() + cols, row.end(), 0.0f);
  const float *xs = x;
  if (padded != cols) {
    x_padded.assign(static_cast<size_t>(x_rows * padded), 0.0f);
    for (int64_t m = 0; m < x_rows; ++m)
      std::copy_n(x + m * cols, cols, x_padded.data() + m * padded);
    xs = x_padded.data();
  }
  for (int64_t n = n0; n < n1; ++n) {
    widen_row<L>(w, n, row.data());
    for (int64_t m0 = 0; m0 < x_rows; m0 += kRowsAtOnce) {
      float out[kRowsAtOnce];
      const float *xm = xs + m0 * padded;
      switch (std::min(kRowsAtOnce, x_rows - m0)) {
        case 4: dot_rows<L, 4>(row.data(), xm, padded, padded, out); break;
        case 3: dot_rows<L, 3>(row.data(), xm, padded, padded, out); break;
        case 2: dot_rows<L, 2>(row.data(), xm, padded, padded, out); break;
        default: dot_rows<L, 1>(row.data(), xm, padded, padded, out);
      }
      for (int64_t m = m0; m < std::min(x_rows, m0 + kRowsAtOnce); ++m)
        y[m * ldy + n] = out[m - m0];
    }
  }
}

// widen_rows and half_matmul built once per vector width (vector_width.h).
GPTQ_TARGET_AVX512 void widen_rows_avx512(const HalfMatrix &w, int64_t r0, int64_t r1,
                                          float *out) {
  widen_rows_lanes<Lanes<16>>(w, r0, r1, out);
}
GPTQ_TARGET_AVX2 void widen_rows_avx2(const HalfMatrix &w, int64_t r0, int64_t r1, float *out) {
  widen_rows_lanes<Lanes<8>>(w, r0, r1, out);
}
void widen_rows_baseline(const HalfMatrix &w, int64_t r0, int64_t r1, float *out) {
  widen_rows_lanes<Lanes<4>>(w, r0, r1, out);
}

GPTQ_TARGET_AVX512 void half_matmul_avx512(const HalfMatrix &w, const float *x, int64_t x_rows,
                                           int64_t n0, int64_t n1, float *y, int64_t ldy) {
  half_matmul_lanes<Lanes<16>>(w, x, x_rows, n0, n1, y, ldy);
}
GPTQ_TARGET_AVX2 void half_matmul_avx2(const HalfMatrix &w, const float *x,
                                                   int64_t x_rows, int64_t n0, int64_t n1,
                                                   float *y, int64_t ldy) {
  half_matmul_lanes<Lanes<8>>(w, x, x_rows, n0, n1, y, ldy);
}
void half_matmul_baseline(const HalfMatrix &w, const float *x, int64_t x_rows, int64_t n0,
                          int64_t n1, float *y, int64_t ldy) {
  half_matmul_lanes<Lanes<4>>(w, x, x_rows, n0, n1, y, ldy);
}

}  // namespace

void HalfMatrix::widen_rows(int64_t r0, int64_t r1, float *out) const {
  switch (vector_lanes()) {
    case 16:
      return widen_rows_avx512(*this, r0, r1, out);
    case 8:
      return widen_rows_avx2(*this, r0, r1, out);
    default:
      return widen_rows_baseline(*this, r0, r1, out);
  }
}

std::shared_ptr<const HalfMatrix> load_half_matrix(const ModelDir &dir, const std::string &tensor,
                                                   int64_t rows, int64_t cols) {
  if (!dir.has(tensor)) return nullptr;
  const TensorDType stored = dir.info(tensor).dtype;
  if (stored != TensorDType::F16 && stored != TensorDType::BF16) return nullptr;
  auto m = std::make_shared<HalfMatrix>();
  m->rows = rows;
  m->cols = cols;
  m->dtype = stored;
  m->bits = dir.load_16bit(tensor, {rows, cols});
  return m;
}

void half_matmul(const HalfMatrix &w, const float *x, int64_t x_rows, int64_t n0, int64_t n1,
                 float *y, int64_t ldy) {
  switch (vector_lanes()) {
    case 16:
      return half_matmul_avx512(w, x, x_rows, n0, n1, y, ldy);
    case 8:
      return half_matmul_avx2(w, x, x_rows, n0, n1, y, ldy);
    default:
      return half_matmul_baseline(w, x, x_rows, n0, n1, y, ldy);
  }
}

}  // namespace gptqtool
