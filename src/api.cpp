// The C boundary: every exported function validates its arguments, calls into
// the backend, and converts any C++ failure into a gptq_status plus the
// thread-local message. Nothing thrown below ever crosses into the caller.
#include <chrono>
#include <cstddef>
#include <cmath>
#include <algorithm>
#include <cstring>
#include <limits>
#include <vector>
#include <new>
#include <string>

#include "backend.h"
#include "checkpoint.h"
#include "config.h"
#include "context.h"
#include "dtype.h"
#include "error.h"
#include "gguf_blocks.h"
#include "gguf_grid.h"
#include "qtensor.h"
#include "qtensor_handle.h"

namespace gptq {
namespace {

// Largest dimension accepted: BLAS and LAPACK take int sizes.
constexpr int64_t kMaxDim = INT32_MAX;

template <typename Body>
gptq_status guarded(const char *where, Body body) {
  try {
    body();
    return GPTQ_OK;
  } catch (const Error &e) {
    set_last_error(e.what());
    return e.status();
  } catch (const std::bad_alloc &) {
    set_last_error(std::string(where) + ": out of memory");
    return GPTQ_ERR_OUT_OF_MEMORY;
  } catch (const std::length_error &) {
    set_last_error(std::string(where) + ": out of memory (allocation size too large)");
    return GPTQ_ERR_OUT_OF_MEMORY;
  } catch (const std::exception &e) {
    set_last_error(std::string(where) + ": internal error: " + e.what());
    return GPTQ_ERR_INTERNAL;
  } catch (...) {
    set_last_error(std::string(where) + ": internal error: unknown exception");
    return GPTQ_ERR_INTERNAL;
  }
}

[[noreturn]] void fail(gptq_status status, const char *where, const std::string &what) {
  throw Error(status, std::string(where) + ": " + what);
}

void require(const void *ptr, const char *where, const char *name) {
  if (ptr == nullptr) fail(GPTQ_ERR_NULL_POINTER, where, std::string(name) + " is NULL");
}

void require_dim(int64_t value, const char *where, const char *name) {
  if (value < 1 || value > kMaxDim)
    fail(GPTQ_ERR_INVALID_SIZE, where,
         std::string(name) + " is " + std::to_string(value) + "; it must be in 1.." +
             std::to_string(kMaxDim));
}

void require_finite(const void *data, gptq_dtype dtype, int64_t rows, int64_t cols,
                    const char *where, const char *name) {
  const int64_t bad = find_non_finite(data, dtype, rows * cols);
  if (bad >= 0)
    fail(GPTQ_ERR_NON_FINITE, where,
         std::string(name) + "[" + std::to_string(bad / cols) + ", " + std::to_string(bad % cols) +
             "] is NaN or Inf");
}

// Largest |x| among count elements (x already known finite).
double max_abs(const void *x, gptq_dtype dtype, int64_t count) {
  std::vector<float> chunk(4096);
  double m = 0.0;
  const size_t size = dtype_size(dtype, "max_abs");
  for (int64_t start = 0; start < count; start += 4096) {
    const int64_t n = std::min<int64_t>(4096, count - start);
    convert_to_float(static_cast<const char *>(x) + start * size, dtype, n, chunk.data());
    float chunk_max = 0.0f;
    for (int64_t i = 0; i < n; ++i) chunk_max = std::max(chunk_max, std::abs(chunk[i]));
    m = std::max(m, static_cast<double>(chunk_max));
  }
  return m;
}

// Refuses a batch that could overflow the Hessian's precision. H is a
// sample-weighted mean of the batches' own means (2/samples)·xᵀx, so it stays
// finite if each batch's mean and raw sum xᵀx (which BLAS forms before
// scaling) do: |(xᵀx)_ij| <= rows·max|x|². Only absurd inputs (|x| ~ 1e17 in
// F32) are refused.
void require_hessian_fits(const gptq_ctx &ctx, double x_max, int64_t rows, int64_t samples,
                          const char *where) {
  const bool f32 = ctx.config.precision == GPTQ_PRECISION_F32;
  const double limit = f32 ? static_cast<double>(std::numeric_limits<float>::max())
                           : std::numeric_limits<double>::max();
  const double raw = static_cast<double>(rows) * x_max * x_max;
  const double mean = 2.0 * raw / static_cast<double>(samples);
  if (!(std::max(raw, mean) < 0.25 * limit))
    fail(GPTQ_ERR_NON_FINITE, where,
         "x holds values up to " + std::to_string(x_max) + ", which would overflow the " +
             (f32 ? "F32 Hessian (use GPTQ_PRECISION_F64)" : "F64 Hessian"));
}

// A Hessian to merge into ctx must be finite and, for an F32 context, within
// float range: merged values are convex combinations of the old ones and
// these, so that is exactly what keeps the context's Hessian finite.
void require_fits_precision(const gptq_ctx &ctx, const double *h, int64_t n, const char *where,
                            const char *name) {
  const bool f32 = ctx.config.precision == GPTQ_PRECISION_F32;
  const double limit = f32 ? static_cast<double>(std::numeric_limits<float>::max())
                           : std::numeric_limits<double>::max();
  for (int64_t i = 0; i < n * n; ++i)
    if (!(std::abs(h[i]) <= limit))
      fail(GPTQ_ERR_NON_FINITE, where,
           std::string(name) + "[" + std::to_string(i / n) + ", " + std::to_string(i % n) + "] is " +
               (std::isfinite(h[i])
                    ? "beyond the float range of this F32 context (use GPTQ_PRECISION_F64)"
                    : std::string("NaN or Inf")));
}

// Refuses NaN/Inf in a [rows, cols] buffer wherever it lives, naming the
// first one, and returns its largest magnitude.
double checked_max_abs(Backend &backend, Memory memory, void *stream, const void *data,
                       gptq_dtype dtype, int64_t rows, int64_t cols, const char *where,
                       const char *name) {
  if (memory == Memory::kHost) {
    require_finite(data, dtype, rows, cols, where, name);
    return max_abs(data, dtype, rows * cols);
  }
  const ScanResult r = backend.scan_device(data, dtype, rows * cols, stream);
  if (r.first_non_finite >= 0)
    fail(GPTQ_ERR_NON_FINITE, where,
         std::string(name) + "[" + std::to_string(r.first_non_finite / cols) + ", " +
             std::to_string(r.first_non_finite % cols) + "] is NaN or Inf");
  return r.max_abs;
}

// With memory AUTO, x decides where the call's buffers are; bias and y must
// be in the same place (one kernel reads and writes them all).
void require_same_memory(Backend &backend, Memory memory, const void *p, const char *where,
                         const char *name) {
  if (p != nullptr && backend.has_device_memory() && backend.memory_of(p) != memory)
    fail(GPTQ_ERR_UNSUPPORTED, where,
         std::string(name) + " is in " + (memory == Memory::kDevice ? "host" : "device") +
             " memory but x is in " + (memory == Memory::kDevice ? "device" : "host") +
             " memory; all of a matmul's buffers must be in one place");
}

gptq_status import_checked(const char *where, int64_t out_features, int64_t in_features,
                           int32_t bits, int32_t group_size, gptq_checkpoint_format format,
                           const gptq_checkpoint_tensors *t, const gptq_import_options *opts,
                           gptq_qtensor **out);

gptq_status matmul_checked(const char *where, const gptq_qtensor *q, const void *x,
                           gptq_dtype dtype, int64_t rows, int64_t cols, const void *bias, void *y,
                           int64_t y_len, const gptq_matmul_options *opts);

}  // namespace
}  // namespace gptq

using namespace gptq;

extern "C" {

GPTQ_API uint32_t gptq_version_number(void) { return GPTQ_VERSION_NUMBER; }

GPTQ_API const char *gptq_version_string(void) {
#define GPTQ_STR2(x) #x
#define GPTQ_STR(x) GPTQ_STR2(x)
  return GPTQ_STR(GPTQ_VERSION_MAJOR) "." GPTQ_STR(GPTQ_VERSION_MINOR) "." GPTQ_STR(
      GPTQ_VERSION_PATCH);
#undef GPTQ_STR
#undef GPTQ_STR2
}

GPTQ_API gptq_status gptq_ctx_create(int64_t out_features, int64_t in_features,
                                     const gptq_config *cfg, gptq_ctx **out) {
  const char *where = "gptq_ctx_create";
  if (out != nullptr) *out = nullptr;
  return guarded(where, [&] {
    require(out, where, "out");
    require_dim(out_features, where, "out_features");
    require_dim(in_features, where, "in_features");
    gptq_config config = read_config(cfg, where);
    const GgufGrid *gguf = gguf_grid(config.grid);
    if (gguf != nullptr && in_features % gguf->block != 0)
      fail(GPTQ_ERR_INVALID_SIZE, where,
           "in_features is " + std::to_string(in_features) + ", not a multiple of the " +
               gguf->name + " block of " + std::to_string(gguf->block) + " columns");
    // GGUF grids are solved on the CPU: AUTO means the CPU for them.
    if (gguf != nullptr && config.backend == GPTQ_BACKEND_AUTO) config.backend = GPTQ_BACKEND_CPU;
    auto ctx = std::make_unique<gptq_ctx>();
    ctx->out_features = out_features;
    ctx->in_features = in_features;
    ctx->config = config;
    ctx->logger.fn = config.log;
    ctx->logger.user_data = config.log_user_data;
    ctx->logger.level = config.log_level;
    ctx->backend = &select_backend(config.backend, ctx->logger, where);
    if (gguf != nullptr && ctx->backend->kind() != GPTQ_BACKEND_CPU)
      fail(GPTQ_ERR_UNSUPPORTED, where,
           std::string("the ") + gguf->name + " grid runs on the CPU backend only, not on " +
               ctx->backend->name());
    if (config.memory == GPTQ_MEMORY_DEVICE && !ctx->backend->has_device_memory())
      fail(GPTQ_ERR_UNSUPPORTED, where,
           std::string("config.memory is GPTQ_MEMORY_DEVICE, but the ") + ctx->backend->name() +
               " backend has no device");
    ctx->hessian = ctx->backend->create_hessian(in_features, config.precision, config.stream);
    *out = ctx.release();
  });
}

GPTQ_API void gptq_ctx_destroy(gptq_ctx *ctx) { delete ctx; }

GPTQ_API gptq_status gptq_add_batch(gptq_ctx *ctx, const void *x, gptq_dtype dtype, int64_t rows,
                                    int64_t cols, int64_t samples) {
  const char *where = "gptq_add_batch";
  return guarded(where, [&] {
    require(ctx, where, "ctx");
    require(x, where, "x");
    dtype_size(dtype, where);
    require_dim(rows, where, "rows");
    if (samples < 1)
      fail(GPTQ_ERR_INVALID_SIZE, where,
           "samples is " + std::to_string(samples) + "; it must be >= 1");
    if (cols != ctx->in_features)
      fail(GPTQ_ERR_SIZE_MISMATCH, where,
           "x has " + std::to_string(cols) + " columns but the layer has in_features " +
               std::to_string(ctx->in_features));
    if (ctx->samples > INT64_MAX - samples)
      fail(GPTQ_ERR_INVALID_SIZE, where, "the sample count would overflow");
    const Memory memory = resolve_memory(ctx->config.memory, x, *ctx->backend, where, "x");
    const double x_max = checked_max_abs(*ctx->backend, memory, ctx->config.stream, x, dtype,
                                         rows, cols, where, "x");
    require_hessian_fits(*ctx, x_max, rows, samples, where);
    const BatchWeights weights = batch_weights(ctx->samples, samples);
    ctx->hessian->add_batch(x, dtype, rows, memory, weights.beta, weights.alpha);
    ctx->samples += samples;
  });
}

GPTQ_API int64_t gptq_ctx_samples(const gptq_ctx *ctx) {
  return ctx == nullptr ? -1 : ctx->samples;
}

GPTQ_API gptq_status gptq_ctx_merge(gptq_ctx *dst, const gptq_ctx *src) {
  const char *where = "gptq_ctx_merge";
  return guarded(where, [&] {
    require(dst, where, "dst");
    require(src, where, "src");
    if (dst->in_features != src->in_features)
      fail(GPTQ_ERR_SIZE_MISMATCH, where,
           "dst has in_features " + std::to_string(dst->in_features) + ", src has " +
               std::to_string(src->in_features));
    if (dst == src) fail(GPTQ_ERR_INVALID_STATE, where, "dst and src are the same context");
    const int64_t samples = src->samples;
    if (samples == 0) return;
    if (dst->samples > INT64_MAX - samples)
      fail(GPTQ_ERR_INVALID_SIZE, where, "the sample count would overflow");
    const int64_t n = src->in_features;
    std::vector<double> h(static_cast<size_t>(n * n));
    src->hessian->export_to(h.data());
    require_fits_precision(*dst, h.data(), n, where, "src's Hessian");
    const MergeWeights weights = merge_weights(dst->samples, samples);
    dst->hessian->merge(h.data(), weights.keep, weights.take);
    dst->samples += samples;
  });
}

GPTQ_API gptq_status gptq_ctx_export_hessian(const gptq_ctx *ctx, double *h, int64_t h_len,
                                             int64_t *samples) {
  const char *where = "gptq_ctx_export_hessian";
  return guarded(where, [&] {
    require(ctx, where, "ctx");
    require(h, where, "h");
    require(samples, where, "samples");
    const int64_t need = ctx->in_features * ctx->in_features;
    if (h_len < need)
      fail(GPTQ_ERR_SIZE_MISMATCH, where,
           "h_len is " + std::to_string(h_len) + "; in_features² = " + std::to_string(need) +
               " elements are needed");
    ctx->hessian->export_to(h);
    *samples = ctx->samples;
  });
}

GPTQ_API gptq_status gptq_ctx_import_hessian(gptq_ctx *ctx, const double *h, int64_t h_len,
                                             int64_t samples) {
  const char *where = "gptq_ctx_import_hessian";
  return guarded(where, [&] {
    require(ctx, where, "ctx");
    require(h, where, "h");
    const int64_t n = ctx->in_features;
    if (h_len != n * n)
      fail(GPTQ_ERR_SIZE_MISMATCH, where,
           "h_len is " + std::to_string(h_len) + " but the layer's Hessian has in_features² = " +
               std::to_string(n * n) + " elements");
    if (samples < 1)
      fail(GPTQ_ERR_INVALID_SIZE, where, "samples is " + std::to_string(samples) + "; it must be >= 1");
    if (ctx->samples > INT64_MAX - samples)
      fail(GPTQ_ERR_INVALID_SIZE, where, "the sample count would overflow");
    require_fits_precision(*ctx, h, n, where, "h");
    const MergeWeights weights = merge_weights(ctx->samples, samples);
    ctx->hessian->merge(h, weights.keep, weights.take);
    ctx->samples += samples;
  });
}

GPTQ_API gptq_status gptq_quantize(gptq_ctx *ctx, const void *w, gptq_dtype dtype, int64_t rows,
                                   int64_t cols, gptq_qtensor **out, gptq_quant_stats *stats) {
  const char *where = "gptq_quantize";
  if (out != nullptr) *out = nullptr;
  return guarded(where, [&] {
    const auto start = std::chrono::steady_clock::now();
    require(ctx, where, "ctx");
    require(w, where, "w");
    require(out, where, "out");
    if (stats != nullptr && stats->struct_size < sizeof(size_t))
      fail(GPTQ_ERR_INVALID_SIZE, where,
           "stats->struct_size is " + std::to_string(stats->struct_size) +
               "; set it to sizeof(gptq_quant_stats)");
    dtype_size(dtype, where);
    if (rows != ctx->out_features || cols != ctx->in_features)
      fail(GPTQ_ERR_SIZE_MISMATCH, where,
           "w is [" + std::to_string(rows) + ", " + std::to_string(cols) +
               "] but the layer is [out_features " + std::to_string(ctx->out_features) +
               ", in_features " + std::to_string(ctx->in_features) + "]");
    if (ctx->samples == 0)
      fail(GPTQ_ERR_INVALID_STATE, where,
           "no calibration data: call gptq_add_batch (or import a Hessian) first");
    const Memory memory = resolve_memory(ctx->config.memory, w, *ctx->backend, where, "w");
    checked_max_abs(*ctx->backend, memory, ctx->config.stream, w, dtype, rows, cols, where, "w");

    QuantizeJob job{w, dtype, memory, rows, ctx->config, ctx->logger};
    gptq_quant_stats full{};
    full.struct_size = sizeof full;
    auto q = std::make_unique<gptq_qtensor>();
    q->data = ctx->backend->quantize(*ctx->hessian, job, full);
    q->backend = ctx->backend;
    q->stream = ctx->config.stream;
    full.backend = ctx->backend->kind();
    full.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (stats != nullptr) {
      const size_t size = stats->struct_size < sizeof full ? stats->struct_size : sizeof full;
      const size_t caller_size = stats->struct_size;
      std::memcpy(stats, &full, size);
      stats->struct_size = caller_size;
    }
    *out = q.release();
  });
}

GPTQ_API void gptq_qtensor_destroy(gptq_qtensor *q) { delete q; }

GPTQ_API gptq_status gptq_qtensor_get_info(const gptq_qtensor *q, gptq_qtensor_info *info) {
  const char *where = "gptq_qtensor_get_info";
  return guarded(where, [&] {
    require(q, where, "q");
    require(info, where, "info");
    info->out_features = q->data.out_features;
    info->in_features = q->data.in_features;
    info->bits = q->data.bits;
    info->group_size = q->data.group_size;
    info->groups = q->data.groups;
    info->act_order = q->data.act_order ? 1 : 0;
  });
}

GPTQ_API gptq_status gptq_qtensor_dequantize(const gptq_qtensor *q, float *out, int64_t out_len) {
  const char *where = "gptq_qtensor_dequantize";
  return guarded(where, [&] {
    require(q, where, "q");
    require(out, where, "out");
    const int64_t need = q->data.out_features * q->data.in_features;
    if (out_len < need)
      fail(GPTQ_ERR_SIZE_MISMATCH, where,
           "out_len is " + std::to_string(out_len) + "; " + std::to_string(need) + " needed");
    dequantize_rows(q->data, 0, q->data.out_features, out);
  });
}

GPTQ_API gptq_status gptq_qtensor_codes(const gptq_qtensor *q, uint8_t *out, int64_t out_len) {
  const char *where = "gptq_qtensor_codes";
  return guarded(where, [&] {
    require(q, where, "q");
    require(out, where, "out");
    const int64_t need = q->data.out_features * q->data.in_features;
    if (out_len < need)
      fail(GPTQ_ERR_SIZE_MISMATCH, where,
           "out_len is " + std::to_string(out_len) + "; " + std::to_string(need) + " needed");
    if (q->data.codes.empty() && q->data.code_source != nullptr)
      q->data.code_source->read_codes(0, q->data.out_features, out);
    else
      std::memcpy(out, q->data.codes.data(), static_cast<size_t>(need));
  });
}

GPTQ_API gptq_status gptq_checkpoint_sizes_for(int64_t out_features, int64_t in_features,
                                               int32_t bits, int32_t group_size,
                                               gptq_checkpoint_sizes *sizes) {
  const char *where = "gptq_checkpoint_sizes_for";
  return guarded(where, [&] {
    require(sizes, where, "sizes");
    *sizes = checkpoint_sizes(out_features, in_features, bits, group_size, where);
  });
}

GPTQ_API gptq_status gptq_qtensor_export(const gptq_qtensor *q, gptq_checkpoint_format format,
                                         const gptq_checkpoint_tensors *t) {
  const char *where = "gptq_qtensor_export";
  return guarded(where, [&] {
    require(q, where, "q");
    require(t, where, "t");
    if (const GgufGrid *gguf = gguf_grid(q->data.grid))
      fail(GPTQ_ERR_UNSUPPORTED, where,
           std::string("the tensor is on the ") + gguf->name +
               " grid, which GPTQ checkpoints cannot hold; use gptq_gguf_export");
    export_checkpoint(q->data, format, *t);
  });
}

GPTQ_API gptq_status gptq_gguf_size(gptq_grid grid, int64_t rows, int64_t cols, int64_t *bytes) {
  const char *where = "gptq_gguf_size";
  return guarded(where, [&] {
    require(bytes, where, "bytes");
    *bytes = gguf_tensor_bytes(static_cast<int32_t>(grid), rows, cols, where);
  });
}

GPTQ_API gptq_status gptq_gguf_export(const gptq_qtensor *q, void *out, int64_t out_len) {
  const char *where = "gptq_gguf_export";
  return guarded(where, [&] {
    require(q, where, "q");
    require(out, where, "out");
    export_gguf(q->data, out, out_len, where);
  });
}

GPTQ_API gptq_status gptq_gguf_dequantize(gptq_grid grid, const void *bytes, int64_t bytes_len,
                                          int64_t rows, int64_t cols, float *out,
                                          int64_t out_len) {
  const char *where = "gptq_gguf_dequantize";
  return guarded(where, [&] {
    require(bytes, where, "bytes");
    require(out, where, "out");
    const int64_t need = gguf_tensor_bytes(static_cast<int32_t>(grid), rows, cols, where);
    if (bytes_len != need)
      fail(GPTQ_ERR_SIZE_MISMATCH, where,
           "bytes_len is " + std::to_string(bytes_len) + "; a [" + std::to_string(rows) + ", " +
               std::to_string(cols) + "] tensor of this grid is " + std::to_string(need) + " bytes");
    if (out_len < rows * cols)
      fail(GPTQ_ERR_SIZE_MISMATCH, where,
           "out_len is " + std::to_string(out_len) + "; " + std::to_string(rows * cols) + " needed");
    dequantize_gguf(static_cast<int32_t>(grid), bytes, rows, cols, out);
  });
}

GPTQ_API void gptq_import_options_default(gptq_import_options *opts) {
  if (opts == nullptr) return;
  std::memset(opts, 0, sizeof *opts);
  opts->struct_size = sizeof *opts;
  opts->backend = GPTQ_BACKEND_AUTO;
  opts->memory = GPTQ_MEMORY_AUTO;
  opts->stream = nullptr;
}

GPTQ_API gptq_status gptq_qtensor_import(int64_t out_features, int64_t in_features, int32_t bits,
                                         int32_t group_size, gptq_checkpoint_format format,
                                         const gptq_checkpoint_tensors *t, gptq_qtensor **out) {
  return import_checked("gptq_qtensor_import", out_features, in_features, bits, group_size,
                        format, t, nullptr, out);
}

GPTQ_API gptq_status gptq_qtensor_import_ex(int64_t out_features, int64_t in_features,
                                            int32_t bits, int32_t group_size,
                                            gptq_checkpoint_format format,
                                            const gptq_checkpoint_tensors *t,
                                            const gptq_import_options *opts, gptq_qtensor **out) {
  return import_checked("gptq_qtensor_import_ex", out_features, in_features, bits, group_size,
                        format, t, opts, out);
}

GPTQ_API gptq_backend gptq_qtensor_backend(const gptq_qtensor *q) {
  return q == nullptr ? GPTQ_BACKEND_AUTO : q->backend->kind();
}

GPTQ_API gptq_grid gptq_qtensor_grid(const gptq_qtensor *q) {
  return q == nullptr ? GPTQ_GRID_GPTQ : static_cast<gptq_grid>(q->data.grid);
}

GPTQ_API void gptq_matmul_options_default(gptq_matmul_options *opts) {
  if (opts == nullptr) return;
  std::memset(opts, 0, sizeof *opts);
  opts->struct_size = sizeof *opts;
  opts->int8_activations = 0;
  opts->num_threads = 0;
  opts->stream = nullptr;
  opts->memory = GPTQ_MEMORY_AUTO;
  opts->out_begin = 0;
  opts->out_end = 0;
}

GPTQ_API gptq_status gptq_matmul_ex(const gptq_qtensor *q, const void *x, gptq_dtype dtype,
                                    int64_t rows, int64_t cols, const void *bias, void *y,
                                    int64_t y_len, const gptq_matmul_options *opts) {
  return matmul_checked(opts == nullptr ? "gptq_matmul" : "gptq_matmul_ex", q, x, dtype, rows, cols,
                        bias, y, y_len, opts);
}

}  // extern "C"

namespace gptq {
namespace {

// A checkpoint buffer in device memory copied into a host vector, when it is
// long enough for the layout; otherwise left as it is, for the size check
// to refuse before anything reads it.
template <typename T>
void copy_to_host_if_complete(Backend &backend, void *stream, T *&data, int64_t &len,
                              int64_t need, std::vector<T> &host) {
  if (data == nullptr || len < need) return;
  host.resize(static_cast<size_t>(need));
  backend.copy_to_host(host.data(), data, sizeof(T) * static_cast<size_t>(need), stream);
  data = host.data();
  len = need;
}

gptq_status import_checked(const char *where, int64_t out_features, int64_t in_features,
                           int32_t bits, int32_t group_size, gptq_checkpoint_format format,
                           const gptq_checkpoint_tensors *t, const gptq_import_options *opts,
                           gptq_qtensor **out) {
  if (out != nullptr) *out = nullptr;
  return guarded(where, [&] {
    require(t, where, "t");
    require(out, where, "out");
    gptq_import_options o;
    gptq_import_options_default(&o);
    if (opts != nullptr) {
      if (opts->struct_size < offsetof(gptq_import_options, backend) + sizeof(gptq_backend))
        fail(GPTQ_ERR_INVALID_CONFIG, where,
             "options->struct_size is " + std::to_string(opts->struct_size) +
                 "; initialize it with gptq_import_options_default()");
      std::memcpy(&o, opts, std::min(opts->struct_size, sizeof o));
      const int backend = static_cast<int>(o.backend);
      if (backend != GPTQ_BACKEND_AUTO && backend != GPTQ_BACKEND_CPU &&
          backend != GPTQ_BACKEND_CUDA)
        fail(GPTQ_ERR_INVALID_CONFIG, where,
             "options->backend " + std::to_string(backend) + " is not a gptq_backend");
    }
    Logger quiet;
    Backend &backend = select_backend(o.backend, quiet, where);
    // The shape is checked before any device buffer is read.
    checkpoint_sizes(out_features, in_features, bits, group_size, where);
    const Memory memory = resolve_memory(o.memory, t->qweight, backend, where, "t->qweight");
    gptq_checkpoint_tensors host = *t;
    std::vector<int32_t> qweight, qzeros, g_idx;
    std::vector<uint16_t> scales;
    if (memory == Memory::kDevice) {
      const gptq_checkpoint_sizes sz =
          checkpoint_sizes(out_features, in_features, bits, group_size, where);
      copy_to_host_if_complete(backend, o.stream, host.qweight, host.qweight_len,
                               sz.qweight_rows * sz.qweight_cols, qweight);
      copy_to_host_if_complete(backend, o.stream, host.qzeros, host.qzeros_len,
                               sz.qzeros_rows * sz.qzeros_cols, qzeros);
      copy_to_host_if_complete(backend, o.stream, host.scales, host.scales_len,
                               sz.scales_rows * sz.scales_cols, scales);
      copy_to_host_if_complete(backend, o.stream, host.g_idx, host.g_idx_len, sz.g_idx_len,
                               g_idx);
    }
    auto q = std::make_unique<gptq_qtensor>();
    q->data = import_checkpoint(out_features, in_features, bits, group_size, format, host);
    q->backend = &backend;
    q->stream = o.stream;
    // An imported tensor is made to be multiplied with: on the CPU its
    // layout is made now, from the packed qweight, and holds its codes (see
    // CodeSource). Other backends get them unpacked, before `host` goes.
    if (!q->prepare_holding_codes()) own_codes(q->data);
    *out = q.release();
  });
}

gptq_status matmul_checked(const char *where, const gptq_qtensor *q, const void *x,
                           gptq_dtype dtype, int64_t rows, int64_t cols, const void *bias, void *y,
                           int64_t y_len, const gptq_matmul_options *opts) {
  return guarded(where, [&] {
    require(q, where, "q");
    require(x, where, "x");
    require(y, where, "y");
    if (!q->data.mins.empty())
      fail(GPTQ_ERR_UNSUPPORTED, where,
           std::string("the tensor is on the ") + gguf_grid(q->data.grid)->name +
               " grid, whose blocks' mins the matmul kernels do not take; dequantize it instead");
    if (!q->data.sub_scales.empty())
      fail(GPTQ_ERR_UNSUPPORTED, where,
           std::string("the tensor is on the ") + gguf_grid(q->data.grid)->name +
               " grid, whose two-level scales the matmul kernels do not take; dequantize it "
               "instead");
    gptq_matmul_options o;
    gptq_matmul_options_default(&o);
    if (opts != nullptr) {
      if (opts->struct_size < sizeof(size_t) + sizeof(int32_t))
        fail(GPTQ_ERR_INVALID_CONFIG, where,
             "options->struct_size is " + std::to_string(opts->struct_size) +
                 "; initialize it with gptq_matmul_options_default()");
      std::memcpy(&o, opts, std::min(opts->struct_size, sizeof o));
      if (o.int8_activations != 0 && o.int8_activations != 1)
        fail(GPTQ_ERR_INVALID_CONFIG, where, "options->int8_activations must be 0 or 1");
      if (o.num_threads < 0)
        fail(GPTQ_ERR_INVALID_CONFIG, where, "options->num_threads must be >= 0");
    }
    const int64_t n = q->data.out_features;
    const int64_t out_end = o.out_end == 0 ? n : o.out_end;
    if (o.out_begin < 0 || o.out_begin >= out_end || out_end > n)
      fail(GPTQ_ERR_INVALID_CONFIG, where,
           "options->out_begin, out_end = " + std::to_string(o.out_begin) + ", " +
               std::to_string(o.out_end) + " is not a range of the tensor's " +
               std::to_string(n) + " output features (0 <= out_begin < out_end <= " +
               std::to_string(n) + ", out_end 0 meaning " + std::to_string(n) + ")");
    MatmulOptions options;
    options.int8_activations = o.int8_activations == 1;
    options.num_threads = o.num_threads;
    options.out_begin = o.out_begin;
    options.out_end = out_end;
    options.stream = o.stream != nullptr ? o.stream : q->stream;
    options.memory = resolve_memory(o.memory, x, *q->backend, where, "x");
    if (o.memory == GPTQ_MEMORY_AUTO) {
      require_same_memory(*q->backend, options.memory, bias, where, "bias");
      require_same_memory(*q->backend, options.memory, y, where, "y");
    }
    dtype_size(dtype, where);
    require_dim(rows, where, "rows");
    if (cols != q->data.in_features)
      fail(GPTQ_ERR_SIZE_MISMATCH, where,
           "x has " + std::to_string(cols) + " columns but the tensor has in_features " +
               std::to_string(q->data.in_features));
    const int64_t need = rows * q->data.out_features;
    if (y_len < need)
      fail(GPTQ_ERR_SIZE_MISMATCH, where,
           "y_len is " + std::to_string(y_len) + "; rows·out_features = " + std::to_string(need) +
               " needed");
    q->backend->matmul(q->data, q->prepared(), x, dtype, rows, bias, y, options);
  });
}
}  // namespace
}  // namespace gptq

extern "C" {

GPTQ_API gptq_status gptq_matmul(const gptq_qtensor *q, const void *x, gptq_dtype dtype,
                                 int64_t rows, int64_t cols, const void *bias, void *y,
                                 int64_t y_len) {
  return gptq_matmul_ex(q, x, dtype, rows, cols, bias, y, y_len, nullptr);
}

}  // extern "C"
