// The scale search of zero-form GGUF blocks (Q4_0, Q5_0, Q8_0) with its
// candidates' sums in SIMD lanes (cpu/block_scale_search.h), run once per
// instruction-set level (tests/meson.build):
//  - the lane sums equal the scalar Quantizer's loops bit for bit, for
//    candidates of every sign and size, ties at half a code included;
//  - the search picks, bit for bit, the scale of the plain search it
//    replaced: every candidate in order, each a scalar loop, repeats and
//    refits found by scanning lists (written out below as the reference);
//  - so does Q6_K's sub-block fit (SuperBlockRule::fit_signed), which runs
//    its candidates through the same lanes;
//  - the same for the min-form blocks: Q4_1 and Q5_1 (search_block_min)
//    and the Q4_K/Q5_K sub-block fit (SuperBlockRule::fit_min).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "block_scale_search.h"
#include "group_params.h"
#include "half.h"
#include "super_block_params.h"

namespace {

using gptq::cpu::Quantizer;
using gptq::cpu::ZeroFormBlock;

template <typename T>
T as_half(T v) {
  return static_cast<T>(gptq::half_to_float(gptq::float_to_half(static_cast<float>(v))));
}

template <typename T>
Quantizer<T> quantizer_for(gptq_grid grid, int bits) {
  gptq_config c;
  gptq_config_default(&c);
  c.grid = grid;
  c.bits = bits;
  return Quantizer<T>::from_config(c);
}

template <typename T>
bool same_bits(T a, T b) {
  return std::memcmp(&a, &b, sizeof a) == 0;
}

// Weights of a block, with some exactly on half-codes of `d` (ties).
template <typename T>
std::vector<T> block_weights(std::mt19937 &rng, int64_t len, T d) {
  std::normal_distribution<double> normal(0.0, 0.05);
  std::vector<T> w(static_cast<size_t>(len));
  for (int64_t c = 0; c < len; ++c)
    w[c] = c % 5 == 0 ? static_cast<T>(d * (static_cast<T>(rng() % 17) - T(8.5)))
                      : static_cast<T>(normal(rng));
  return w;
}

template <typename T>
void lane_sums_equal_scalar_loops() {
  std::mt19937 rng(7);
  for (const auto &[grid, bits] :
       {std::pair{GPTQ_GRID_Q4_0, 4}, std::pair{GPTQ_GRID_Q5_0, 5}, std::pair{GPTQ_GRID_Q8_0, 8}}) {
    const Quantizer<T> q = quantizer_for<T>(grid, bits);
    const T z = static_cast<T>(q.gguf->zero);
    for (int64_t len : {32, 16, 3}) {
      for (int trial = 0; trial < 50; ++trial) {
        const std::vector<T> w = block_weights<T>(rng, len, T(0.01));
        std::vector<T> h(static_cast<size_t>(len));
        for (auto &v : h) v = rng() % 7 == 0 ? T(0) : static_cast<T>((rng() % 1000) / 100.0 + 0.01);
        // Candidates of both signs, tiny to huge, one of them the tie scale;
        // an odd count leaves partial lane groups at every width.
        std::vector<T> d;
        for (int i = 0; i < 37; ++i) {
          const double mag = std::ldexp(1.0 + (rng() % 1024) / 1024.0, static_cast<int>(rng() % 30) - 24);
          d.push_back(as_half(static_cast<T>(i % 3 == 0 ? -mag : mag)));
        }
        d.push_back(T(0.01));
        const ZeroFormBlock<T> b{w.data(), h.data(), len, z, q.maxq};
        std::vector<T> err(d.size()), num(d.size()), den(d.size());
        gptq::cpu::block_errors(b, d.data(), static_cast<int>(d.size()), err.data());
        gptq::cpu::block_refit_sums(b, d.data(), static_cast<int>(d.size()), num.data(), den.data());
        for (size_t i = 0; i < d.size(); ++i) {
          const T want = q.block_error(w.data(), h.data(), 0, len, d[i], z);
          T n = T(0), m = T(0);
          for (int64_t c = 0; c < len; ++c) {
            const T s = q.block_code(w[c], d[i], z) - z;
            n += h[c] * w[c] * s;
            m += h[c] * s * s;
          }
          ASSERT_TRUE(same_bits(err[i], want)) << "grid " << grid << " d " << d[i] << ": " << err[i] << " vs " << want;
          ASSERT_TRUE(same_bits(num[i], n)) << "grid " << grid << " d " << d[i];
          ASSERT_TRUE(same_bits(den[i], m)) << "grid " << grid << " d " << d[i];
        }
      }
    }
  }
}

TEST(BlockScaleSearch, LaneSumsEqualTheScalarLoopsFloat) { lane_sums_equal_scalar_loops<float>(); }
TEST(BlockScaleSearch, LaneSumsEqualTheScalarLoopsDouble) { lane_sums_equal_scalar_loops<double>(); }

// The search as it was written before its sums went into lanes: candidates
// top / (divisor + k/10), k = 0, 1..20, −1..−20, each with its refit and the
// refit's refit, evaluated in that order after the rule's d, repeats
// skipped, the first of the smallest error kept.
template <typename T>
T plain_search(const Quantizer<T> &q, const T *row, const T *h, int64_t len, T top, T z) {
  const T rule = as_half(top / static_cast<T>(q.gguf->divisor));
  T best = rule, best_err = q.block_error(row, h, 0, len, rule, z);
  const auto refit = [&](T d) {
    T num = T(0), den = T(0);
    for (int64_t c = 0; c < len; ++c) {
      const T s = q.block_code(row[c], d, z) - z;
      num += h[c] * row[c] * s;
      den += h[c] * s * s;
    }
    return den > T(0) ? as_half(num / den) : T(0);
  };
  std::vector<T> seen = {rule};
  for (int step = 0; step < 41; ++step) {
    const int k = step == 0 ? 0 : (step <= 20 ? step : 20 - step);
    const T d0 = as_half(top / (static_cast<T>(q.gguf->divisor) + static_cast<T>(k) / T(10)));
    if (d0 == T(0) || !std::isfinite(d0)) continue;
    const T d1 = refit(d0);
    const T d2 = d1 != T(0) && std::isfinite(d1) ? refit(d1) : T(0);
    for (const T d : {d0, d1, d2}) {
      if (d == T(0) || !std::isfinite(d)) continue;
      bool repeat = false;
      for (const T s : seen) repeat = repeat || s == d;
      if (repeat) continue;
      seen.push_back(d);
      const T err = q.block_error(row, h, 0, len, d, z);
      if (err < best_err) {
        best_err = err;
        best = d;
      }
    }
  }
  return best;
}

template <typename T>
void search_matches_plain_search() {
  std::mt19937 rng(11);
  int blocks = 0;
  for (const auto &[grid, bits] :
       {std::pair{GPTQ_GRID_Q4_0, 4}, std::pair{GPTQ_GRID_Q5_0, 5}, std::pair{GPTQ_GRID_Q8_0, 8}}) {
    const Quantizer<T> q = quantizer_for<T>(grid, bits);
    for (int trial = 0; trial < 300; ++trial, ++blocks) {
      const int64_t len = 32;
      const T scale = static_cast<T>(std::ldexp(1.0, static_cast<int>(rng() % 12) - 10));
      std::vector<T> w = block_weights<T>(rng, len, scale / T(8));
      for (auto &v : w) v *= scale / T(0.05);
      if (trial % 50 == 0) std::fill(w.begin(), w.end(), w[0]);  // one value
      std::vector<T> h(static_cast<size_t>(len));
      for (auto &v : h) v = trial % 3 == 0 ? T(1) : static_cast<T>((rng() % 1000) / 100.0 + 0.01);
      T scale_out = 0, zero_out = 0;
      q.find_block_params(w.data(), 0, len, &scale_out, &zero_out, h.data());
      T amax = 0, signed_max = 0;
      for (const T v : w)
        if (std::abs(v) > amax) {
          amax = std::abs(v);
          signed_max = v;
        }
      if (amax == T(0)) continue;
      const T top = q.gguf->rule == gptq::BlockRule::kSignedMax ? signed_max : amax;
      const T want = plain_search(q, w.data(), h.data(), len, top, static_cast<T>(q.gguf->zero));
      ASSERT_TRUE(same_bits(scale_out, want))
          << "grid " << grid << " trial " << trial << ": " << scale_out << " vs " << want;
    }
  }
  EXPECT_EQ(blocks, 900);
}

TEST(BlockScaleSearch, PicksWhatThePlainSearchPicksFloat) { search_matches_plain_search<float>(); }
TEST(BlockScaleSearch, PicksWhatThePlainSearchPicksDouble) { search_matches_plain_search<double>(); }

// v at columns at.. of a longer row, the rest of it values no fit may read.
template <typename T>
std::vector<T> padded(const std::vector<T> &v, int64_t at) {
  std::vector<T> row(v.size() + at + 16, std::numeric_limits<T>::quiet_NaN());
  std::copy(v.begin(), v.end(), row.begin() + at);
  return row;
}

// Q6_K's sub-block fit as it was written before its sums went into lanes.
template <typename T>
T plain_fit_signed(const gptq::cpu::SuperBlockRule<T> &rule, const T *row, const T *h,
                   int64_t len) {
  T amax = T(0), top = T(0);
  for (int64_t c = 0; c < len; ++c)
    if (std::abs(row[c]) > amax) {
      amax = std::abs(row[c]);
      top = row[c];
    }
  if (amax == T(0)) return T(0);
  const T z = rule.zero(), div = static_cast<T>(rule.f->divisor);
  T best_s = top / div, best = rule.error(row, h, 0, len, best_s, z);
  const auto refit = [&](T s) {
    T num = T(0), den = T(0);
    for (int64_t c = 0; c < len; ++c) {
      const T q = rule.code(row[c], s, z) - z;
      num += rule.weight(h, c) * row[c] * q;
      den += rule.weight(h, c) * q * q;
    }
    return den > T(0) ? num / den : T(0);
  };
  for (int step = 0; step < 41; ++step) {
    const int k = step == 0 ? 0 : (step <= 20 ? step : 20 - step);
    const T s0 = top / (div + static_cast<T>(k) / T(10));
    const T s1 = refit(s0);
    const T s2 = s1 != T(0) && std::isfinite(s1) ? refit(s1) : T(0);
    for (const T s : {s0, s1, s2}) {
      if (s == T(0) || !std::isfinite(s)) continue;
      const T err = rule.error(row, h, 0, len, s, z);
      if (err < best) {
        best = err;
        best_s = s;
      }
    }
  }
  return best_s;
}

template <typename T>
void fit_signed_matches_plain_fit() {
  std::mt19937 rng(13);
  const gptq::cpu::SuperBlockRule<T> rule{gptq::gguf_grid(GPTQ_GRID_Q6_K), T(63)};
  const int64_t len = rule.f->group;
  for (int trial = 0; trial < 600; ++trial) {
    const T scale = static_cast<T>(std::ldexp(1.0, static_cast<int>(rng() % 12) - 10));
    std::vector<T> w = block_weights<T>(rng, len, scale / T(32));
    for (auto &v : w) v *= scale / T(0.05);
    if (trial % 50 == 0) std::fill(w.begin(), w.end(), w[0]);
    std::vector<T> h(static_cast<size_t>(len));
    for (auto &v : h) v = static_cast<T>((rng() % 1000) / 100.0 + 0.01);
    const T *hp = trial % 2 == 0 ? nullptr : h.data();  // no Hessian: weights of 1
    // The sub-block at columns 48.. of a longer row, as a super-block has it.
    const std::vector<T> row = padded(w, 48), hrow = padded(h, 48);
    const T got = rule.fit_signed(row.data(), hp != nullptr ? hrow.data() : nullptr, 48, 48 + len);
    const T want = plain_fit_signed(rule, w.data(), hp, len);
    ASSERT_TRUE(same_bits(got, want)) << "trial " << trial << ": " << got << " vs " << want;
  }
}

TEST(BlockScaleSearch, Q6KFitPicksWhatThePlainFitPicksFloat) { fit_signed_matches_plain_fit<float>(); }
TEST(BlockScaleSearch, Q6KFitPicksWhatThePlainFitPicksDouble) { fit_signed_matches_plain_fit<double>(); }

// The min-form searches as they were written before their sums went into
// lanes (search_block_min, fit_min).
template <typename T>
void plain_search_min(const Quantizer<T> &q, const T *row, const T *h, int64_t len, T lo, T hi,
                      T *d_best, T *m_best) {
  T best_err = q.block_error(row, h, 0, len, *d_best, *m_best);
  const auto consider = [&](T d, T m) {
    if (!(d > T(0)) || !std::isfinite(d) || !std::isfinite(m)) return;
    const T err = q.block_error(row, h, 0, len, d, m);
    if (err < best_err) {
      best_err = err;
      *d_best = d;
      *m_best = m;
    }
  };
  const T m0 = as_half(lo);
  for (int k = -9; k <= 9; ++k) {
    if (k == 0) continue;
    const T d0 = as_half((hi - lo) / (q.maxq + static_cast<T>(k) / T(10)));
    consider(d0, m0);
    T sh = 0, sq = 0, sqq = 0, sw = 0, sqw = 0;
    for (int64_t c = 0; c < len; ++c) {
      const T code = d0 > T(0) ? q.block_code(row[c], d0, m0) : T(0);
      sh += h[c];
      sq += h[c] * code;
      sqq += h[c] * code * code;
      sw += h[c] * row[c];
      sqw += h[c] * code * row[c];
    }
    const T det = sh * sqq - sq * sq;
    if (det > T(0))
      consider(as_half((sh * sqw - sq * sw) / det), as_half((sqq * sw - sq * sqw) / det));
  }
}

template <typename T>
void plain_fit_min(const gptq::cpu::SuperBlockRule<T> &rule, const T *row, const T *h,
                   int64_t len, T *s_best, T *m_best) {
  T lo = T(0), hi = row[0];
  for (int64_t c = 0; c < len; ++c) {
    lo = std::min(lo, row[c]);
    hi = std::max(hi, row[c]);
  }
  *s_best = hi > lo ? (hi - lo) / rule.maxq : T(0);
  *m_best = -lo;
  if (!(hi > lo)) return;
  T best = rule.error(row, h, 0, len, *s_best, lo);
  const auto consider = [&](T s, T m) {
    if (!(s > T(0)) || !std::isfinite(s) || !std::isfinite(m) || m < T(0)) return;
    const T err = rule.error(row, h, 0, len, s, -m);
    if (err < best) {
      best = err;
      *s_best = s;
      *m_best = m;
    }
  };
  for (int step = 0; step < 19; ++step) {
    const int k = step == 0 ? 0 : (step <= 9 ? step : 9 - step);
    const T s0 = (hi - lo) / (rule.maxq + static_cast<T>(k) / T(10));
    if (step > 0) consider(s0, -lo);
    T sh = 0, sq = 0, sqq = 0, sw = 0, sqw = 0;
    for (int64_t c = 0; c < len; ++c) {
      const T hc = rule.weight(h, c), code = rule.code(row[c], s0, lo);
      sh += hc;
      sq += hc * code;
      sqq += hc * code * code;
      sw += hc * row[c];
      sqw += hc * code * row[c];
    }
    const T det = sh * sqq - sq * sq;
    if (!(det > T(0))) continue;
    const T s1 = (sh * sqw - sq * sw) / det, z1 = (sqq * sw - sq * sqw) / det;
    if (z1 <= T(0))
      consider(s1, -z1);
    else if (sqq > T(0))
      consider(sqw / sqq, T(0));
  }
}

// Min-form blocks: weights shifted off zero at times (all positive, all
// negative), a block of one value, Hessian weights of 1 and random ones.
template <typename T>
std::vector<T> min_block_weights(std::mt19937 &rng, int64_t len, int trial) {
  const T scale = static_cast<T>(std::ldexp(1.0, static_cast<int>(rng() % 12) - 10));
  std::vector<T> w = block_weights<T>(rng, len, scale / T(16));
  const T shift = trial % 3 == 0 ? T(0) : static_cast<T>((trial % 3 == 1 ? 1 : -1) * 0.04);
  for (auto &v : w) v = (v + shift) * scale / T(0.05);
  if (trial % 50 == 0) std::fill(w.begin(), w.end(), w[0]);
  return w;
}

template <typename T>
void min_searches_match_plain_searches() {
  std::mt19937 rng(17);
  for (const auto &[grid, bits] : {std::pair{GPTQ_GRID_Q4_1, 4}, std::pair{GPTQ_GRID_Q5_1, 5}}) {
    const Quantizer<T> q = quantizer_for<T>(grid, bits);
    const int64_t len = 32;
    for (int trial = 0; trial < 300; ++trial) {
      const std::vector<T> w = min_block_weights<T>(rng, len, trial);
      std::vector<T> h(static_cast<size_t>(len));
      for (auto &v : h) v = trial % 4 == 0 ? T(1) : static_cast<T>((rng() % 1000) / 100.0 + 0.01);
      T d = 0, m = 0;
      q.find_block_params(w.data(), 0, len, &d, &m, h.data());
      // The rule's pair, then the plain search from it.
      T lo = w[0], hi = w[0];
      for (const T v : w) {
        lo = std::min(lo, v);
        hi = std::max(hi, v);
      }
      T want_d = as_half((hi - lo) / q.maxq), want_m = as_half(lo);
      if (hi > lo) plain_search_min(q, w.data(), h.data(), len, lo, hi, &want_d, &want_m);
      ASSERT_TRUE(same_bits(d, want_d)) << "grid " << grid << " trial " << trial;
      ASSERT_TRUE(same_bits(m, want_m)) << "grid " << grid << " trial " << trial;
    }
  }
  for (const auto &[grid, maxq] : {std::pair{GPTQ_GRID_Q4_K, 15}, std::pair{GPTQ_GRID_Q5_K, 31}}) {
    const gptq::cpu::SuperBlockRule<T> rule{gptq::gguf_grid(grid), static_cast<T>(maxq)};
    const int64_t len = rule.f->group;
    for (int trial = 0; trial < 300; ++trial) {
      const std::vector<T> w = min_block_weights<T>(rng, len, trial);
      std::vector<T> h(static_cast<size_t>(len));
      for (auto &v : h) v = static_cast<T>((rng() % 1000) / 100.0 + 0.01);
      const T *hp = trial % 2 == 0 ? nullptr : h.data();
      const std::vector<T> row = padded(w, 48), hrow = padded(h, 48);
      T s = 0, m = 0, want_s = 0, want_m = 0;
      rule.fit_min(row.data(), hp != nullptr ? hrow.data() : nullptr, 48, 48 + len, &s, &m);
      plain_fit_min(rule, w.data(), hp, len, &want_s, &want_m);
      ASSERT_TRUE(same_bits(s, want_s)) << "grid " << grid << " trial " << trial;
      ASSERT_TRUE(same_bits(m, want_m)) << "grid " << grid << " trial " << trial;
    }
  }
}

TEST(BlockScaleSearch, MinFormSearchesPickWhatThePlainOnesPickFloat) {
  min_searches_match_plain_searches<float>();
}
TEST(BlockScaleSearch, MinFormSearchesPickWhatThePlainOnesPickDouble) {
  min_searches_match_plain_searches<double>();
}

}  // namespace
