#include "gptq_solver.h"

#include <algorithm>
#include <chrono>
#include <numeric>
#include <string>

#include "blas.h"
#include "error.h"
#include "gptq_block_kernel.h"
#include "group_params.h"
#include "half.h"
#include "hessian_factor.h"
#include "thread_pool.h"

namespace gptq::cpu {

// How the solver computes the reference algorithm with less arithmetic.
//
// Reversed order. Position p (the p-th column quantized) is stored at index
// K−1−p. With J the reversal and A = J·Hp·J = L·Lᵀ (one Cholesky), V = J·L·J
// is upper triangular with Hp = V·Vᵀ, and GPTQ's U (upper, H⁻¹ = UᵀU) is V⁻¹.
// In reversed indices every block of V below is a plain sub-block of L.
//
// No inverse. GPTQ's errors E satisfy W − Q = E·U, so E = R·V with the
// residual R = W − Q, and the weights of later columns as they stand at the
// start of block [i1, i2) — the only weights the reference ever reads — are
//   W_S + R[:, :i1] · V[:i1, S] · V_SS⁻¹          for S = [i1, s_end)
// (from V·U = I, U upper). The product R[:, :i1]·V[:i1, S] is a sum over
// past blocks, so it is kept for all later columns and grown by one GEMM
// after each block (R_b·V[b, later], right-looking like the reference's
// lazy update). Each block then multiplies its slice by the inverse of
// V's diagonal tile (trmm by the tile it inverts anyway; a triangular solve
// where a group reaches past the block): the same N·K² multiply-adds as the
// reference, with no triangular inverse of the whole K×K factor (a third of
// the factorization work). Inside a block the errors are fed forward
// through U's diagonal tile, the inverse of V's block-sized tile.

namespace {

// Rows per task of the row-parallel work: a multiple of the block kernel's
// 16-row tiles, so that inside a task the kernel prefetches its next tile.
// The loss is summed per tile in row order, so no result depends on the
// number of threads.
constexpr int64_t kRowsPerTask = 64;

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// Columns by descending Hessian diagonal; ties keep their original order so
// that results do not depend on the sort implementation.
template <typename T>
std::vector<int64_t> act_order_permutation(const std::vector<T> &diag) {
  std::vector<int64_t> perm(diag.size());
  std::iota(perm.begin(), perm.end(), 0);
  std::stable_sort(perm.begin(), perm.end(),
                   [&](int64_t a, int64_t b) { return diag[a] > diag[b]; });
  return perm;
}

// Lower triangle (row-major, a[a·K + b] for b <= a) of A = J·Hp·J, Hp =
// H[perm][:, perm] with dead diagonals set to 1 (`diag`):
// A[a][b] = H[rperm[a]][rperm[b]], rperm[c] = perm[K−1−c]. H is read above
// its diagonal only, so `a` may be H's own storage (see hessian_factor.h).
// Tiled so that both the reads (rows of H's upper triangle) and the writes
// stay in cache; strips of tiles run in parallel (with act-order every read
// is its own cache line, too slow for one thread on large K).
template <typename T>
void fill_reversed_hessian(const T *h_upper, int64_t k, const std::vector<int64_t> &rperm,
                           const std::vector<T> &diag, T *a, int threads) {
  constexpr int64_t kTile = 64;
  ThreadPool::instance().parallel_for((k + kTile - 1) / kTile, threads, [&](int64_t strip) {
    const int64_t a0 = strip * kTile, a1 = std::min(k, a0 + kTile);
    for (int64_t b0 = 0; b0 <= a0; b0 += kTile) {
      const int64_t b1 = std::min(k, b0 + kTile);
      for (int64_t ai = a0; ai < a1; ++ai) {
        const int64_t i = rperm[ai];
        T *row = a + ai * k;
        for (int64_t bj = b0; bj < std::min(b1, ai); ++bj) {
          const int64_t j = rperm[bj];
          row[bj] = i < j ? h_upper[i * k + j] : h_upper[j * k + i];
        }
        if (ai < b1) row[ai] = diag[i];
      }
    }
  });
}

}  // namespace

template <typename T>
QTensorData gptq_solve(T *h_upper, LargeBuffer<T> w, int64_t n, int64_t k,
                       const gptq_config &config, const Logger &logger, gptq_quant_stats &stats) {
  const auto start = std::chrono::steady_clock::now();
  const Quantizer<T> quant = Quantizer<T>::from_config(config);
  const bool grouped = config.group_size > 0;
  const int64_t group_size = grouped ? config.group_size : k;
  const bool static_groups = grouped && config.static_groups;
  const int64_t groups = group_count(k, config.group_size);
  std::vector<T> scale(static_cast<size_t>(groups * n));
  std::vector<T> zero(static_cast<size_t>(groups * n));
  ThreadPool &pool = ThreadPool::instance();
  const int threads = config.num_threads;
  const int64_t row_tasks = (n + kRowsPerTask - 1) / kRowsPerTask;
  auto for_row_ranges = [&](const std::function<void(int64_t, int64_t, int64_t)> &body) {
    pool.parallel_for(row_tasks, threads, [&](int64_t t) {
      body(t, t * kRowsPerTask, std::min(n, (t + 1) * kRowsPerTask));
    });
  };

  // One group over all columns: parameters from the weights as given, before
  // dead columns are zeroed (the reference does this first).
  if (!grouped)
    for_row_ranges([&](int64_t, int64_t r0, int64_t r1) {
      quant.find_params(&w[r0 * k], r1 - r0, k, 0, k, &scale[r0], &zero[r0]);
    });

  // Dead inputs (never activated): diag 1 so H stays invertible; weight 0.
  std::vector<T> diag(static_cast<size_t>(k));
  int64_t dead = 0;
  double diag_sum = 0.0;
  for (int64_t j = 0; j < k; ++j) {
    diag[j] = h_upper[j * k + j];
    if (diag[j] == T(0)) {
      diag[j] = T(1);
      for (int64_t r = 0; r < n; ++r) w[r * k + j] = T(0);
      ++dead;
    }
    diag_sum += static_cast<double>(diag[j]);
  }
  if (dead > 0)
    logger.log(GPTQ_LOG_INFO, std::to_string(dead) + " of " + std::to_string(k) +
                                  " input columns are dead (Hessian diagonal 0); their weights "
                                  "are quantized as 0");

  if (static_groups)
    for_row_ranges([&](int64_t, int64_t r0, int64_t r1) {
      for (int64_t g = 0; g < groups; ++g)
        quant.find_params(&w[r0 * k], r1 - r0, k, g * group_size, std::min(k, (g + 1) * group_size),
                          &scale[g * n + r0], &zero[g * n + r0]);
    });

  std::vector<int64_t> perm(static_cast<size_t>(k));
  std::iota(perm.begin(), perm.end(), 0);
  if (config.act_order) perm = act_order_permutation(diag);
  std::vector<int64_t> rperm(static_cast<size_t>(k));
  for (int64_t c = 0; c < k; ++c) rperm[c] = perm[k - 1 - c];

  // Weights into reversed quantization order, row by row.
  for_row_ranges([&](int64_t, int64_t r0, int64_t r1) {
    std::vector<T> tmp(static_cast<size_t>(k));
    for (int64_t r = r0; r < r1; ++r) {
      T *row = &w[r * k];
      for (int64_t c = 0; c < k; ++c) tmp[c] = row[rperm[c]];
      std::copy(tmp.begin(), tmp.end(), row);
    }
  });

  std::vector<int32_t> group_of(static_cast<size_t>(k));
  for (int64_t p = 0; p < k; ++p)
    group_of[p] = static_cast<int32_t>(static_groups ? perm[p] / group_size : p / group_size);

  const auto factor_start = std::chrono::steady_clock::now();
  const HessianFactor<T> factor = hessian_factor<T>(
      h_upper, k, diag_sum / static_cast<double>(k),
      [&](T *a) { fill_reversed_hessian(h_upper, k, rperm, diag, a, threads); },
      config.damp_percent, config.damp_increment, logger);
  const double factor_seconds = seconds_since(factor_start);
  stats.damp_percent_used = factor.damp_percent;
  stats.damp_retries = factor.retries;
  stats.fell_back_to_rtn = factor.ok ? 0 : 1;
  stats.dead_columns = dead;
  const bool feed_errors = factor.ok;
  if (!factor.ok) {
    logger.log(GPTQ_LOG_WARN, "the Hessian could not be factorized even with damp_percent " +
                                  std::to_string(factor.damp_percent) +
                                  "; falling back to round-to-nearest for this layer");
  } else if (factor.retries > 0) {
    logger.log(GPTQ_LOG_WARN, "Cholesky factorization needed damp_percent raised to " +
                                  std::to_string(factor.damp_percent) + " after " +
                                  std::to_string(factor.retries) + " failed attempts");
  }
  const T *l = factor.l();  // row-major [K, K], lower

  QTensorData q;
  q.out_features = n;
  q.in_features = k;
  q.bits = config.bits;
  q.group_size = config.group_size;
  q.groups = groups;
  q.codes.resize(static_cast<size_t>(n * k));

  // Block-start weights are needed for the block and, when a dynamic group
  // starts inside the block, for that whole group: at most block + group
  // columns.
  const int64_t block = std::min<int64_t>(config.block_size, k);
  const int64_t max_span =
      std::min<int64_t>(k, block + (grouped && !static_groups ? group_size : 0));
  std::vector<T> state(static_cast<size_t>(n * max_span));
  std::vector<T> scratch(static_cast<size_t>((n + 15) / 16 * 16 * block));
  std::vector<T> u_tile(static_cast<size_t>(block * block));
  std::vector<T> tile(static_cast<size_t>(block * block));
  // The lazy update accumulated for positions not yet reached (see below),
  // in reversed column order like w: [N, K], filled by the first block's GEMM.
  LargeBuffer<T> pending(feed_errors && k > block ? static_cast<size_t>(n * k) : 0);
  std::vector<T> extended;  // pending's columns of S when S reaches past the block
  std::vector<double> loss_parts(static_cast<size_t>((n + 15) / 16));
  double loss = 0.0, blas_seconds = 0.0;

  BlockArgs<T> args{};
  args.w = w.data();
  args.k = k;
  args.n = n;
  args.state = state.data();
  args.u_tile = u_tile.data();
  args.feed_errors = feed_errors;
  args.group_size = group_size;
  args.dynamic_groups = grouped && !static_groups;
  args.group_of = group_of.data();
  args.scale = scale.data();
  args.zero = zero.data();
  args.quant = quant;
  // Codes block by block ([N, count] per block, at offset i1·N), placed
  // into q.codes's original column order after the loop: written straight
  // into the row-major [N, K] array, every block touched a fresh cache line
  // or two of every row, and the kernel waited on those write misses.
  LargeBuffer<uint8_t> block_codes(static_cast<size_t>(n * k));
  args.scratch = scratch.data();

  const auto loop_start = std::chrono::steady_clock::now();
  for (int64_t i1 = 0; i1 < k; i1 += block) {
    const int64_t i2 = std::min(i1 + block, k);
    const int64_t count = i2 - i1;
    int64_t s_end = i2;
    if (args.dynamic_groups)
      for (int64_t p = (i1 + group_size - 1) / group_size * group_size; p < i2; p += group_size)
        s_end = std::max(s_end, std::min(k, p + group_size));
    const int64_t span = s_end - i1;
    // Reversed indices of S: [k − s_end, k − i1).
    const int64_t c0 = k - s_end;

    if (feed_errors) {
      // U's diagonal tile for the block: V_bb⁻¹ = J·L_bb⁻¹·J with L_bb the
      // block [k−i2, k−i1) of L.
      for (int64_t b = 0; b < count; ++b)
        for (int64_t a = 0; a < count; ++a)
          tile[a + b * count] = a >= b ? l[(k - i2 + a) * k + (k - i2 + b)] : T(0);
      trtri_lower(static_cast<int>(count), tile.data());
      for (int64_t a = 0; a < count; ++a)
        for (int64_t b = a; b < count; ++b)
          u_tile[a * count + b] = tile[(count - 1 - a) + (count - 1 - b) * count];
    }

    // state = W_S (original weights, reversed) + the update below, built
    // row by row by the block kernel.
    const bool updated = feed_errors && i1 > 0;
    T *update = nullptr;
    int64_t update_ld = 0;
    if (updated) {
      const auto blas_start = std::chrono::steady_clock::now();
      // ... + Y_S·V_SS⁻¹ with Y_S = R[:, :i1]·V[:i1, S], pending's columns
      // [c0, k−i1); reversed, V_SS⁻¹ is L_SS⁻¹ for L's diagonal block
      // [c0, k−i1). When S is the block, L_SS⁻¹ is the tile just inverted:
      // multiply by it in place (those columns of pending are not read
      // again); OpenBLAS's trmm runs much faster than its trsm on these
      // shapes, and the reference multiplies by inverses throughout. When
      // S reaches past the block (a group crosses its end), solve with
      // L_SS on a copy: the columns past the block are still accumulating.
      update = &pending[c0];
      update_ld = k;
      if (span == count) {
        trmm_right_lower_colmajor(static_cast<int>(n), static_cast<int>(count), tile.data(),
                                  static_cast<int>(count), update, static_cast<int>(k));
      } else {
        extended.resize(static_cast<size_t>(n * span));
        for (int64_t r = 0; r < n; ++r)
          std::copy_n(&pending[r * k + c0], span, &extended[r * span]);
        update = extended.data();
        update_ld = span;
        trsm_right_lower_rowmajor(static_cast<int>(n), static_cast<int>(span), l + c0 * k + c0,
                                  static_cast<int>(k), update, static_cast<int>(update_ld));
      }
      blas_seconds += seconds_since(blas_start);
    }
    args.i1 = i1;
    args.count = count;
    args.s_end = s_end;
    args.span = span;
    args.c0 = c0;
    args.update = update;
    args.update_ld = update_ld;
    args.codes = block_codes.data() + i1 * n;
    for_row_ranges([&](int64_t, int64_t r0, int64_t r1) {
      gptq_block_rows(args, r0, r1, &loss_parts[r0 / 16]);
    });
    for (double part : loss_parts) loss += part;

    // Right-looking: the block's residuals R_b (w's reversed columns
    // [k−i2, k−i1)) times V[b, later] (L's rows [k−i2, k−i1) × columns
    // [0, k−i2)) added to every later position's pending update. A rank-
    // `block` update of a wide matrix: the big operand is C, which BLAS
    // streams once, where a deep product R[:, :i1]·V[:i1, S] per block
    // repacked all of R every block (sgemm's copy of its operand).
    if (feed_errors && i2 < k) {
      const auto blas_start = std::chrono::steady_clock::now();
      gemm(false, static_cast<int>(n), static_cast<int>(k - i2), static_cast<int>(count), T(1),
           &w[k - i2], static_cast<int>(k), l + (k - i2) * k, static_cast<int>(k),
           i1 == 0 ? T(0) : T(1), pending.data(), static_cast<int>(k));
      blas_seconds += seconds_since(blas_start);
    }

    if (config.progress != nullptr && config.progress(i2, k, config.progress_user_data) != 0)
      throw Error(GPTQ_ERR_CANCELLED, "gptq_quantize: cancelled by the progress callback after " +
                                          std::to_string(i2) + " of " + std::to_string(k) +
                                          " columns");
  }
  stats.loss = loss;
  logger.log(GPTQ_LOG_DEBUG, "gptq_solve " + std::to_string(n) + "x" + std::to_string(k) +
                                 ": factor " + std::to_string(factor_seconds) + " s, block loop " +
                                 std::to_string(seconds_since(loop_start) - blas_seconds) +
                                 " s, GEMM + TRSM " + std::to_string(blas_seconds) + " s, total " +
                                 std::to_string(seconds_since(start)) + " s");

  for_row_ranges([&](int64_t, int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      uint8_t *dst = &q.codes[r * k];
      for (int64_t b0 = 0; b0 < k; b0 += block) {
        const int64_t count = std::min(block, k - b0);
        const uint8_t *src = block_codes.data() + b0 * n + r * count;
        for (int64_t i = 0; i < count; ++i) dst[perm[b0 + i]] = src[i];
      }
    }
  });

  q.g_idx.resize(static_cast<size_t>(k));
  for (int64_t p = 0; p < k; ++p) q.g_idx[perm[p]] = group_of[p];
  for (int64_t j = 0; j < k; ++j)
    q.act_order = q.act_order || q.g_idx[j] != static_cast<int32_t>(j / group_size);
  q.scales.resize(scale.size());
  q.zeros.resize(zero.size());
  for (size_t i = 0; i < scale.size(); ++i) {
    q.scales[i] = float_to_half(static_cast<float>(scale[i]));
    if (!half_is_finite(q.scales[i]))
      throw Error(GPTQ_ERR_UNSUPPORTED,
                  "gptq_quantize: a group's scale " +
                      std::to_string(static_cast<double>(scale[i])) +
                      " exceeds the fp16 range that checkpoints store scales in (weights of "
                      "magnitude above ~65504·2^bits)");
    q.zeros[i] = static_cast<int32_t>(zero[i]);
  }
  return q;
}

template QTensorData gptq_solve<float>(float *, LargeBuffer<float>, int64_t, int64_t,
                                       const gptq_config &, const Logger &, gptq_quant_stats &);
template QTensorData gptq_solve<double>(double *, LargeBuffer<double>, int64_t, int64_t,
                                        const gptq_config &, const Logger &, gptq_quant_stats &);

}  // namespace gptq::cpu
