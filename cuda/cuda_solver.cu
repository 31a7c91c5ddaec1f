#include "cuda_solver.h"

#include <cublas_v2.h>
#include <cusolverDn.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <string>
#include <type_traits>
#include <vector>

#include "column_order.h"
#include "cuda_status.h"
#include "device_context.h"
#include "device_convert.h"
#include "gptq_block_kernel.h"
#include "half.h"
#include "plugin_error.h"
#include "solver_kernels.h"

namespace gptq_cuda {
namespace {

// The context's log callback, as the core's Logger uses it.
struct Log {
  const gptq_config &config;
  void operator()(gptq_log_level level, const std::string &message) const {
    if (config.log != nullptr && level >= config.log_level)
      config.log(level, message.c_str(), config.log_user_data);
  }
  bool debug() const { return config.log != nullptr && config.log_level <= GPTQ_LOG_DEBUG; }
};

template <typename T>
QuantParams<T> quant_params(const gptq_config &c) {
  QuantParams<T> q;
  q.maxq = static_cast<T>((1 << c.bits) - 1);
  q.sym = c.sym != 0;
  q.mse = c.mse != 0;
  q.norm = static_cast<T>(c.mse_norm);
  q.grid = c.mse_grid;
  // As cpu::Quantizer::from_config: int(max_shrink · grid) in double, with
  // slack for the float storage of max_shrink.
  q.shrink_steps =
      static_cast<int>(std::floor(static_cast<double>(c.mse_max_shrink) * c.mse_grid + 1e-4));
  return q;
}

// Precision-overloaded cuBLAS / cuSOLVER calls, column-major.
void gemm(cublasHandle_t h, cublasOperation_t ta, int m, int n, int k, float alpha,
          const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc) {
  check_cublas(cublasSgemm(h, ta, CUBLAS_OP_N, m, n, k, &alpha, a, lda, b, ldb, &beta, c, ldc),
               "cublasSgemm");
}
void gemm(cublasHandle_t h, cublasOperation_t ta, int m, int n, int k, double alpha,
          const double *a, int lda, const double *b, int ldb, double beta, double *c, int ldc) {
  check_cublas(cublasDgemm(h, ta, CUBLAS_OP_N, m, n, k, &alpha, a, lda, b, ldb, &beta, c, ldc),
               "cublasDgemm");
}
// Solves op(A)·X = B in place, A lower-triangular, from the left.
void trsm_left_lower(cublasHandle_t h, cublasOperation_t ta, int m, int n, const float *a, int lda,
                     float *b, int ldb) {
  const float one = 1.0f;
  check_cublas(cublasStrsm(h, CUBLAS_SIDE_LEFT, CUBLAS_FILL_MODE_LOWER, ta, CUBLAS_DIAG_NON_UNIT,
                           m, n, &one, a, lda, b, ldb),
               "cublasStrsm");
}
void trsm_left_lower(cublasHandle_t h, cublasOperation_t ta, int m, int n, const double *a,
                     int lda, double *b, int ldb) {
  const double one = 1.0;
  check_cublas(cublasDtrsm(h, CUBLAS_SIDE_LEFT, CUBLAS_FILL_MODE_LOWER, ta, CUBLAS_DIAG_NON_UNIT,
                           m, n, &one, a, lda, b, ldb),
               "cublasDtrsm");
}
void trsm_batched(cublasHandle_t h, int m, const float *const *a, float *const *b, int count) {
  const float one = 1.0f;
  check_cublas(cublasStrsmBatched(h, CUBLAS_SIDE_LEFT, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N,
                                  CUBLAS_DIAG_NON_UNIT, m, m, &one, a, m, b, m, count),
               "cublasStrsmBatched");
}
void trsm_batched(cublasHandle_t h, int m, const double *const *a, double *const *b, int count) {
  const double one = 1.0;
  check_cublas(cublasDtrsmBatched(h, CUBLAS_SIDE_LEFT, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N,
                                  CUBLAS_DIAG_NON_UNIT, m, m, &one, a, m, b, m, count),
               "cublasDtrsmBatched");
}
int potrf_workspace(cusolverDnHandle_t h, int n, float *a) {
  int lwork = 0;
  check_cusolver(cusolverDnSpotrf_bufferSize(h, CUBLAS_FILL_MODE_LOWER, n, a, n, &lwork),
                 "cusolverDnSpotrf_bufferSize");
  return lwork;
}
int potrf_workspace(cusolverDnHandle_t h, int n, double *a) {
  int lwork = 0;
  check_cusolver(cusolverDnDpotrf_bufferSize(h, CUBLAS_FILL_MODE_LOWER, n, a, n, &lwork),
                 "cusolverDnDpotrf_bufferSize");
  return lwork;
}
void potrf(cusolverDnHandle_t h, int n, float *a, float *work, int lwork, int *info) {
  check_cusolver(cusolverDnSpotrf(h, CUBLAS_FILL_MODE_LOWER, n, a, n, work, lwork, info),
                 "cusolverDnSpotrf");
}
void potrf(cusolverDnHandle_t h, int n, double *a, double *work, int lwork, int *info) {
  check_cusolver(cusolverDnDpotrf(h, CUBLAS_FILL_MODE_LOWER, n, a, n, work, lwork, info),
                 "cusolverDnDpotrf");
}

template <typename T>
void upload(T *dst, const T *src, size_t count, cudaStream_t stream) {
  check_cuda(cudaMemcpyAsync(dst, src, count * sizeof(T), cudaMemcpyHostToDevice, stream),
             "cudaMemcpyAsync");
}
template <typename T>
void download(T *dst, const T *src, size_t count, cudaStream_t stream) {
  check_cuda(cudaMemcpyAsync(dst, src, count * sizeof(T), cudaMemcpyDeviceToHost, stream),
             "cudaMemcpyAsync");
}

// Elapsed milliseconds between two events, for the debug log.
class Timer {
 public:
  Timer(bool on, cudaStream_t stream) : on_(on), stream_(stream) {}
  ~Timer() {
    for (cudaEvent_t e : events_) cudaEventDestroy(e);
  }
  void mark() {
    if (!on_) return;
    cudaEvent_t e = nullptr;
    check_cuda(cudaEventCreate(&e), "cudaEventCreate");
    events_.push_back(e);
    check_cuda(cudaEventRecord(e, stream_), "cudaEventRecord");
  }
  double ms(size_t from, size_t to) const {
    float t = 0.0f;
    if (on_ && to < events_.size()) cudaEventElapsedTime(&t, events_[from], events_[to]);
    return t;
  }

 private:
  bool on_;
  cudaStream_t stream_;
  std::vector<cudaEvent_t> events_;
};

// The weights [n, k] as T on the device, wherever and however they came.
template <typename T>
DeviceArray<T> weights_on_device(const void *w, gptq_dtype dtype, bool on_device, int64_t n,
                                 int64_t k, cudaStream_t stream) {
  const size_t count = static_cast<size_t>(n * k);
  DeviceArray<T> out(count, stream);
  if (!on_device && dtype == GPTQ_DTYPE_F32 && std::is_same<T, float>::value) {
    upload(out.get(), static_cast<const T *>(w), count, stream);
    return out;
  }
  DeviceArray<char> staged(on_device ? 0 : count * dtype_bytes(dtype), stream);
  const void *src = w;
  if (!on_device) {
    upload(staged.get(), static_cast<const char *>(w), count * dtype_bytes(dtype), stream);
    src = staged.get();
  }
  convert_on_device(src, dtype, static_cast<int64_t>(count), out.get(), stream);
  return out;
}

// The outcome of the damped factorizations (cpu/hessian_factor.cpp's
// HessianFactor): L in `l` when ok.
struct Factorization {
  bool ok = false;
  double damp_percent = 0.0;
  int retries = 0;
};

template <typename T>
Factorization factorize(const T *h, int64_t k, const int64_t *rperm, const T *diag,
                        double diag_mean, const gptq_config &config, T *l, cudaStream_t stream,
                        const Log &log) {
  cusolverDnHandle_t solver = solver_handle(stream);
  const int n = static_cast<int>(k);
  const int lwork = potrf_workspace(solver, n, l);
  DeviceArray<T> work(static_cast<size_t>(std::max(lwork, 1)), stream);
  DeviceArray<int> status(2, stream);  // cuSOLVER's info, our usability flag
  Factorization f;
  double percent = config.damp_percent;
  for (;;) {
    fill_reversed_hessian(h, k, rperm, diag, static_cast<T>(percent * diag_mean), l, stream);
    check_cuda(cudaMemsetAsync(status.get(), 0, 2 * sizeof(int), stream), "cudaMemsetAsync");
    potrf(solver, n, l, work.get(), lwork, status.get());
    check_factor_diagonal(l, k, status.get() + 1, stream);
    int host[2] = {0, 0};
    download(host, status.get(), 2, stream);
    sync_stream(stream, "gptq_quantize");
    f.damp_percent = percent;
    if (host[0] == 0 && host[1] == 0) {
      f.ok = true;
      return f;
    }
    ++f.retries;
    const double next = percent + config.damp_increment;
    const bool retry = config.damp_increment > 0.0f && next < 1.0;
    log(GPTQ_LOG_DEBUG, "Cholesky factorization failed with damp_percent " +
                            std::to_string(percent) +
                            (retry ? "; retrying with " + std::to_string(next)
                                   : "; no further damping to try"));
    if (!retry) return f;
    percent = next;
  }
}

template <typename T>
void solve(const DeviceHessian &hessian, const void *w_in, gptq_dtype dtype, bool w_on_device,
           const gptq_config &config, gptq_plugin_qtensor &out, gptq_quant_stats &stats) {
  const auto start = std::chrono::steady_clock::now();
  cudaStream_t stream = as_stream(hessian.stream());
  const Log log{config};
  Timer timer(log.debug(), stream);
  timer.mark();
  const int64_t k = hessian.dim(), n = out.out_features;
  const T *h = static_cast<const T *>(hessian.data());
  const QuantParams<T> quant = quant_params<T>(config);
  const bool grouped = config.group_size > 0;
  const int64_t group_size = grouped ? config.group_size : k;
  const bool static_groups = grouped && config.static_groups != 0;
  const int64_t groups = grouped ? (k + group_size - 1) / group_size : 1;

  DeviceArray<T> w0 = weights_on_device<T>(w_in, dtype, w_on_device, n, k, stream);
  DeviceArray<T> diag_d(static_cast<size_t>(k), stream);
  extract_diagonal(h, k, diag_d.get(), stream);
  std::vector<T> diag(static_cast<size_t>(k));
  download(diag.data(), diag_d.get(), diag.size(), stream);

  DeviceArray<T> scale(static_cast<size_t>(groups * n), stream);
  DeviceArray<T> zero(static_cast<size_t>(groups * n), stream);
  // One group over all columns: parameters from the weights as given, before
  // dead columns are zeroed (the reference does this first).
  if (!grouped) group_params_from_weights(w0.get(), n, k, k, 1, quant, scale.get(), zero.get(), stream);
  sync_stream(stream, "gptq_quantize");

  // Dead inputs (never activated): diag 1 so H stays invertible; weight 0.
  std::vector<uint8_t> dead(static_cast<size_t>(k), 0);
  int64_t dead_count = 0;
  double diag_sum = 0.0;
  for (int64_t j = 0; j < k; ++j) {
    if (diag[j] == T(0)) {
      diag[j] = T(1);
      dead[j] = 1;
      ++dead_count;
    }
    diag_sum += static_cast<double>(diag[j]);
  }
  if (dead_count > 0) {
    log(GPTQ_LOG_INFO, std::to_string(dead_count) + " of " + std::to_string(k) +
                           " input columns are dead (Hessian diagonal 0); their weights are "
                           "quantized as 0");
    DeviceArray<uint8_t> dead_d(dead.size(), stream);
    upload(dead_d.get(), dead.data(), dead.size(), stream);
    zero_columns(w0.get(), n, k, dead_d.get(), stream);
  }
  if (static_groups)
    group_params_from_weights(w0.get(), n, k, group_size, groups, quant, scale.get(), zero.get(),
                              stream);

  // The quantization order (src/column_order.h, shared with the CPU),
  // stored reversed: position p at column k − 1 − p.
  gptq::ColumnOrder order = gptq::column_order(diag, group_size, config.act_order != 0,
                                               config.act_group_aware != 0, static_groups);
  const std::vector<int64_t> &perm = order.perm;
  const std::vector<int32_t> &group_of = order.group_of;
  std::vector<int64_t> rperm(static_cast<size_t>(k));
  for (int64_t c = 0; c < k; ++c) rperm[c] = perm[k - 1 - c];
  DeviceArray<int64_t> perm_d(perm.size(), stream), rperm_d(rperm.size(), stream);
  DeviceArray<int32_t> group_of_d(group_of.size(), stream);
  upload(perm_d.get(), perm.data(), perm.size(), stream);
  upload(rperm_d.get(), rperm.data(), rperm.size(), stream);
  upload(group_of_d.get(), group_of.data(), group_of.size(), stream);
  upload(diag_d.get(), diag.data(), diag.size(), stream);
  DeviceArray<T> w(static_cast<size_t>(n * k), stream);
  permute_columns(w0.get(), n, k, rperm_d.get(), w.get(), stream);
  w0.reset();
  timer.mark();

  DeviceArray<T> l(static_cast<size_t>(k * k), stream);
  const Factorization factor = factorize(h, k, rperm_d.get(), diag_d.get(),
                                         diag_sum / static_cast<double>(k), config, l.get(),
                                         stream, log);
  stats.damp_percent_used = factor.damp_percent;
  stats.damp_retries = factor.retries;
  stats.fell_back_to_rtn = factor.ok ? 0 : 1;
  stats.dead_columns = dead_count;
  const bool feed_errors = factor.ok;
  if (!factor.ok) {
    log(GPTQ_LOG_WARN, "the Hessian could not be factorized even with damp_percent " +
                           std::to_string(factor.damp_percent) +
                           "; falling back to round-to-nearest for this layer");
    l.reset();
  } else if (factor.retries > 0) {
    log(GPTQ_LOG_WARN, "Cholesky factorization needed damp_percent raised to " +
                           std::to_string(factor.damp_percent) + " after " +
                           std::to_string(factor.retries) + " failed attempts");
  }

  // The inverses of L's diagonal tiles, one per block, in one batched solve.
  const int64_t block = std::min<int64_t>(config.block_size, k);
  const int64_t blocks = (k + block - 1) / block;
  if (block_kernel_shared_bytes<T>(block) > device_info().shared_per_block_optin)
    throw PluginError(GPTQ_ERR_UNSUPPORTED,
                      "gptq_quantize: block_size " + std::to_string(block) + " needs " +
                          std::to_string(block_kernel_shared_bytes<T>(block)) +
                          " bytes of shared memory per thread block; this GPU allows " +
                          std::to_string(device_info().shared_per_block_optin) +
                          " (use a smaller block_size, or the CPU backend)");
  cublasHandle_t blas = blas_handle(stream);
  DeviceArray<T> tiles(feed_errors ? static_cast<size_t>(blocks * block * block) : 0, stream);
  DeviceArray<T> inverses(feed_errors ? static_cast<size_t>(blocks * block * block) : 0, stream);
  if (feed_errors) {
    gather_diagonal_tiles(l.get(), k, block, blocks, tiles.get(), inverses.get(), stream);
    std::vector<T *> pointers(static_cast<size_t>(2 * blocks));
    for (int64_t b = 0; b < blocks; ++b) {
      pointers[b] = tiles.get() + b * block * block;
      pointers[blocks + b] = inverses.get() + b * block * block;
    }
    DeviceArray<T *> pointers_d(pointers.size(), stream);
    upload(pointers_d.get(), pointers.data(), pointers.size(), stream);
    trsm_batched(blas, static_cast<int>(block), pointers_d.get(), pointers_d.get() + blocks,
                 static_cast<int>(blocks));
  }
  timer.mark();

  const bool dynamic_groups = grouped && !static_groups;
  const int64_t max_span = std::min<int64_t>(k, block + (dynamic_groups ? group_size : 0));
  DeviceArray<T> state(static_cast<size_t>(n * max_span), stream);
  // The update accumulated for positions not yet reached, [N, K] row-major
  // in reversed column order like w (column-major: its transpose, K × N).
  DeviceArray<T> pending(feed_errors && k > block ? static_cast<size_t>(n * k) : 0, stream);
  DeviceArray<uint8_t> by_position(static_cast<size_t>(n * k), stream);
  const int64_t loss_tiles = (n + 15) / 16;
  DeviceArray<double> loss_parts(static_cast<size_t>(blocks * loss_tiles), stream);

  BlockKernelArgs<T> args{};
  args.w = w.get();
  args.n = n;
  args.k = k;
  args.state = state.get();
  args.group_size = group_size;
  args.dynamic_groups = dynamic_groups;
  args.group_of = group_of_d.get();
  args.scale = scale.get();
  args.zero = zero.get();
  args.quant = quant;
  args.codes = by_position.get();
  args.u_ld = block;
  const int ni = static_cast<int>(n), ki = static_cast<int>(k);
  // With the debug log, each block kernel is bracketed by events, to tell
  // its time from the cuBLAS updates'.
  Timer kernel_timer(log.debug(), stream);
  for (int64_t i1 = 0, b = 0; i1 < k; i1 += block, ++b) {
    const int64_t i2 = std::min(i1 + block, k);
    const int64_t count = i2 - i1;
    int64_t s_end = i2;
    if (dynamic_groups)
      for (int64_t p = (i1 + group_size - 1) / group_size * group_size; p < i2; p += group_size)
        s_end = std::max(s_end, std::min(k, p + group_size));
    const int64_t span = s_end - i1;
    const int64_t c0 = k - s_end;  // reversed indices of [i1, s_end): [c0, k − i1)

    // state = W_S + pending_S · L_SS⁻¹ (column-major: L_SS⁻ᵀ · pendingᵀ_S),
    // through the inverted tile when S is the block, else a triangular
    // solve on a copy (a group reaches past the block).
    const bool updated = feed_errors && i1 > 0;
    if (updated) {
      if (span == count) {
        gemm(blas, CUBLAS_OP_T, static_cast<int>(count), ni, static_cast<int>(count), T(1),
             inverses.get() + b * block * block, static_cast<int>(block), pending.get() + c0, ki,
             T(0), state.get(), static_cast<int>(span));
      } else {
        check_cuda(cudaMemcpy2DAsync(state.get(), sizeof(T) * span, pending.get() + c0,
                                     sizeof(T) * k, sizeof(T) * span, n, cudaMemcpyDeviceToDevice,
                                     stream),
                   "cudaMemcpy2DAsync");
        trsm_left_lower(blas, CUBLAS_OP_T, static_cast<int>(span), ni, l.get() + c0 + c0 * k, ki,
                        state.get(), static_cast<int>(span));
      }
    }
    args.i1 = i1;
    args.count = count;
    args.s_end = s_end;
    args.span = span;
    args.c0 = c0;
    args.update = updated ? state.get() : nullptr;
    args.u_inv = feed_errors ? inverses.get() + b * block * block : nullptr;
    args.tile_loss = loss_parts.get() + b * loss_tiles;
    kernel_timer.mark();
    launch_block_kernel(args, stream);
    kernel_timer.mark();

    // Right-looking: R_b (w's reversed columns [k − i2, k − i1)) times
    // V[b, later] (L's rows [k − i2, k − i1) by columns [0, k − i2)) added
    // to every later position's pending update.
    if (feed_errors && i2 < k)
      gemm(blas, CUBLAS_OP_T, static_cast<int>(k - i2), ni, static_cast<int>(count), T(1),
           l.get() + (k - i2), ki, w.get() + (k - i2), ki, i1 == 0 ? T(0) : T(1), pending.get(),
           ki);

    if (config.progress != nullptr) {
      sync_stream(stream, "gptq_quantize");
      if (config.progress(i2, k, config.progress_user_data) != 0)
        throw PluginError(GPTQ_ERR_CANCELLED, "gptq_quantize: cancelled by the progress "
                                              "callback after " +
                                                  std::to_string(i2) + " of " +
                                                  std::to_string(k) + " columns");
    }
  }
  timer.mark();

  // Results to the host: codes in each row's original column order.
  DeviceArray<uint8_t> codes(static_cast<size_t>(n * k), stream);
  unpermute_codes(by_position.get(), n, k, perm_d.get(), codes.get(), stream);
  std::vector<T> scale_h(static_cast<size_t>(groups * n)), zero_h(scale_h.size());
  std::vector<double> loss_h(static_cast<size_t>(blocks * loss_tiles));
  download(out.codes, codes.get(), static_cast<size_t>(n * k), stream);
  download(scale_h.data(), scale.get(), scale_h.size(), stream);
  download(zero_h.data(), zero.get(), zero_h.size(), stream);
  download(loss_h.data(), loss_parts.get(), loss_h.size(), stream);
  timer.mark();
  sync_stream(stream, "gptq_quantize");

  double loss = 0.0;
  for (double part : loss_h) loss += part;  // block by block, tiles in row order, as the CPU
  stats.loss = loss;
  for (int64_t p = 0; p < k; ++p) out.g_idx[perm[p]] = group_of[p];
  out.act_order = 0;
  for (int64_t j = 0; j < k; ++j)
    if (out.g_idx[j] != static_cast<int32_t>(j / group_size)) out.act_order = 1;
  for (size_t i = 0; i < scale_h.size(); ++i) {
    const uint16_t bits = gptq::float_to_half(static_cast<float>(scale_h[i]));
    if (!gptq::half_is_finite(bits))
      throw PluginError(GPTQ_ERR_UNSUPPORTED,
                        "gptq_quantize: a group's scale " +
                            std::to_string(static_cast<double>(scale_h[i])) +
                            " exceeds the fp16 range that checkpoints store scales in (weights of "
                            "magnitude above ~65504·2^bits)");
    out.scales[i] = bits;
    out.zeros[i] = static_cast<int32_t>(zero_h[i]);
  }
  if (log.debug()) {
    double kernels = 0;
    for (size_t e = 0; e + 1 < static_cast<size_t>(2 * blocks); e += 2) kernels += kernel_timer.ms(e, e + 1);
    const double total =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    log(GPTQ_LOG_DEBUG, "cuda solve " + std::to_string(n) + "x" + std::to_string(k) +
                            ": prepare " + std::to_string(timer.ms(0, 1)) + " ms, factor " +
                            std::to_string(timer.ms(1, 2)) + " ms, block loop " +
                            std::to_string(timer.ms(2, 3)) + " ms (block kernels " +
                            std::to_string(kernels) + " ms), results " +
                            std::to_string(timer.ms(3, 4)) + " ms, total " +
                            std::to_string(total * 1e3) + " ms");
  }
}

}  // namespace

void solve_on_device(const DeviceHessian &h, const void *w, gptq_dtype dtype, bool w_on_device,
                     const gptq_config &config, gptq_plugin_qtensor &out,
                     gptq_quant_stats &stats) {
  if (h.precision() == GPTQ_PRECISION_F64)
    solve<double>(h, w, dtype, w_on_device, config, out, stats);
  else
    solve<float>(h, w, dtype, w_on_device, config, out, stats);
}

}  // namespace gptq_cuda
