#include "gptq_solver.h"

#include <algorithm>
#include <numeric>
#include <string>

#include "blas.h"
#include "error.h"
#include "group_params.h"
#include "half.h"
#include "inverse_factor.h"

namespace gptq::cpu {

namespace {

// Column j of every row of the row-major [rows, cols] matrix m moves to
// position p where perm[p] = j.
template <typename T>
void permute_columns(std::vector<T> &m, int64_t rows, int64_t cols, const std::vector<int64_t> &perm) {
  std::vector<T> row(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    T *src = &m[r * cols];
    for (int64_t p = 0; p < cols; ++p) row[p] = src[perm[p]];
    std::copy(row.begin(), row.end(), src);
  }
}

// Columns by descending Hessian diagonal; ties keep their original order so
// that results do not depend on the sort implementation.
template <typename T>
std::vector<int64_t> act_order_permutation(const std::vector<T> &h, int64_t k) {
  std::vector<int64_t> perm(static_cast<size_t>(k));
  std::iota(perm.begin(), perm.end(), 0);
  std::stable_sort(perm.begin(), perm.end(),
                   [&](int64_t a, int64_t b) { return h[a * k + a] > h[b * k + b]; });
  return perm;
}

}  // namespace

template <typename T>
QTensorData gptq_solve(std::vector<T> h, std::vector<T> w, int64_t n, int64_t k,
                       const gptq_config &config, const Logger &logger, gptq_quant_stats &stats) {
  const Quantizer<T> quant = Quantizer<T>::from_config(config);
  const bool grouped = config.group_size > 0;
  const int64_t group_size = grouped ? config.group_size : k;
  const bool static_groups = grouped && config.static_groups;
  const int64_t groups = group_count(k, config.group_size);
  std::vector<T> scale(static_cast<size_t>(groups * n));
  std::vector<T> zero(static_cast<size_t>(groups * n));

  // One group over all columns: parameters from the weights as given, before
  // dead columns are zeroed (the reference does this first).
  if (!grouped) quant.find_params(w.data(), n, k, 0, k, scale.data(), zero.data());

  // Dead inputs (never activated): diag 1 so H stays invertible; weight 0.
  int64_t dead = 0;
  for (int64_t j = 0; j < k; ++j) {
    if (h[j * k + j] == T(0)) {
      h[j * k + j] = T(1);
      for (int64_t r = 0; r < n; ++r) w[r * k + j] = T(0);
      ++dead;
    }
  }
  if (dead > 0)
    logger.log(GPTQ_LOG_INFO, std::to_string(dead) + " of " + std::to_string(k) +
                                  " input columns are dead (Hessian diagonal 0); their weights "
                                  "are quantized as 0");

  if (static_groups)
    for (int64_t g = 0; g < groups; ++g)
      quant.find_params(w.data(), n, k, g * group_size, std::min(k, (g + 1) * group_size),
                        &scale[g * n], &zero[g * n]);

  std::vector<int64_t> perm(static_cast<size_t>(k));
  std::iota(perm.begin(), perm.end(), 0);
  if (config.act_order) {
    perm = act_order_permutation(h, k);
    permute_columns(w, n, k, perm);
    std::vector<T> hp(h.size());  // H[perm][:, perm]
    for (int64_t a = 0; a < k; ++a)
      for (int64_t b = 0; b < k; ++b) hp[a * k + b] = h[perm[a] * k + perm[b]];
    h.swap(hp);
  }

  // Group of each quantization position.
  std::vector<int32_t> group_of(static_cast<size_t>(k));
  for (int64_t p = 0; p < k; ++p)
    group_of[p] = static_cast<int32_t>(static_groups ? perm[p] / group_size : p / group_size);

  InverseFactor<T> factor =
      inverse_factor(h, k, config.damp_percent, config.damp_increment, logger);
  h.clear();
  h.shrink_to_fit();
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
  const std::vector<T> &u = factor.u;

  std::vector<uint8_t> codes_perm(static_cast<size_t>(n * k));
  const int64_t block = config.block_size;
  std::vector<T> w1(static_cast<size_t>(n * std::min(block, k)));
  std::vector<T> err1(w1.size());
  double loss = 0.0;

  for (int64_t i1 = 0; i1 < k; i1 += block) {
    const int64_t i2 = std::min(i1 + block, k);
    const int64_t count = i2 - i1;
    for (int64_t r = 0; r < n; ++r)
      std::copy(&w[r * k + i1], &w[r * k + i2], &w1[r * count]);

    for (int64_t i = 0; i < count; ++i) {
      const int64_t p = i1 + i;
      const int64_t g = group_of[p];
      // A dynamic group's parameters come from w, which inside a block still
      // holds the weights as of the block start (the reference's semantics).
      if (grouped && !static_groups && p % group_size == 0)
        quant.find_params(w.data(), n, k, p, std::min(k, p + group_size), &scale[g * n],
                          &zero[g * n]);
      const T d = feed_errors ? u[p * k + p] : T(1);
      const T *u_row = feed_errors ? &u[p * k + i1] : nullptr;
      const T *s = &scale[g * n];
      const T *z = &zero[g * n];
      for (int64_t r = 0; r < n; ++r) {
        T *row = &w1[r * count];
        const T value = row[i];
        const T c = quant.code(value, s[r], z[r]);
        const T deq = s[r] * (c - z[r]);
        codes_perm[r * k + p] = static_cast<uint8_t>(c);
        const T diff = value - deq;
        loss += static_cast<double>(diff * diff / (d * d)) / 2.0;
        if (feed_errors) {
          const T e = diff / d;
          err1[r * count + i] = e;
          for (int64_t t = i + 1; t < count; ++t) row[t] -= e * u_row[t];
        }
      }
    }
    // Lazy update of all later columns: W[:, i2:] −= Err1 · U[i1:i2, i2:].
    if (feed_errors && i2 < k)
      gemm(false, static_cast<int>(n), static_cast<int>(k - i2), static_cast<int>(count), T(-1),
           err1.data(), static_cast<int>(count), &u[i1 * k + i2], static_cast<int>(k), T(1),
           &w[i2], static_cast<int>(k));
    if (config.progress != nullptr && config.progress(i2, k, config.progress_user_data) != 0)
      throw Error(GPTQ_ERR_CANCELLED, "gptq_quantize: cancelled by the progress callback after " +
                                          std::to_string(i2) + " of " + std::to_string(k) +
                                          " columns");
  }
  stats.loss = loss;

  QTensorData q;
  q.out_features = n;
  q.in_features = k;
  q.bits = config.bits;
  q.group_size = config.group_size;
  q.groups = groups;
  q.codes.resize(static_cast<size_t>(n * k));
  for (int64_t r = 0; r < n; ++r)
    for (int64_t p = 0; p < k; ++p) q.codes[r * k + perm[p]] = codes_perm[r * k + p];
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
                  "gptq_quantize: a group's scale " + std::to_string(static_cast<double>(scale[i])) +
                      " exceeds the fp16 range that checkpoints store scales in (weights of "
                      "magnitude above ~65504·2^bits)");
    q.zeros[i] = static_cast<int32_t>(zero[i]);
  }
  return q;
}

template QTensorData gptq_solve<float>(std::vector<float>, std::vector<float>, int64_t, int64_t,
                                       const gptq_config &, const Logger &, gptq_quant_stats &);
template QTensorData gptq_solve<double>(std::vector<double>, std::vector<double>, int64_t, int64_t,
                                        const gptq_config &, const Logger &, gptq_quant_stats &);

}  // namespace gptq::cpu
