#include "gptq_solver.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <string>

#include "blas.h"
#include "column_order.h"
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

// W's rows, shared among the pool's threads kRowsPerTask at a time.
struct RowTasks {
  int64_t n;
  int threads;

  // body(r0, r1) for every task's rows [r0, r1).
  template <typename Body>
  void run(const Body &body) const {
    const int64_t tasks = (n + kRowsPerTask - 1) / kRowsPerTask;
    ThreadPool::instance().parallel_for(tasks, threads, [&](int64_t t) {
      body(t * kRowsPerTask, std::min(n, (t + 1) * kRowsPerTask));
    });
  }
};

// How the columns are grouped for scales and zeros, and when each group's
// parameters are found.
struct Groups {
  int64_t size;   // columns per group (K for one group)
  int64_t count;  // G
  bool grouped;   // false: one group, from the weights as given
  bool fixed;     // static groups: all found before any column is quantized
  // K-quants: columns per super-block, whose d is found at its start (the
  // groups are its sub-blocks); 0 for the other grids.
  int64_t super;
  bool dynamic() const { return grouped && !fixed; }  // found at a group's start

  static Groups of(const gptq_config &config, int64_t k) {
    const bool grouped = config.group_size > 0;
    const GgufGrid *gguf = gguf_grid(config.grid);
    return {grouped ? config.group_size : k, group_count(k, config.group_size), grouped,
            grouped && config.static_groups != 0,
            gguf != nullptr && gguf->super_blocks() ? gguf->block : 0};
  }
};

// Scale and zero ([G, N]) of every group, from the weights as they are.
// K-quants also keep their super-blocks' d and dmin ([S, N]) and the
// sub-blocks' integer scales and mins ([G, N]); scale and zero then hold
// each sub-block's effective d·sc and zero.
template <typename T>
struct GroupParams {
  std::vector<T> scale, zero;
  std::vector<T> super_d, super_dmin, sub_sc, sub_mc;

  GroupParams(int64_t groups, int64_t n, const Groups &g, int64_t k)
      : scale(static_cast<size_t>(groups * n)), zero(static_cast<size_t>(groups * n)) {
    if (g.super == 0) return;
    const size_t supers = static_cast<size_t>((k + g.super - 1) / g.super * n);
    super_d.resize(supers);
    super_dmin.resize(supers);
    sub_sc.resize(scale.size());
    sub_mc.resize(scale.size());
  }

  SuperParams<T> super_params(const Groups &g) {
    SuperParams<T> p;
    p.size = g.super;
    p.d = super_d.data();
    p.dmin = super_dmin.data();
    p.sc = sub_sc.data();
    p.mc = sub_mc.data();
    return p;
  }

  // h: the Hessian diagonal by column for GGUF grids' scale search, or null.
  void find_all(const Quantizer<T> &quant, const T *w, int64_t n, int64_t k, const Groups &groups,
                const RowTasks &rows, const T *h = nullptr) {
    if (groups.super > 0) return find_all_super(quant, w, n, k, groups, rows, h);
    rows.run([&](int64_t r0, int64_t r1) {
      for (int64_t g = 0; g < groups.count; ++g)
        quant.find_params(&w[r0 * k], r1 - r0, k, g * groups.size,
                          std::min(k, (g + 1) * groups.size), &scale[g * n + r0],
                          &zero[g * n + r0], h);
    });
  }

  // K-quants with static groups: each super-block's d, then its sub-blocks.
  void find_all_super(const Quantizer<T> &quant, const T *w, int64_t n, int64_t k,
                      const Groups &groups, const RowTasks &rows, const T *h) {
    const SuperBlockRule<T> rule{quant.gguf, quant.maxq};
    rows.run([&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const T *row = &w[r * k];
        for (int64_t s0 = 0; s0 < k; s0 += groups.super) {
          const int64_t at = s0 / groups.super * n + r, s1 = std::min(k, s0 + groups.super);
          rule.find_super(row, h, s0, s1, &super_d[at], &super_dmin[at]);
          for (int64_t c0 = s0; c0 < s1; c0 += groups.size) {
            const int64_t sub = c0 / groups.size * n + r;
            rule.find_sub(row, h, c0, std::min(k, c0 + groups.size), super_d[at], super_dmin[at],
                          &sub_sc[sub], &sub_mc[sub], &scale[sub], &zero[sub]);
          }
        }
      }
    });
  }
};

// H's diagonal, dead inputs (never activated: diagonal 0) set to 1 so that
// H stays invertible.
template <typename T>
struct Diagonal {
  std::vector<T> values;
  int64_t dead = 0;
  double sum = 0.0;
};

// The diagonal; dead inputs' weights are zeroed, as the reference does.
template <typename T>
Diagonal<T> clear_dead_columns(const T *h_upper, T *w, int64_t n, int64_t k, const Logger &logger) {
  Diagonal<T> diag;
  diag.values.resize(static_cast<size_t>(k));
  for (int64_t j = 0; j < k; ++j) {
    T &d = diag.values[j];
    d = h_upper[j * k + j];
    if (d == T(0)) {
      d = T(1);
      for (int64_t r = 0; r < n; ++r) w[r * k + j] = T(0);
      ++diag.dead;
    }
    diag.sum += static_cast<double>(d);
  }
  if (diag.dead > 0)
    logger.log(GPTQ_LOG_INFO, std::to_string(diag.dead) + " of " + std::to_string(k) +
                                  " input columns are dead (Hessian diagonal 0); their weights "
                                  "are quantized as 0");
  return diag;
}

// The quantization order (src/column_order.h) with perm reversed as rperm,
// the solver's storage order (see above), and the group of each position.
struct Order {
  std::vector<int64_t> perm, rperm;
  std::vector<int32_t> group_of;
};

template <typename T>
Order quantization_order(const std::vector<T> &diag, const gptq_config &config,
                         const Groups &groups) {
  ColumnOrder columns = column_order(diag, groups.size, config.act_order != 0,
                                     config.act_group_aware != 0, groups.fixed, groups.super);
  Order order;
  order.perm = std::move(columns.perm);
  order.rperm.assign(order.perm.rbegin(), order.perm.rend());
  order.group_of = std::move(columns.group_of);
  return order;
}

// W's columns into reversed quantization order, row by row.
template <typename T>
void reorder_columns(T *w, int64_t k, const std::vector<int64_t> &rperm, const RowTasks &rows) {
  rows.run([&](int64_t r0, int64_t r1) {
    std::vector<T> tmp(static_cast<size_t>(k));
    for (int64_t r = r0; r < r1; ++r) {
      T *row = &w[r * k];
      for (int64_t c = 0; c < k; ++c) tmp[c] = row[rperm[c]];
      std::copy(tmp.begin(), tmp.end(), row);
    }
  });
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

// The Cholesky factor of the damped, reordered Hessian, in H's own storage
// (see hessian_factor.h); the outcome goes to stats and, when the damping
// had to be raised or every attempt failed, to the log.
template <typename T>
HessianFactor<T> factorize(T *h_upper, int64_t k, const Diagonal<T> &diag, const Order &order,
                           const gptq_config &config, const Logger &logger,
                           gptq_quant_stats &stats) {
  HessianFactor<T> factor = hessian_factor<T>(
      h_upper, k, diag.sum / static_cast<double>(k),
      [&](T *a) {
        fill_reversed_hessian(h_upper, k, order.rperm, diag.values, a, config.num_threads);
      },
      config.damp_percent, config.damp_increment, logger);
  stats.damp_percent_used = factor.damp_percent;
  stats.damp_retries = factor.retries;
  stats.fell_back_to_rtn = factor.ok ? 0 : 1;
  stats.dead_columns = diag.dead;
  if (!factor.ok) {
    logger.log(GPTQ_LOG_WARN, "the Hessian could not be factorized even with damp_percent " +
                                  std::to_string(factor.damp_percent) +
                                  "; falling back to round-to-nearest for this layer");
  } else if (factor.retries > 0) {
    logger.log(GPTQ_LOG_WARN, "Cholesky factorization needed damp_percent raised to " +
                                  std::to_string(factor.damp_percent) + " after " +
                                  std::to_string(factor.retries) + " failed attempts");
  }
  return factor;
}

// A block [i1, i2) of positions and the span S = [i1, s_end) whose
// block-start weights it needs: the block and, when a dynamic group starts
// inside it, that whole group.
struct Block {
  int64_t i1, i2, s_end;
  int64_t count() const { return i2 - i1; }
  int64_t span() const { return s_end - i1; }
};

// The column loop, block by block in quantization order (the reference's
// lazy batches): U's diagonal tile, the update of the block's span, the
// row-parallel kernel, and the block's errors carried to every later
// position.
template <typename T>
class BlockLoop {
 public:
  // w: [N, K] in reversed order, its block positions overwritten by the
  // residuals; l: the factor (row-major [K, K], lower), or null for
  // round-to-nearest.
  BlockLoop(T *w, int64_t n, int64_t k, const T *l, const Groups &groups, int64_t block_size,
            const RowTasks &rows);

  // Quantizes every position; returns the loss. Throws Error when the
  // progress callback cancels.
  double run(const Quantizer<T> &quant, const std::vector<int32_t> &group_of,
             GroupParams<T> &params, const gptq_config &config, const T *diag_by_position);

  // The codes: [N, count] per block, at offset i1·N.
  const LargeBuffer<uint8_t> &codes() const { return codes_; }
  int64_t block() const { return block_; }
  double blas_seconds() const { return blas_seconds_; }

 private:
  Block block_at(int64_t i1) const;
  void invert_diagonal_tile(const Block &b);
  const T *span_update(const Block &b, int64_t &ld);
  void propagate_errors(const Block &b);

  T *w_;
  int64_t n_, k_;
  const T *l_;
  Groups groups_;
  int64_t block_;
  RowTasks rows_;
  // The block-start weights of the span, row by row (the kernel's state).
  std::vector<T> state_;
  // The block's columns while the kernel works them, 16 rows at a time.
  std::vector<T> scratch_;
  // L's diagonal tile, inverted in place (column-major), and U's tile made
  // from it (row-major).
  std::vector<T> tile_, u_tile_;
  // The lazy update accumulated for positions not yet reached, in
  // reversed column order like w: [N, K], filled by the first block's GEMM.
  LargeBuffer<T> pending_;
  std::vector<T> extended_;  // pending's columns of S when S reaches past the block
  // GGUF grids: the Hessian diagonal of the span's positions in the state's
  // column order (reversed), for the block scale searches.
  std::vector<T> diag_state_;
  std::vector<double> tile_loss_;
  // Codes block by block, placed into the original column order after the
  // loop: written straight into the row-major [N, K] array, every block
  // touched a fresh cache line or two of every row, and the kernel waited
  // on those write misses.
  LargeBuffer<uint8_t> codes_;
  double blas_seconds_ = 0.0;
};

template <typename T>
BlockLoop<T>::BlockLoop(T *w, int64_t n, int64_t k, const T *l, const Groups &groups,
                        int64_t block_size, const RowTasks &rows)
    : w_(w), n_(n), k_(k), l_(l), groups_(groups), block_(std::min(block_size, k)), rows_(rows) {
  // At most block + group columns: a dynamic group may start in the block.
  const int64_t reach = groups.super > 0 ? groups.super : groups.size;
  const int64_t max_span = std::min(k, block_ + (groups.dynamic() ? reach : 0));
  state_.resize(static_cast<size_t>(n * max_span));
  scratch_.resize(static_cast<size_t>((n + 15) / 16 * 16 * block_));
  tile_.resize(static_cast<size_t>(block_ * block_));
  u_tile_.resize(static_cast<size_t>(block_ * block_));
  pending_ = LargeBuffer<T>(l != nullptr && k > block_ ? static_cast<size_t>(n * k) : 0);
  tile_loss_.resize(static_cast<size_t>((n + 15) / 16));
  codes_ = LargeBuffer<uint8_t>(static_cast<size_t>(n * k));
}

template <typename T>
Block BlockLoop<T>::block_at(int64_t i1) const {
  Block b{i1, std::min(i1 + block_, k_), 0};
  b.s_end = b.i2;
  if (groups_.dynamic()) {
    // A K-quant's super-block is the unit whose start needs all its
    // columns; its sub-blocks lie inside it.
    const int64_t gs = groups_.super > 0 ? groups_.super : groups_.size;
    for (int64_t p = (i1 + gs - 1) / gs * gs; p < b.i2; p += gs)
      b.s_end = std::max(b.s_end, std::min(k_, p + gs));
    if (groups_.super > 0) {
      const int64_t sub = groups_.size;
      for (int64_t p = (i1 + sub - 1) / sub * sub; p < b.i2; p += sub)
        b.s_end = std::max(b.s_end, std::min(k_, p + sub));
    }
  }
  return b;
}

// U's diagonal tile for the block: V_bb⁻¹ = J·L_bb⁻¹·J with L_bb the block
// [k−i2, k−i1) of L.
template <typename T>
void BlockLoop<T>::invert_diagonal_tile(const Block &b) {
  const int64_t count = b.count(), c = k_ - b.i2;
  for (int64_t j = 0; j < count; ++j)
    for (int64_t i = 0; i < count; ++i)
      tile_[i + j * count] = i >= j ? l_[(c + i) * k_ + c + j] : T(0);
  trtri_lower(static_cast<int>(count), tile_.data());
  for (int64_t i = 0; i < count; ++i)
    for (int64_t j = i; j < count; ++j)
      u_tile_[i * count + j] = tile_[(count - 1 - i) + (count - 1 - j) * count];
}

// What the kernel adds to W_S for the block-start weights: Y_S·V_SS⁻¹ with
// Y_S = R[:, :i1]·V[:i1, S], pending's columns [c0, k−i1); reversed, V_SS⁻¹
// is L_SS⁻¹ for L's diagonal block [c0, k−i1). When S is the block, L_SS⁻¹
// is the tile just inverted: multiply by it in place (those columns of
// pending are not read again); OpenBLAS's trmm runs much faster than its
// trsm on these shapes, and the reference multiplies by inverses
// throughout. When S reaches past the block (a group crosses its end),
// solve with L_SS on a copy: the columns past the block are still
// accumulating. Returns the update, [N, span] with leading dimension ld.
template <typename T>
const T *BlockLoop<T>::span_update(const Block &b, int64_t &ld) {
  const int64_t count = b.count(), span = b.span(), c0 = k_ - b.s_end;
  T *update = &pending_[c0];
  ld = k_;
  if (span == count) {
    trmm_right_lower_colmajor(static_cast<int>(n_), static_cast<int>(count), tile_.data(),
                              static_cast<int>(count), update, static_cast<int>(k_));
    return update;
  }
  extended_.resize(static_cast<size_t>(n_ * span));
  for (int64_t r = 0; r < n_; ++r) std::copy_n(&pending_[r * k_ + c0], span, &extended_[r * span]);
  ld = span;
  trsm_right_lower_rowmajor(static_cast<int>(n_), static_cast<int>(span), l_ + c0 * k_ + c0,
                            static_cast<int>(k_), extended_.data(), static_cast<int>(ld));
  return extended_.data();
}

// Right-looking: the block's residuals R_b (w's reversed columns
// [k−i2, k−i1)) times V[b, later] (L's rows [k−i2, k−i1) × columns
// [0, k−i2)) added to every later position's pending update. A rank-
// `block` update of a wide matrix: the big operand is C, which BLAS
// streams once, where a deep product R[:, :i1]·V[:i1, S] per block
// repacked all of R every block (sgemm's copy of its operand).
template <typename T>
void BlockLoop<T>::propagate_errors(const Block &b) {
  const int64_t later = k_ - b.i2;
  gemm(false, static_cast<int>(n_), static_cast<int>(later), static_cast<int>(b.count()), T(1),
       &w_[later], static_cast<int>(k_), l_ + later * k_, static_cast<int>(k_),
       b.i1 == 0 ? T(0) : T(1), pending_.data(), static_cast<int>(k_));
}

template <typename T>
double BlockLoop<T>::run(const Quantizer<T> &quant, const std::vector<int32_t> &group_of,
                         GroupParams<T> &params, const gptq_config &config,
                         const T *diag_by_position) {
  const bool feed_errors = l_ != nullptr;
  BlockArgs<T> args{};
  args.w = w_;
  args.k = k_;
  args.n = n_;
  args.state = state_.data();
  args.u_tile = u_tile_.data();
  args.feed_errors = feed_errors;
  args.group_size = groups_.size;
  args.dynamic_groups = groups_.dynamic();
  args.group_of = group_of.data();
  args.scale = params.scale.data();
  args.zero = params.zero.data();
  args.diag_state = nullptr;
  args.super = params.super_params(groups_);
  args.quant = quant;
  args.scratch = scratch_.data();
  double loss = 0.0;
  for (int64_t i1 = 0; i1 < k_; i1 += block_) {
    const Block b = block_at(i1);
    if (feed_errors) invert_diagonal_tile(b);
    // The state is W_S (original weights, reversed) plus the update, built
    // row by row by the kernel.
    args.update = nullptr;
    args.update_ld = 0;
    if (feed_errors && i1 > 0) {
      const auto start = std::chrono::steady_clock::now();
      args.update = span_update(b, args.update_ld);
      blas_seconds_ += seconds_since(start);
    }
    args.i1 = i1;
    args.count = b.count();
    args.s_end = b.s_end;
    args.span = b.span();
    args.c0 = k_ - b.s_end;
    args.codes = codes_.data() + i1 * n_;
    if (diag_by_position != nullptr) {
      diag_state_.resize(static_cast<size_t>(b.span()));
      for (int64_t j = 0; j < b.span(); ++j) diag_state_[j] = diag_by_position[b.s_end - 1 - j];
      args.diag_state = diag_state_.data();
    }
    rows_.run([&](int64_t r0, int64_t r1) { gptq_block_rows(args, r0, r1, &tile_loss_[r0 / 16]); });
    for (double part : tile_loss_) loss += part;
    if (feed_errors && b.i2 < k_) {
      const auto start = std::chrono::steady_clock::now();
      propagate_errors(b);
      blas_seconds_ += seconds_since(start);
    }
    if (config.progress != nullptr && config.progress(b.i2, k_, config.progress_user_data) != 0)
      throw Error(GPTQ_ERR_CANCELLED, "gptq_quantize: cancelled by the progress callback after " +
                                          std::to_string(b.i2) + " of " + std::to_string(k_) +
                                          " columns");
  }
  return loss;
}

// The tensor in the original column order: the codes ([N, K]) from the
// blocks' arrays, and g_idx from the positions' groups.
QTensorData unpermute(const uint8_t *block_codes, int64_t block, const Order &order,
                      const std::vector<int32_t> &group_of, const Groups &groups, int64_t n,
                      int64_t k, const RowTasks &rows) {
  QTensorData q;
  q.out_features = n;
  q.in_features = k;
  q.groups = groups.count;
  q.codes.resize(static_cast<size_t>(n * k));
  rows.run([&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      uint8_t *dst = &q.codes[r * k];
      for (int64_t b0 = 0; b0 < k; b0 += block) {
        const int64_t count = std::min(block, k - b0);
        const uint8_t *src = block_codes + b0 * n + r * count;
        for (int64_t i = 0; i < count; ++i) dst[order.perm[b0 + i]] = src[i];
      }
    }
  });
  q.g_idx.resize(static_cast<size_t>(k));
  for (int64_t p = 0; p < k; ++p) q.g_idx[order.perm[p]] = group_of[p];
  for (int64_t j = 0; j < k; ++j)
    q.act_order = q.act_order || q.g_idx[j] != static_cast<int32_t>(j / groups.size);
  return q;
}

// Scales as checkpoints store them (fp16) and integer zeros.
// GGUF min blocks (Q4_1, Q5_1) keep m as fp16 instead of an integer zero.
// K-quants keep their super-blocks' d and dmin as fp16 and the sub-blocks'
// integer scales and mins (qtensor.h).
template <typename T>
void store_super_params(const GroupParams<T> &params, const GgufGrid &gguf, QTensorData &q) {
  q.super_scales.resize(params.super_d.size());
  for (size_t i = 0; i < params.super_d.size(); ++i) {
    q.super_scales[i] = float_to_half(static_cast<float>(params.super_d[i]));
    const bool finite = half_is_finite(q.super_scales[i]) &&
                        std::isfinite(static_cast<float>(params.super_dmin[i])) &&
                        half_is_finite(float_to_half(static_cast<float>(params.super_dmin[i])));
    if (!finite)
      throw Error(GPTQ_ERR_UNSUPPORTED,
                  std::string("gptq_quantize: a ") + gguf.name + " super-block's d " +
                      std::to_string(static_cast<double>(params.super_d[i])) + " or dmin " +
                      std::to_string(static_cast<double>(params.super_dmin[i])) +
                      " exceeds the fp16 range the block stores them in");
  }
  if (gguf.has_min()) {
    q.super_mins.resize(params.super_dmin.size());
    for (size_t i = 0; i < params.super_dmin.size(); ++i)
      q.super_mins[i] = float_to_half(static_cast<float>(params.super_dmin[i]));
  }
  q.sub_scales.resize(params.sub_sc.size());
  for (size_t i = 0; i < params.sub_sc.size(); ++i)
    q.sub_scales[i] = static_cast<int16_t>(params.sub_sc[i]);
  if (gguf.has_min()) {
    q.sub_mins.resize(params.sub_mc.size());
    for (size_t i = 0; i < params.sub_mc.size(); ++i)
      q.sub_mins[i] = static_cast<int16_t>(params.sub_mc[i]);
  }
}

template <typename T>
void store_group_params(const GroupParams<T> &params, QTensorData &q) {
  const GgufGrid *gguf = gguf_grid(q.grid);
  if (gguf != nullptr && gguf->super_blocks()) return store_super_params(params, *gguf, q);
  q.scales.resize(params.scale.size());
  q.zeros.resize(params.zero.size());
  if (gguf != nullptr && gguf->rule == BlockRule::kMinMax) {
    q.mins.resize(params.zero.size());
    for (size_t i = 0; i < params.scale.size(); ++i) {
      q.scales[i] = float_to_half(static_cast<float>(params.scale[i]));
      q.mins[i] = float_to_half(static_cast<float>(params.zero[i]));
      q.zeros[i] = 0;
      if (!half_is_finite(q.scales[i]) || !half_is_finite(q.mins[i]))
        throw Error(GPTQ_ERR_UNSUPPORTED,
                    std::string("gptq_quantize: a ") + gguf->name + " block's d " +
                        std::to_string(static_cast<double>(params.scale[i])) + " or m " +
                        std::to_string(static_cast<double>(params.zero[i])) +
                        " exceeds the fp16 range the block stores them in");
    }
    return;
  }
  for (size_t i = 0; i < params.scale.size(); ++i) {
    q.scales[i] = float_to_half(static_cast<float>(params.scale[i]));
    if (!half_is_finite(q.scales[i]))
      throw Error(GPTQ_ERR_UNSUPPORTED, "gptq_quantize: a group's scale " +
                                            std::to_string(static_cast<double>(params.scale[i])) +
                                            " exceeds the fp16 range that checkpoints store scales "
                                            "in (weights of magnitude above ~65504·2^bits)");
    q.zeros[i] = static_cast<int32_t>(params.zero[i]);
  }
}

}  // namespace

template <typename T>
QTensorData gptq_solve(T *h_upper, LargeBuffer<T> w, int64_t n, int64_t k,
                       const gptq_config &config, const Logger &logger, gptq_quant_stats &stats) {
  const auto start = std::chrono::steady_clock::now();
  const Quantizer<T> quant = Quantizer<T>::from_config(config);
  const Groups groups = Groups::of(config, k);
  const RowTasks rows{n, config.num_threads};
  GroupParams<T> params(groups.count, n, groups, k);

  // One group over all columns: parameters from the weights as given, before
  // dead columns are zeroed (the reference does this first).
  if (!groups.grouped) params.find_all(quant, w.data(), n, k, groups, rows);
  const Diagonal<T> diag = clear_dead_columns(h_upper, w.data(), n, k, logger);
  if (groups.fixed)
    params.find_all(quant, w.data(), n, k, groups, rows,
                    quant.gguf != nullptr ? diag.values.data() : nullptr);

  const Order order = quantization_order(diag.values, config, groups);
  reorder_columns(w.data(), k, order.rperm, rows);
  const std::vector<int32_t> &group_of = order.group_of;

  const auto factor_start = std::chrono::steady_clock::now();
  const HessianFactor<T> factor = factorize(h_upper, k, diag, order, config, logger, stats);
  const double factor_seconds = seconds_since(factor_start);

  BlockLoop<T> loop(w.data(), n, k, factor.ok ? factor.l() : nullptr, groups, config.block_size,
                    rows);
  // GGUF grids weigh their block scale search by the Hessian diagonal.
  std::vector<T> diag_by_position;
  if (quant.gguf != nullptr)
    for (int64_t p = 0; p < k; ++p) diag_by_position.push_back(diag.values[order.perm[p]]);
  const auto loop_start = std::chrono::steady_clock::now();
  stats.loss = loop.run(quant, group_of, params, config,
                        diag_by_position.empty() ? nullptr : diag_by_position.data());
  logger.log(GPTQ_LOG_DEBUG, "gptq_solve " + std::to_string(n) + "x" + std::to_string(k) +
                                 ": factor " + std::to_string(factor_seconds) + " s, block loop " +
                                 std::to_string(seconds_since(loop_start) - loop.blas_seconds()) +
                                 " s, GEMM + TRSM " + std::to_string(loop.blas_seconds()) +
                                 " s, total " + std::to_string(seconds_since(start)) + " s");

  QTensorData q = unpermute(loop.codes().data(), loop.block(), order, group_of, groups, n, k, rows);
  q.bits = config.bits;
  q.group_size = config.group_size;
  q.grid = config.grid;
  store_group_params(params, q);
  return q;
}

template QTensorData gptq_solve<float>(float *, LargeBuffer<float>, int64_t, int64_t,
                                       const gptq_config &, const Logger &, gptq_quant_stats &);
template QTensorData gptq_solve<double>(double *, LargeBuffer<double>, int64_t, int64_t,
                                        const gptq_config &, const Logger &, gptq_quant_stats &);

}  // namespace gptq::cpu
