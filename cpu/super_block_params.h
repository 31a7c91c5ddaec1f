// K-quants' two-level parameters (Q4_K, Q5_K, Q6_K): a super-block's fp16
// d (and dmin), fixed when the super-block starts, and each sub-block's
// integer scale (and min) on d's grid, fixed when the sub-block starts.
//
// Why two moments: the format stores one d per 256 columns that scales the
// small integer scales of its sub-blocks, so d must be known before the
// super-block's first column is quantized, while GPTQ's error feedback
// keeps changing the weights of its later sub-blocks. d is chosen as the
// format's own rule chooses it (llama.cpp's quantize_row_q*_K_ref: the
// largest sub-block scale over 63, or the scale of largest magnitude over
// −128 for Q6_K's int8 scales), from the whole super-block's error-updated
// weights at its start. Each sub-block then fits its own scale (and min)
// to its error-updated weights when it starts, as a group does, and takes
// the integer scale (and min) on d's grid that gives its weights the least
// Hessian-weighted error, so that what the feedback moved is still
// represented as well as d allows.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "block_scale_search.h"
#include "gguf_grid.h"
#include "half.h"

namespace gptq::cpu {

// Where a solve keeps the K-quants' parameters: d and dmin [S, N] (S
// super-blocks), the integer sub-block scales and mins [G, N]; size is the
// super-block's width, 0 for the other grids.
template <typename T>
struct SuperParams {
  int64_t size = 0;
  T *d = nullptr, *dmin = nullptr, *sc = nullptr, *mc = nullptr;
};

template <typename T>
struct SuperBlockRule {
  const GgufGrid *f;
  T maxq;  // 2^bits − 1

  bool min_form() const { return f->rule == BlockRule::kSuperMin; }
  T zero() const { return static_cast<T>(f->zero); }

  static T to_half(T v) {
    return static_cast<T>(half_to_float(float_to_half(static_cast<float>(v))));
  }
  static T weight(const T *h, int64_t c) { return h != nullptr ? h[c] : T(1); }

  // The code of w in a sub-block of effective scale s and zero z (z =
  // −dmin·m for Q4_K and Q5_K, value s·q + z; z = 32 for Q6_K, value
  // s·(q − z)): round to nearest even, clamped; s = 0 gives the code of the
  // sub-block's one value.
  T code(T w, T s, T z) const {
    if (s == T(0)) return min_form() ? T(0) : z;
    T q = min_form() ? std::rint((w - z) / s) : std::rint(w / s) + z;
    q = q > T(0) ? q : T(0);
    return q < maxq ? q : maxq;
  }
  T value(T q, T s, T z) const { return min_form() ? s * q + z : s * (q - z); }

  // Σ h·(w − value)² over columns [c0, c1).
  T error(const T *row, const T *h, int64_t c0, int64_t c1, T s, T z) const {
    T err = T(0);
    for (int64_t c = c0; c < c1; ++c) {
      const T e = row[c] - value(code(row[c], s, z), s, z);
      err += weight(h, c) * e * e;
    }
    return err;
  }

  // Q4_K and Q5_K: a sub-block's own scale s >= 0 and min m >= 0 (value
  // s·q − m; the format subtracts mins, so the range always includes 0,
  // as llama.cpp's make_qkx2_quants keeps it). Candidates: the range
  // [min(lo, 0), hi] over maxq + k/10 steps, k = −9..9 (k = 0 the plain
  // rule, first), each also refitted by weighted least squares to its codes
  // (w ≈ s·q − m; m < 0 refitted with m = 0); the least Σ h·(w − value)²
  // wins, the earlier on ties. (The wider search of the zero-form blocks,
  // k = −20..20 with a second refit, gave a larger layer error here.)
  void fit_min(const T *row, const T *h, int64_t c0, int64_t c1, T *s_best, T *m_best) const {
    T lo = T(0), hi = row[c0];
    for (int64_t c = c0; c < c1; ++c) {
      lo = std::min(lo, row[c]);
      hi = std::max(hi, row[c]);
    }
    *s_best = hi > lo ? (hi - lo) / maxq : T(0);
    *m_best = -lo;
    if (!(hi > lo)) return;
    // No Hessian: every column weighs 1.
    std::vector<T> ones;
    if (h == nullptr) ones.assign(static_cast<size_t>(c1 - c0), T(1));
    const MinFormBlock<T> block{row + c0, h != nullptr ? h + c0 : ones.data(), c1 - c0, maxq};
    // Steps k = 0, 1..9, −1..−9: s0 over the range, with the least-squares
    // fit to its codes. An s0 of 0 or beyond float gives every code 0, so
    // no fit and no candidate.
    constexpr int kSteps = 19;
    T s0[kSteps], z0[kSteps], sh[kSteps], sq[kSteps], sqq[kSteps], sw[kSteps], sqw[kSteps];
    int step_of[kSteps], n_fit = 0;
    for (int step = 0; step < kSteps; ++step) {
      const int k = step == 0 ? 0 : (step <= 9 ? step : 9 - step);  // 0, 1..9, −1..−9
      const T s = (hi - lo) / (maxq + static_cast<T>(k) / T(10));
      if (!(s > T(0)) || !std::isfinite(s)) continue;
      s0[n_fit] = s;
      z0[n_fit] = lo;
      step_of[n_fit++] = step;
    }
    min_block_fit_sums(block, s0, z0, n_fit, FitSums<T>{sh, sq, sqq, sw, sqw});
    // The candidates (s, m ≥ 0; value s·q − m) in the plain search's order:
    // per step s0 (but the rule's, already the best), then the fit.
    T s[2 * kSteps], z[2 * kSteps], err[2 * kSteps];
    int n = 0;
    const auto add = [&](T si, T mi) {
      if (!(si > T(0)) || !std::isfinite(si) || !std::isfinite(mi) || mi < T(0)) return;
      s[n] = si;
      z[n++] = -mi;
    };
    for (int i = 0; i < n_fit; ++i) {
      if (step_of[i] > 0) add(s0[i], -lo);
      const T det = sh[i] * sqq[i] - sq[i] * sq[i];
      if (!(det > T(0))) continue;
      const T s1 = (sh[i] * sqw[i] - sq[i] * sw[i]) / det, z1 = (sqq[i] * sw[i] - sq[i] * sqw[i]) / det;
      if (z1 <= T(0))
        add(s1, -z1);
      else if (sqq[i] > T(0))
        add(sqw[i] / sqq[i], T(0));  // a positive min cannot be stored: refit with 0
    }
    min_block_errors(block, s, z, n, err);
    T best = error(row, h, c0, c1, *s_best, lo);
    for (int i = 0; i < n; ++i)
      if (err[i] < best) {
        best = err[i];
        *s_best = s[i];
        *m_best = -z[i];
      }
  }

  // Q6_K: a sub-block's own signed scale (value s·(q − 32)), searched as
  // Q4_0's blocks are (group_params.h, search_block_scale): the weight of
  // largest magnitude, sign kept, over divisor + k/10 (divisor −32, k =
  // −20..20, the plain rule first), each also refitted by weighted least
  // squares to its codes (s = Σ h·w·q / Σ h·q², q the signed code) and that
  // refitted once more; the least Σ h·(w − value)² wins, the earlier on
  // ties. The candidates' sums run in SIMD lanes (block_scale_search.h),
  // each lane the scalar code's arithmetic: the choice is the same bits.
  T fit_signed(const T *row, const T *h, int64_t c0, int64_t c1) const {
    T amax = T(0), top = T(0);
    for (int64_t c = c0; c < c1; ++c)
      if (std::abs(row[c]) > amax) {
        amax = std::abs(row[c]);
        top = row[c];
      }
    if (amax == T(0)) return T(0);
    // No Hessian: every column weighs 1.
    std::vector<T> ones;
    if (h == nullptr) ones.assign(static_cast<size_t>(c1 - c0), T(1));
    const ZeroFormBlock<T> block{row + c0, h != nullptr ? h + c0 : ones.data(), c1 - c0, zero(),
                                 maxq};
    const auto usable = [](T s) { return s != T(0) && std::isfinite(s); };
    const T div = static_cast<T>(f->divisor);
    T best_s = top / div, best = error(row, h, c0, c1, best_s, zero());
    // Per step k: s0 = top / (divisor + k/10), its refit s1 and s1's refit
    // s2 (a refit of an unusable scale is 0: no code is away from z).
    constexpr int kSteps = 41;
    T s0[kSteps], s1[kSteps], s2[kSteps], num[kSteps], den[kSteps];
    const auto refits = [&](const T *from, T *to) {
      T todo[kSteps];
      int at[kSteps], n = 0;
      for (int i = 0; i < kSteps; ++i) {
        to[i] = T(0);
        if (usable(from[i])) {
          todo[n] = from[i];
          at[n++] = i;
        }
      }
      block_refit_sums(block, todo, n, num, den);
      for (int j = 0; j < n; ++j) to[at[j]] = den[j] > T(0) ? num[j] / den[j] : T(0);
    };
    for (int step = 0; step < kSteps; ++step) {
      const int k = step == 0 ? 0 : (step <= 20 ? step : 20 - step);  // 0, 1..20, −1..−20
      s0[step] = top / (div + static_cast<T>(k) / T(10));
    }
    refits(s0, s1);
    refits(s1, s2);
    T order[3 * kSteps], err[3 * kSteps];
    int n_order = 0;
    for (int step = 0; step < kSteps; ++step)
      for (const T s : {s0[step], s1[step], s2[step]})
        if (usable(s)) order[n_order++] = s;
    block_errors(block, order, n_order, err);
    for (int i = 0; i < n_order; ++i)
      if (err[i] < best) {
        best = err[i];
        best_s = order[i];
      }
    return best_s;
  }

  // The super-block [c0, c1) (f->group columns a sub-block) from its
  // weights as they stand: d = the largest sub-block scale / 63 and dmin =
  // the largest min / 63 (Q4_K, Q5_K), or d = the sub-block scale of
  // largest magnitude / −128 (Q6_K, dmin 0), rounded to fp16 as stored.
  void find_super(const T *row, const T *h, int64_t c0, int64_t c1, T *d, T *dmin) const {
    T max_s = T(0), max_m = T(0);
    for (int64_t s0 = c0; s0 < c1; s0 += f->group) {
      const int64_t s1 = std::min(c1, s0 + f->group);
      if (min_form()) {
        T s, m;
        fit_min(row, h, s0, s1, &s, &m);
        max_s = std::max(max_s, s);
        max_m = std::max(max_m, m);
      } else {
        const T s = fit_signed(row, h, s0, s1);
        if (std::abs(s) > std::abs(max_s)) max_s = s;
      }
    }
    *d = to_half(min_form() ? max_s / T(63) : max_s / T(-128));
    *dmin = min_form() ? to_half(max_m / T(63)) : T(0);
  }

  // The sub-block [c0, c1) with the super-block's d and dmin fixed: its own
  // fit (fit_min, fit_signed) rounded on d's grid, sc = rint(s/d) (and
  // m = rint(m/dmin)), clamped to 0..63 (−128..127 for Q6_K's int8), then
  // the neighbours sc ± 1 and m ± 1 (sc ± 1, ± 2 for Q6_K) tried: the
  // integers of least Σ h·(w − value)² win, the rounded ones on ties.
  // scale and zero are what the codes then use: d·sc and −dmin·m, or d·sc
  // and 32.
  void find_sub(const T *row, const T *h, int64_t c0, int64_t c1, T d, T dmin, T *sc, T *mc,
                T *scale, T *zero_out) const {
    const T lo_sc = min_form() ? T(0) : T(-128), hi_sc = min_form() ? T(63) : T(127);
    const auto clamp = [](T v, T lo, T hi) { return std::min(std::max(v, lo), hi); };
    T s, m = T(0);
    if (min_form())
      fit_min(row, h, c0, c1, &s, &m);
    else
      s = fit_signed(row, h, c0, c1);
    const T sc0 = d != T(0) ? clamp(std::rint(s / d), lo_sc, hi_sc) : T(0);
    const T mc0 = min_form() && dmin > T(0) ? clamp(std::rint(m / dmin), T(0), T(63)) : T(0);
    const auto zero_of = [&](T mi) { return min_form() ? -(dmin * mi) : zero(); };
    T best_sc = sc0, best_mc = mc0;
    T best = error(row, h, c0, c1, d * sc0, zero_of(mc0));
    const int reach_sc = min_form() ? 1 : 2, reach_mc = min_form() && dmin > T(0) ? 1 : 0;
    if (d != T(0))
      for (int i = -reach_sc; i <= reach_sc; ++i)
        for (int j = -reach_mc; j <= reach_mc; ++j) {
          if (i == 0 && j == 0) continue;
          const T si = sc0 + static_cast<T>(i), mj = mc0 + static_cast<T>(j);
          if (si < lo_sc || si > hi_sc || mj < T(0) || mj > T(63)) continue;
          const T err = error(row, h, c0, c1, d * si, zero_of(mj));
          if (err < best) {
            best = err;
            best_sc = si;
            best_mc = mj;
          }
        }
    *sc = best_sc;
    *mc = best_mc;
    *scale = d * best_sc;
    *zero_out = zero_of(best_mc);
  }
};

}  // namespace gptq::cpu
