// Per-row scale and zero of one quantization group, and rounding a weight to
// its integer code: the reference GPTQ quantizer, including its MSE clip
// search and its treatment of symmetric rows with no negative weights.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "gptq.h"

namespace gptq::cpu {

template <typename T>
struct Quantizer {
  // Smallest usable scale: the smallest normal float.
  static constexpr T kSmallestScale = static_cast<T>(std::numeric_limits<float>::min());

  T maxq;  // 2^bits − 1
  bool sym;
  bool mse;
  T norm;
  int grid;
  int shrink_steps;  // how many grid points the MSE search tries

  static Quantizer from_config(const gptq_config &c) {
    Quantizer q;
    q.maxq = static_cast<T>((1 << c.bits) - 1);
    q.sym = c.sym != 0;
    q.mse = c.mse != 0;
    q.norm = static_cast<T>(c.mse_norm);
    q.grid = c.mse_grid;
    // int(max_shrink · grid) as the reference computes it in double; the
    // small slack absorbs the float storage of max_shrink (0.7f·100 = 69.99…).
    q.shrink_steps =
        static_cast<int>(std::floor(static_cast<double>(c.mse_max_shrink) * c.mse_grid + 1e-4));
    return q;
  }

  // clamp(round_half_even(w / scale) + zero, 0, maxq): the integer code.
  T code(T w, T scale, T zero) const {
    const T q = std::rint(w / scale) + zero;  // the default rounding mode: half to even
    return std::min(std::max(q, T(0)), maxq);
  }

  // Scale and zero for each of `rows` rows over columns [c0, c1) of the
  // row-major matrix w with leading dimension ld.
  void find_params(const T *w, int64_t rows, int64_t ld, int64_t c0, int64_t c1, T *scale,
                   T *zero) const {
    for (int64_t r = 0; r < rows; ++r) {
      const T *row = w + r * ld;
      T lo = T(0), hi = T(0);  // the range always includes 0
      for (int64_t c = c0; c < c1; ++c) {
        lo = std::min(lo, row[c]);
        hi = std::max(hi, row[c]);
      }
      if (sym) {
        hi = std::max(-lo, hi);
        if (lo < T(0)) lo = -hi;  // a row with no negative weight keeps lo = 0
      }
      if (lo == T(0) && hi == T(0)) {
        lo = T(-1);
        hi = T(1);
      }
      // A range so small that its scale would underflow float (denormal
      // weights) cannot be stored as an fp16 scale anyway: quantize such a
      // group like an all-zero one, to code = zero, i.e. to exactly 0.
      if ((hi - lo) / maxq < kSmallestScale) {
        lo = T(-1);
        hi = T(1);
      }
      const T sym_zero = (maxq + T(1)) / T(2);
      T s = (hi - lo) / maxq;
      T z = sym ? sym_zero : std::rint(-lo / s);
      if (mse) {
        double best = INFINITY;
        for (int i = 0; i < shrink_steps; ++i) {
          const T p = static_cast<T>(1.0 - static_cast<double>(i) / grid);
          const T lo1 = p * lo, hi1 = p * hi;
          const T s1 = (hi1 - lo1) / maxq;
          if (s1 < kSmallestScale) break;  // shrinking further only gets smaller
          const T z1 = sym ? sym_zero : std::rint(-lo1 / s1);
          double err = 0.0;
          for (int64_t c = c0; c < c1; ++c) {
            const T deq = s1 * (code(row[c], s1, z1) - z1);
            err += static_cast<double>(std::pow(std::abs(deq - row[c]), norm));
          }
          if (err < best) {
            best = err;
            s = s1;
            z = z1;
          }
        }
      }
      scale[r] = s;
      zero[r] = z;
    }
  }
};

}  // namespace gptq::cpu
