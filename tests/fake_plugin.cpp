// Fake backend plugins for tests/test_backend_plugin.cpp: plain C++, no CUDA,
// speaking src/plugin_abi.h so that the core's loader and adapter can be
// tested end to end on any machine. One source, several modules (see
// meson.build), chosen by defines:
//   FAKE_ABI_VERSION=n    declares ABI n
//   FAKE_NO_ENTRY         exports no entry symbol
//   FAKE_PROBE_FAILS      probe fails with a CUDA-like message
//   FAKE_INCOMPLETE       leaves quantize, weights_* and matmul NULL
// The complete variant does everything with plain host code: the Hessian in
// double, GPTQ as the reference writes it (an independent implementation,
// so the loader's self-check against the CPU backend passes), dequantize-
// then-multiply matmul. At run time FAKE_PLUGIN_SHORT_TABLE=1 makes it
// declare a table that ends before quantize, FAKE_PLUGIN_BAD_GIDX=K makes
// quantize return an invalid g_idx for layers of K columns, and
// FAKE_PLUGIN_WRONG_CODES / FAKE_PLUGIN_WRONG_MATMUL make it compute wrongly
// (the self-check must refuse it).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstdint>
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

int32_t hessian_create(int64_t dim, gptq_precision precision, void *, gptq_plugin_hessian **out,
                       char *, size_t) {
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

// Cholesky A = L·Lᵀ of a symmetric positive definite row-major matrix, in
// place (lower triangle); false if it is not positive definite.
bool cholesky(std::vector<double> &a, int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    double d = a[j * n + j];
    for (int64_t p = 0; p < j; ++p) d -= a[j * n + p] * a[j * n + p];
    if (!(d > 0)) return false;
    a[j * n + j] = std::sqrt(d);
    for (int64_t i = j + 1; i < n; ++i) {
      double v = a[i * n + j];
      for (int64_t p = 0; p < j; ++p) v -= a[i * n + p] * a[j * n + p];
      a[i * n + j] = v / a[j * n + j];
    }
  }
  return true;
}

// The upper Cholesky factor U of H⁻¹ (H⁻¹ = UᵀU), computed the textbook way
// the reference does: invert H through its Cholesky factor, then factor the
// inverse.
bool inverse_factor(std::vector<double> h, int64_t n, std::vector<double> &u) {
  if (!cholesky(h, n)) return false;
  // L⁻¹ column by column, then H⁻¹ = L⁻ᵀ·L⁻¹.
  std::vector<double> linv(static_cast<size_t>(n * n), 0.0);
  for (int64_t c = 0; c < n; ++c)
    for (int64_t i = c; i < n; ++i) {
      double v = i == c ? 1.0 : 0.0;
      for (int64_t p = c; p < i; ++p) v -= h[i * n + p] * linv[p * n + c];
      linv[i * n + c] = v / h[i * n + i];
    }
  std::vector<double> inv(static_cast<size_t>(n * n));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double v = 0;
      for (int64_t p = std::max(i, j); p < n; ++p) v += linv[p * n + i] * linv[p * n + j];
      inv[i * n + j] = v;
    }
  // inv = L·Lᵀ, so U = Lᵀ is upper with UᵀU = inv.
  if (!cholesky(inv, n)) return false;
  u.assign(static_cast<size_t>(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = i; j < n; ++j) u[i * n + j] = inv[j * n + i];
  return true;
}

// Scale and zero of one row over values v[0..count), as gptq.h documents
// (no MSE search).
void group_params(const double *v, int64_t count, int64_t stride, int32_t maxq, bool sym,
                  double &scale, double &zero) {
  double lo = 0, hi = 0;
  for (int64_t j = 0; j < count; ++j) {
    lo = std::min(lo, v[j * stride]);
    hi = std::max(hi, v[j * stride]);
  }
  if (sym) {
    hi = std::max(-lo, hi);
    if (lo < 0) lo = -hi;
  }
  if (lo == 0 && hi == 0) lo = -1, hi = 1;
  scale = (hi - lo) / maxq;
  zero = sym ? (maxq + 1) / 2.0 : std::nearbyint(-lo / scale);
}

// GPTQ the way the reference writes it: column by column in lazy blocks, in
// double, with an explicit inverse, as an independent implementation the
// loader's self-check compares with the CPU backend. FAKE_PLUGIN_WRONG_CODES
// makes it return wrong codes; FAKE_PLUGIN_BAD_GIDX=K an invalid g_idx for
// layers of K input columns.
int32_t quantize(const gptq_plugin_hessian *h, const void *w_in, gptq_dtype dtype, int32_t,
                 const gptq_config *config, gptq_plugin_qtensor *out, gptq_quant_stats *stats,
                 char *msg, size_t size) {
  const int64_t n = out->out_features, k = out->in_features;
  if (k != h->n) return fail(GPTQ_ERR_INTERNAL, msg, size, "fake plugin: dim mismatch");
  if (config->mse) return fail(GPTQ_ERR_UNSUPPORTED, msg, size, "fake plugin: no MSE search");
  const int32_t maxq = (1 << out->bits) - 1;
  const bool sym = config->sym != 0;
  const bool grouped = out->group_size > 0;
  const int64_t gs = grouped ? out->group_size : k;
  const bool static_groups = grouped && config->static_groups;
  std::vector<double> w(static_cast<size_t>(n * k)), hm(h->h);
  for (int64_t i = 0; i < n * k; ++i) w[i] = read(w_in, dtype, i);
  std::vector<double> scale(static_cast<size_t>(out->groups * n)), zero(scale.size());
  if (!grouped)
    for (int64_t r = 0; r < n; ++r) group_params(&w[r * k], k, 1, maxq, sym, scale[r], zero[r]);
  int64_t dead = 0;
  for (int64_t j = 0; j < k; ++j)
    if (hm[j * k + j] == 0) {
      hm[j * k + j] = 1;
      for (int64_t r = 0; r < n; ++r) w[r * k + j] = 0;
      ++dead;
    }
  if (static_groups)
    for (int64_t g = 0; g < out->groups; ++g)
      for (int64_t r = 0; r < n; ++r)
        group_params(&w[r * k + g * gs], std::min(gs, k - g * gs), 1, maxq, sym,
                     scale[g * n + r], zero[g * n + r]);
  std::vector<int64_t> perm(static_cast<size_t>(k));
  for (int64_t j = 0; j < k; ++j) perm[j] = j;
  if (config->act_order)
    std::stable_sort(perm.begin(), perm.end(),
                     [&](int64_t a, int64_t b) { return hm[a * k + a] > hm[b * k + b]; });
  std::vector<double> wp(w.size()), hp(hm.size());
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < k; ++c) wp[r * k + c] = w[r * k + perm[c]];
  double mean = 0;
  for (int64_t j = 0; j < k; ++j) mean += hm[j * k + j];
  mean /= k;
  for (int64_t a = 0; a < k; ++a)
    for (int64_t b = 0; b < k; ++b) hp[a * k + b] = hm[perm[a] * k + perm[b]];
  std::vector<double> u;
  double damp = config->damp_percent;
  int retries = 0;
  bool ok = false;
  for (;;) {
    std::vector<double> damped(hp);
    for (int64_t j = 0; j < k; ++j) damped[j * k + j] += damp * mean;
    if (inverse_factor(damped, k, u)) {
      ok = true;
      break;
    }
    ++retries;
    if (!(config->damp_increment > 0) || !(damp + config->damp_increment < 1)) break;
    damp += config->damp_increment;
  }
  if (!ok) {
    u.assign(static_cast<size_t>(k * k), 0.0);
    for (int64_t j = 0; j < k; ++j) u[j * k + j] = 1;
  }
  const bool wrong = std::getenv("FAKE_PLUGIN_WRONG_CODES") != nullptr;
  std::vector<int32_t> group_of(static_cast<size_t>(k));
  double loss = 0;
  const int64_t block = config->block_size;
  for (int64_t i1 = 0; i1 < k; i1 += block) {
    const int64_t i2 = std::min(k, i1 + block);
    std::vector<double> start(wp);  // block-start weights, for group parameters
    std::vector<double> err(static_cast<size_t>(n * (i2 - i1)));
    for (int64_t p = i1; p < i2; ++p) {
      const int64_t g = static_groups ? perm[p] / gs : p / gs;
      group_of[p] = static_cast<int32_t>(g);
      if (grouped && !static_groups && p % gs == 0)
        for (int64_t r = 0; r < n; ++r)
          group_params(&start[r * k + p], std::min(gs, k - p), 1, maxq, sym, scale[g * n + r],
                       zero[g * n + r]);
      const double d = ok ? u[p * k + p] : 1.0;
      for (int64_t r = 0; r < n; ++r) {
        const double s = scale[g * n + r], z = zero[g * n + r];
        const double v = wp[r * k + p];
        double c = std::min<double>(maxq, std::max(0.0, std::nearbyint(v / s) + z));
        out->codes[r * k + perm[p]] = static_cast<uint8_t>(wrong ? maxq - c : c);
        const double e = (v - s * (c - z)) / d;
        loss += e * e / 2;
        err[r * (i2 - i1) + (p - i1)] = e;
        if (ok)
          for (int64_t t = p + 1; t < i2; ++t) wp[r * k + t] -= e * u[p * k + t];
      }
    }
    if (ok)
      for (int64_t r = 0; r < n; ++r)
        for (int64_t t = i2; t < k; ++t) {
          double v = 0;
          for (int64_t p = i1; p < i2; ++p) v += err[r * (i2 - i1) + (p - i1)] * u[p * k + t];
          wp[r * k + t] -= v;
        }
  }
  out->act_order = 0;
  for (int64_t p = 0; p < k; ++p) out->g_idx[perm[p]] = group_of[p];
  for (int64_t j = 0; j < k; ++j) out->act_order |= out->g_idx[j] != j / gs;
  for (size_t i = 0; i < scale.size(); ++i) {
    out->scales[i] = gptq::float_to_half(static_cast<float>(scale[i]));
    out->zeros[i] = static_cast<int32_t>(zero[i]);
  }
  const char *bad = std::getenv("FAKE_PLUGIN_BAD_GIDX");
  if (bad != nullptr && std::atoll(bad) == k) out->g_idx[0] = static_cast<int32_t>(out->groups);
  stats->loss = loss;
  stats->damp_percent_used = damp;
  stats->damp_retries = retries;
  stats->fell_back_to_rtn = ok ? 0 : 1;
  stats->dead_columns = dead;
  if (config->progress != nullptr && config->progress(k, k, config->progress_user_data) != 0)
    return fail(GPTQ_ERR_CANCELLED, msg, size, "fake plugin: cancelled by the progress callback");
  if (config->log != nullptr && config->log_level <= GPTQ_LOG_INFO)
    config->log(GPTQ_LOG_INFO, "fake plugin: quantized", config->log_user_data);
  return GPTQ_OK;
}

int32_t weights_prepare(const gptq_plugin_qtensor *q, void *, gptq_plugin_weights **out, char *,
                        size_t) {
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

void write(void *y, gptq_dtype dtype, int64_t i, float v) {
  switch (dtype) {
    case GPTQ_DTYPE_F32: static_cast<float *>(y)[i] = v; break;
    case GPTQ_DTYPE_F16: static_cast<uint16_t *>(y)[i] = gptq::float_to_half(v); break;
    case GPTQ_DTYPE_BF16: static_cast<uint16_t *>(y)[i] = gptq::float_to_bf16(v); break;
  }
}

// Dequantize-then-multiply in float; FAKE_PLUGIN_WRONG_MATMUL scales the
// result by 1.01.
int32_t matmul(const gptq_plugin_weights *weights, const gptq_plugin_qtensor *q, const void *x,
               gptq_dtype dtype, int64_t rows, const void *bias, void *y, int32_t memory, void *,
               const gptq_plugin_matmul_options *, char *msg, size_t size) {
  if (memory != GPTQ_PLUGIN_MEMORY_HOST)
    return fail(GPTQ_ERR_UNSUPPORTED, msg, size, "fake plugin: host memory only");
  const int64_t n = q->out_features, k = q->in_features;
  const float factor = std::getenv("FAKE_PLUGIN_WRONG_MATMUL") != nullptr ? 1.01f : 1.0f;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < n; ++o) {
      float s = bias != nullptr ? static_cast<float>(read(bias, dtype, o)) : 0.0f;
      for (int64_t j = 0; j < k; ++j)
        s += static_cast<float>(read(x, dtype, r * k + j)) * weights->w[o * k + j];
      write(y, dtype, r * n + o, s * factor);
    }
  return GPTQ_OK;
}

// The fake has no device: every pointer is host memory.
int32_t memory_of(const void *, int32_t *memory, char *, size_t) {
  *memory = GPTQ_PLUGIN_MEMORY_HOST;
  return GPTQ_OK;
}

int32_t scan(const void *, gptq_dtype, int64_t, void *, int64_t *, double *, char *msg,
             size_t size) {
  return fail(GPTQ_ERR_INTERNAL, msg, size, "fake plugin: scan called without device memory");
}

int32_t copy_to_host(void *, const void *, size_t, void *, char *msg, size_t size) {
  return fail(GPTQ_ERR_INTERNAL, msg, size,
              "fake plugin: copy_to_host called without device memory");
}

gptq_plugin_table make_table() {
  gptq_plugin_table t{};
  t.struct_size = sizeof t;
  t.abi_version = FAKE_ABI_VERSION;
  t.name = "cuda";
  t.probe = probe;
  t.hessian_create = hessian_create;
  t.hessian_destroy = hessian_destroy;
  t.hessian_add_batch = hessian_add_batch;
  t.hessian_merge = hessian_merge;
  t.hessian_export = hessian_export;
  t.memory_of = memory_of;
  t.scan = scan;
  t.copy_to_host = copy_to_host;
#ifndef FAKE_INCOMPLETE
  t.quantize = quantize;
  t.weights_prepare = weights_prepare;
  t.weights_destroy = weights_destroy;
  t.matmul = matmul;
#else
  (void)quantize, (void)weights_prepare, (void)weights_destroy, (void)matmul;
#endif
  if (std::getenv("FAKE_PLUGIN_SHORT_TABLE") != nullptr)
    t.struct_size = offsetof(gptq_plugin_table, quantize);
  return t;
}

}  // namespace

// How often the loader probed: the test reads it to check the once-per-process cache.
FAKE_EXPORT int fake_plugin_probe_calls(void) { return probe_calls.load(); }

#ifndef FAKE_NO_ENTRY
FAKE_EXPORT const gptq_plugin_table *gptq_backend_plugin_entry(void) {
#else
// A table under the wrong name: the loader must not find it.
FAKE_EXPORT const gptq_plugin_table *gptq_backend_plugin_entry_misspelt(void) {
#endif
  static const gptq_plugin_table table = make_table();
  return &table;
}
