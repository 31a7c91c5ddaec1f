// Per-row scale and zero of one quantization group, and rounding a weight to
// its integer code: the reference GPTQ quantizer, including its MSE clip
// search and its treatment of symmetric rows with no negative weights.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "block_scale_search.h"
#include "gguf_grid.h"
#include "gptq.h"
#include "half.h"

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
  // A GGUF block format's grid (gguf_grid.h), or null for GPTQ's own. Its
  // blocks keep the parameters in scale and zero as: d and the code of 0
  // for kSignedMax and kAbsMax, d and m for kMinMax; a K-quant's sub-block
  // its effective scale and zero (super_block_params.h).
  const GgufGrid *gguf;

  static Quantizer from_config(const gptq_config &c) {
    Quantizer q;
    q.gguf = gguf_grid(c.grid);
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

  bool min_form() const { return gguf != nullptr && gguf->has_min(); }

  // A GGUF block's code: round to nearest even, clamped; NaN-safe (a d or m
  // beyond fp16 is caught when the parameters are stored). d = 0 gives the
  // code of the block's one value.
  T block_code(T w, T d, T z) const {
    const bool min = gguf->has_min();
    if (d == T(0)) return min ? T(0) : z;
    T q = min ? std::rint((w - z) / d) : std::rint(w / d) + z;
    q = q > T(0) ? q : T(0);
    return q < maxq ? q : maxq;
  }

  // The weight a GGUF block's code stands for, computed as llama.cpp's
  // dequantization does (q·d + m, or (q − zero)·d).
  T block_value(T code, T d, T z) const {
    return gguf->has_min() ? d * code + z : d * (code - z);
  }

  // Σ h·(w − value)² over the block with scale d (zero-form blocks).
  T block_error(const T *row, const T *h, int64_t c0, int64_t c1, T d, T z) const {
    T err = T(0);
    for (int64_t c = c0; c < c1; ++c) {
      const T e = row[c] - block_value(block_code(row[c], d, z), d, z);
      err += h[c] * e * e;
    }
    return err;
  }

  // Zero-form blocks (Q4_0, Q5_0, Q8_0) with Hessian-diagonal weights h:
  // the format's rule gives d0 = top / divisor; the candidates are
  // top / (divisor + k/10) for k = −20..20 (the rule's d first), each also
  // refitted by weighted least squares to its codes, d = Σ h·w·q / Σ h·q²
  // (q the signed code), and that d refitted once more to its own codes;
  // the one of smallest Σ h·(w − value)² wins, ties to the earlier. All in
  // fp16, as stored. (k = −9..9 with one refit gave SmolLM2 Q4_0 a higher
  // perplexity: bench/RESULTS.md, GGUF export.)
  template <typename ToHalf>
  T search_block_scale(const T *row, const T *h, int64_t c0, int64_t c1, T top, T z,
                       const ToHalf &to_half) const {
    // The candidates' sums run in SIMD lanes, several candidates at once
    // (block_scale_search.h), with each candidate's arithmetic the scalar
    // block_code's: the errors, and so the choice, are the same bits.
    const ZeroFormBlock<T> block{row + c0, h + c0, c1 - c0, z, maxq};
    const auto usable = [](T d) { return d != T(0) && std::isfinite(d); };
    const T rule = to_half(top / static_cast<T>(gguf->divisor));
    constexpr int kSteps = 41;
    T d0[kSteps];
    for (int step = 0; step < kSteps; ++step) {
      const int k = step == 0 ? 0 : (step <= 20 ? step : 20 - step);  // 0, 1..20, −1..−20
      d0[step] = to_half(top / (static_cast<T>(gguf->divisor) + static_cast<T>(k) / T(10)));
    }
    // In fp16 many candidates coincide (neighbouring k round to one value,
    // refits converge): each value is refitted and evaluated once, and a
    // repeat, which cannot win (ties go to the earlier), is left out.
    // Each value refitted so far, with its refit:
    CandidateIndex<T> refitted;
    T refit_value[2 * kSteps];
    int n_refitted = 0;
    // Refits of every usable d0, then of every usable refit not yet refitted.
    const auto refit_all = [&](const T *ds, int count) {
      T todo[kSteps], num[kSteps], den[kSteps];
      int n_todo = 0;
      for (int i = 0; i < count; ++i)
        if (usable(ds[i]) && refitted.insert(ds[i], n_refitted + n_todo)) todo[n_todo++] = ds[i];
      block_refit_sums(block, todo, n_todo, num, den);
      for (int i = 0; i < n_todo; ++i)
        refit_value[n_refitted++] = den[i] > T(0) ? to_half(num[i] / den[i]) : T(0);
    };
    const auto refit = [&](T d) { return refit_value[refitted.find(d)]; };
    refit_all(d0, kSteps);
    T d1[kSteps];
    for (int step = 0; step < kSteps; ++step) d1[step] = usable(d0[step]) ? refit(d0[step]) : T(0);
    refit_all(d1, kSteps);
    // Every usable candidate once, in the order of the plain search: the
    // rule's d, then per step d0, its refit, and that one's refit.
    CandidateIndex<T> listed;
    T order[3 * kSteps + 1];
    int n_order = 0;
    const auto add = [&](T d) {
      if (usable(d) && listed.insert(d, n_order)) order[n_order++] = d;
    };
    add(rule);
    for (int step = 0; step < kSteps; ++step) {
      if (!usable(d0[step])) continue;
      add(d0[step]);
      add(d1[step]);
      if (usable(d1[step])) add(refit(d1[step]));
    }
    T err[3 * kSteps + 1];
    block_errors(block, order, n_order, err);
    // The rule's d competes even when it is 0 (every weight rounds to the
    // code of 0) or not finite; it is first, and wins ties.
    T best = rule, best_err = usable(rule) ? err[0] : block_error(row, h, c0, c1, rule, z);
    for (int i = usable(rule) ? 1 : 0; i < n_order; ++i)
      if (err[i] < best_err) {
        best_err = err[i];
        best = order[i];
      }
    return best;
  }

  // Min blocks (Q4_1, Q5_1) with Hessian-diagonal weights h: the rule's
  // (d, m) and the ranges [lo, lo + (hi − lo)·maxq/(maxq + k/10)], k = −9..9,
  // each also refitted by weighted least squares to its codes (w ≈ q·d + m);
  // the pair of smallest Σ h·(w − value)² wins, the rule's on ties. All in
  // fp16, as stored.
  template <typename ToHalf>
  void search_block_min(const T *row, const T *h, int64_t c0, int64_t c1, T lo, T hi,
                        const ToHalf &to_half, T *d_best, T *m_best) const {
    // The candidates' sums run in SIMD lanes (block_scale_search.h), each
    // lane the scalar code's arithmetic: the choice is the same bits.
    const MinFormBlock<T> block{row + c0, h + c0, c1 - c0, maxq};
    const auto usable = [](T d, T m) { return d > T(0) && std::isfinite(d) && std::isfinite(m); };
    constexpr int kSteps = 18;  // k = −9..9 but 0
    const T m0 = to_half(lo);
    T d0[kSteps], z0[kSteps], sh[kSteps], sq[kSteps], sqq[kSteps], sw[kSteps], sqw[kSteps];
    int n_fit = 0;
    for (int k = -9; k <= 9; ++k) {
      const T d = to_half((hi - lo) / (maxq + static_cast<T>(k) / T(10)));
      // A d0 of 0 or beyond fp16 gives every code 0: no fit, no candidate.
      if (k == 0 || !(d > T(0)) || !std::isfinite(d)) continue;
      d0[n_fit] = d;
      z0[n_fit++] = m0;
    }
    min_block_fit_sums(block, d0, z0, n_fit, FitSums<T>{sh, sq, sqq, sw, sqw});
    // In the order of the plain search: per step (d0, m0), then the
    // least-squares pair of its codes.
    T d[2 * kSteps], m[2 * kSteps], err[2 * kSteps];
    int n = 0;
    const auto add = [&](T di, T mi) {
      if (!usable(di, mi)) return;
      d[n] = di;
      m[n++] = mi;
    };
    for (int i = 0; i < n_fit; ++i) {
      add(d0[i], m0);
      const T det = sh[i] * sqq[i] - sq[i] * sq[i];
      if (det > T(0))
        add(to_half((sh[i] * sqw[i] - sq[i] * sw[i]) / det),
            to_half((sqq[i] * sw[i] - sq[i] * sqw[i]) / det));
    }
    min_block_errors(block, d, m, n, err);
    T best_err = block_error(row, h, c0, c1, *d_best, *m_best);
    for (int i = 0; i < n; ++i)
      if (err[i] < best_err) {
        best_err = err[i];
        *d_best = d[i];
        *m_best = m[i];
      }
  }

  // A GGUF block's parameters by its format's rule, d (and m) rounded to
  // fp16 as the block stores them. With h (the Hessian diagonal, aligned
  // with row), zero-form blocks search d (search_block_scale).
  void find_block_params(const T *row, int64_t c0, int64_t c1, T *scale, T *zero,
                         const T *h = nullptr) const {
    const auto to_half = [](T v) {
      return static_cast<T>(half_to_float(float_to_half(static_cast<float>(v))));
    };
    T d;
    if (gguf->rule == BlockRule::kMinMax) {
      T lo = row[c0], hi = row[c0];
      for (int64_t c = c0; c < c1; ++c) {
        lo = std::min(lo, row[c]);
        hi = std::max(hi, row[c]);
      }
      d = to_half((hi - lo) / maxq);
      *zero = to_half(lo);
      if (h != nullptr && hi > lo) search_block_min(row, h, c0, c1, lo, hi, to_half, &d, zero);
    } else {
      T amax = T(0), signed_max = T(0);
      for (int64_t c = c0; c < c1; ++c)
        if (std::abs(row[c]) > amax) {
          amax = std::abs(row[c]);
          signed_max = row[c];
        }
      const T top = gguf->rule == BlockRule::kSignedMax ? signed_max : amax;
      *zero = static_cast<T>(gguf->zero);
      d = h != nullptr && amax > T(0) ? search_block_scale(row, h, c0, c1, top, *zero, to_half)
                                      : to_half(top / static_cast<T>(gguf->divisor));
    }
    *scale = d;
  }

  // Scale and zero for each of `rows` rows over columns [c0, c1) of the
  // row-major matrix w with leading dimension ld.
  // h: for GGUF grids, the Hessian diagonal aligned with w's columns
  // (h[c] for column c), or null for the format's plain rule.
  void find_params(const T *w, int64_t rows, int64_t ld, int64_t c0, int64_t c1, T *scale,
                   T *zero, const T *h = nullptr) const {
    if (gguf != nullptr) {
      for (int64_t r = 0; r < rows; ++r)
        find_block_params(w + r * ld, c0, c1, &scale[r], &zero[r], h);
      return;
    }
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
          // Every term is >= 0, so the running sum never falls: once it reaches
          // the best so far this candidate cannot win, and the rest of the
          // group need not be summed (the choice is the same as the full sum's).
          double err = 0.0;
          for (int64_t c = c0; c < c1 && !(err >= best); ++c) {
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
