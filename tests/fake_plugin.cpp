// Fake backend plugins for tests/test_backend_plugin.cpp: plain C++, no CUDA,
// speaking src/plugin_abi.h so that the core's loader and adapter can be
// tested end to end on any machine. One source, several modules (see
// meson.build), chosen by defines:
//   FAKE_ABI_VERSION=n    declares ABI n
//   FAKE_NO_ENTRY         exports no entry symbol
//   FAKE_PROBE_FAILS      probe fails with a CUDA-like message
//   FAKE_INCOMPLETE       leaves quantize, weights_* and matmul NULL
// The complete variant does everything with trivial host code: the Hessian
// in double, round-to-nearest "quantization" (with sentinel stats, so a test
// can see they came from here), dequantize-then-multiply matmul. At run time
// FAKE_PLUGIN_SHORT_TABLE=1 makes it declare a table that ends before
// quantize, and FAKE_PLUGIN_BAD_GIDX=1 makes quantize return an invalid g_idx.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "half.h"
#include "plugin_abi.h"

#ifndef FAKE_ABI_VERSION
#define FAKE_ABI_VERSION GPTQ_PLUGIN_ABI_VERSION
#endif

#define FAKE_EXPORT extern "C" __attribute__((visibility("default")))

struct gptq_plugin_hessian {
  int64_t n;
  bool f32;
  std::vector<double> h;  // full row-major, rounded to float when f32
};

struct gptq_plugin_weights {
  std::vector<float> w;  // dequantized [N, K]
};

namespace {

std::atomic<int> probe_calls{0};

int32_t fail(int32_t status, char *msg, size_t size, const char *text) {
  std::snprintf(msg, size, "%s", text);
  return status;
}

double read(const void *x, gptq_dtype dtype, int64_t i) {
  switch (dtype) {
    case GPTQ_DTYPE_F32: return static_cast<const float *>(x)[i];
    case GPTQ_DTYPE_F16: return gptq::half_to_float(static_cast<const uint16_t *>(x)[i]);
    case GPTQ_DTYPE_BF16: return gptq::bf16_to_float(static_cast<const uint16_t *>(x)[i]);
  }
  return 0;
}

double rounded(const gptq_plugin_hessian &h, double v) {
  return h.f32 ? static_cast<double>(static_cast<float>(v)) : v;
}

int32_t probe(char *msg, size_t size) {
  ++probe_calls;
#ifdef FAKE_PROBE_FAILS
  return fail(GPTQ_ERR_BACKEND_UNAVAILABLE, msg, size,
              "cudaGetDeviceCount failed: cudaErrorNoDevice: no CUDA-capable device is detected "
              "(fake)");
#else
  return fail(GPTQ_OK, msg, size, "fake device for tests");
#endif
}

int32_t hessian_create(int64_t dim, gptq_precision precision, gptq_plugin_hessian **out, char *,
                       size_t) {
  *out = new gptq_plugin_hessian{dim, precision == GPTQ_PRECISION_F32,
                                 std::vector<double>(static_cast<size_t>(dim * dim), 0.0)};
  return GPTQ_OK;
}

void hessian_destroy(gptq_plugin_hessian *h) { delete h; }

int32_t hessian_add_batch(gptq_plugin_hessian *h, const void *x, gptq_dtype dtype, int64_t rows,
                          int32_t memory, double beta, double alpha, char *msg, size_t size) {
  if (memory != GPTQ_PLUGIN_MEMORY_HOST)
    return fail(GPTQ_ERR_UNSUPPORTED, msg, size, "fake plugin: host memory only");
  const int64_t n = h->n;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t r = 0; r < rows; ++r) s += read(x, dtype, r * n + i) * read(x, dtype, r * n + j);
      double &d = h->h[i * n + j];
      d = rounded(*h, beta * d + alpha * s);
    }
  return GPTQ_OK;
}

int32_t hessian_merge(gptq_plugin_hessian *h, const double *src, double keep, double take, char *,
                      size_t) {
  for (size_t i = 0; i < h->h.size(); ++i) h->h[i] = rounded(*h, keep * h->h[i] + take * src[i]);
  return GPTQ_OK;
}

int32_t hessian_export(const gptq_plugin_hessian *h, double *dst, char *, size_t) {
  std::copy(h->h.begin(), h->h.end(), dst);
  return GPTQ_OK;
}

// Round-to-nearest with the documented group parameters (no MSE search).
int32_t quantize(const gptq_plugin_hessian *h, const void *w, gptq_dtype dtype, int32_t,
                 const gptq_config *config, gptq_plugin_qtensor *out, gptq_quant_stats *stats,
                 char *msg, size_t size) {
  const int64_t n = out->out_features, k = out->in_features;
  if (k != h->n) return fail(GPTQ_ERR_INTERNAL, msg, size, "fake plugin: dim mismatch");
  if (config->progress != nullptr && config->progress(0, k, config->progress_user_data) != 0)
    return fail(GPTQ_ERR_CANCELLED, msg, size, "fake plugin: cancelled by the progress callback");
  const int32_t maxq = (1 << out->bits) - 1;
  const int64_t gs = out->group_size < 0 ? k : out->group_size;
  for (int64_t j = 0; j < k; ++j) out->g_idx[j] = static_cast<int32_t>(j / gs);
  for (int64_t g = 0; g < out->groups; ++g)
    for (int64_t r = 0; r < n; ++r) {
      double lo = 0, hi = 0;
      const int64_t j0 = g * gs, j1 = std::min(k, j0 + gs);
      for (int64_t j = j0; j < j1; ++j) {
        lo = std::min(lo, read(w, dtype, r * k + j));
        hi = std::max(hi, read(w, dtype, r * k + j));
      }
      if (config->sym) {
        hi = std::max(-lo, hi);
        if (lo < 0) lo = -hi;
      }
      if (lo == 0 && hi == 0) lo = -1, hi = 1;
      const float scale = static_cast<float>((hi - lo) / maxq);
      const int32_t zero = config->sym ? (maxq + 1) / 2 : static_cast<int32_t>(std::nearbyint(-lo / scale));
      out->scales[g * n + r] = gptq::float_to_half(scale);
      out->zeros[g * n + r] = zero;
      for (int64_t j = j0; j < j1; ++j) {
        const double q = std::nearbyint(read(w, dtype, r * k + j) / scale) + zero;
        out->codes[r * k + j] = static_cast<uint8_t>(std::min<double>(maxq, std::max(0.0, q)));
      }
    }
  out->act_order = 0;
  if (std::getenv("FAKE_PLUGIN_BAD_GIDX") != nullptr) out->g_idx[0] = static_cast<int32_t>(out->groups);
  stats->loss = 42.5;  // sentinels: the test checks they arrive
  stats->damp_percent_used = config->damp_percent;
  stats->damp_retries = 3;
  stats->fell_back_to_rtn = 1;
  stats->dead_columns = 7;
  if (config->log != nullptr && config->log_level <= GPTQ_LOG_INFO)
    config->log(GPTQ_LOG_INFO, "fake plugin: quantized by round-to-nearest", config->log_user_data);
  return GPTQ_OK;
}

int32_t weights_prepare(const gptq_plugin_qtensor *q, gptq_plugin_weights **out, char *, size_t) {
  const int64_t n = q->out_features, k = q->in_features;
  auto *p = new gptq_plugin_weights{std::vector<float>(static_cast<size_t>(n * k))};
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = 0; j < k; ++j) {
      const int64_t g = q->g_idx[j];
      p->w[r * k + j] = gptq::half_to_float(q->scales[g * n + r]) *
                        (static_cast<float>(q->codes[r * k + j]) - static_cast<float>(q->zeros[g * n + r]));
    }
  *out = p;
  return GPTQ_OK;
}

void weights_destroy(gptq_plugin_weights *w) { delete w; }

int32_t matmul(const gptq_plugin_weights *weights, const gptq_plugin_qtensor *q, const void *x,
               gptq_dtype dtype, int64_t rows, const void *bias, void *y, int32_t,
               const gptq_plugin_matmul_options *, char *msg, size_t size) {
  if (dtype != GPTQ_DTYPE_F32)
    return fail(GPTQ_ERR_UNSUPPORTED, msg, size, "fake plugin: matmul supports only F32");
  const int64_t n = q->out_features, k = q->in_features;
  const float *xf = static_cast<const float *>(x);
  float *yf = static_cast<float *>(y);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < n; ++o) {
      float s = bias != nullptr ? static_cast<const float *>(bias)[o] : 0.0f;
      for (int64_t j = 0; j < k; ++j) s += xf[r * k + j] * weights->w[o * k + j];
      yf[r * n + o] = s;
    }
  return GPTQ_OK;
}

gptq_plugin_v1 make_table() {
  gptq_plugin_v1 t{};
  t.struct_size = sizeof t;
  t.abi_version = FAKE_ABI_VERSION;
  t.name = "cuda";
  t.probe = probe;
  t.hessian_create = hessian_create;
  t.hessian_destroy = hessian_destroy;
  t.hessian_add_batch = hessian_add_batch;
  t.hessian_merge = hessian_merge;
  t.hessian_export = hessian_export;
#ifndef FAKE_INCOMPLETE
  t.quantize = quantize;
  t.weights_prepare = weights_prepare;
  t.weights_destroy = weights_destroy;
  t.matmul = matmul;
#else
  (void)quantize, (void)weights_prepare, (void)weights_destroy, (void)matmul;
#endif
  if (std::getenv("FAKE_PLUGIN_SHORT_TABLE") != nullptr)
    t.struct_size = offsetof(gptq_plugin_v1, quantize);
  return t;
}

}  // namespace

// How often the loader probed: the test reads it to check the once-per-process cache.
FAKE_EXPORT int fake_plugin_probe_calls(void) { return probe_calls.load(); }

#ifndef FAKE_NO_ENTRY
FAKE_EXPORT const gptq_plugin_v1 *gptq_backend_plugin_entry(void) {
#else
// A table under the wrong name: the loader must not find it.
FAKE_EXPORT const gptq_plugin_v1 *gptq_backend_plugin_entry_misspelt(void) {
#endif
  static const gptq_plugin_v1 table = make_table();
  return &table;
}
