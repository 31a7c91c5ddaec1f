/*
 * The C API from C: a C99 program written only against gptq.h (built with
 * -std=c99 -Wall -Wextra -pedantic -Werror) that runs the whole cycle
 *
 *   create -> add_batch (f32 and f16) -> quantize (4-bit, group 32, sym,
 *   act-order) -> export v1 -> import -> matmul
 *
 * and checks each step against what the header promises, decoding the
 * checkpoint tensors by hand. Also: version macros vs the runtime version,
 * and error paths (status + message). Prints "N passed, N failed".
 */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gptq.h"

/* ------------------------------------------------------------------------ */
/* Minimal test harness                                                      */
/* ------------------------------------------------------------------------ */

static int g_passed = 0;
static int g_failed = 0;

static void check_impl(int ok, int line, const char *fmt, ...) {
  if (ok) {
    ++g_passed;
    return;
  }
  {
    va_list ap;
    ++g_failed;
    fprintf(stderr, "FAIL (c_api_test.c:%d): ", line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
  }
}

/* CHECK(condition, printf-style description) */
#define CHECK(cond, ...) check_impl((cond) ? 1 : 0, __LINE__, __VA_ARGS__)

/* A call that must succeed; on failure, names the status and the message. */
static int ok_impl(gptq_status s, int line, const char *call) {
  if (s == GPTQ_OK) {
    ++g_passed;
    return 1;
  }
  ++g_failed;
  fprintf(stderr, "FAIL (c_api_test.c:%d): %s returned %s: %s\n", line, call,
          gptq_status_string(s), gptq_last_error());
  return 0;
}
#define CHECK_OK(call) ok_impl((call), __LINE__, #call)

/* A call that must fail with `expected` and leave a message. */
static void fails_impl(gptq_status s, gptq_status expected, int line, const char *call) {
  const char *msg = gptq_last_error();
  if (s == expected && msg != NULL && msg[0] != '\0') {
    ++g_passed;
    return;
  }
  ++g_failed;
  fprintf(stderr, "FAIL (c_api_test.c:%d): %s returned %s (message \"%s\"), expected %s and a "
          "message\n", line, call, gptq_status_string(s), msg ? msg : "(NULL)",
          gptq_status_string(expected));
}
#define CHECK_FAILS(call, expected) fails_impl((call), (expected), __LINE__, #call)

static void *xcalloc(size_t count, size_t size) {
  void *p = calloc(count, size);
  if (p == NULL) {
    fprintf(stderr, "c_api_test: out of memory\n");
    exit(2);
  }
  return p;
}

/* ------------------------------------------------------------------------ */
/* Data                                                                      */
/* ------------------------------------------------------------------------ */

static uint64_t g_rng = 0x243F6A8885A308D3ull;

static double uniform01(void) { /* splitmix64, (0, 1) */
  uint64_t z = (g_rng += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return ((double)(z >> 11) + 0.5) / 9007199254740992.0;
}

static double normal(void) { /* Box-Muller, one value per call */
  const double u = uniform01(), v = uniform01();
  return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

enum { OUT = 64, IN = 128, BITS = 4, GROUP = 32, LATENT = 16 };

static float g_mix[LATENT][IN];
static float g_chan_scale[IN];

static void init_activation_model(void) {
  int l, j;
  for (l = 0; l < LATENT; ++l)
    for (j = 0; j < IN; ++j) g_mix[l][j] = (float)(normal() / sqrt((double)LATENT));
  for (j = 0; j < IN; ++j) g_chan_scale[j] = (float)exp(0.5 * normal());
  /* A few outlier channels, so act-order has something to reorder. */
  g_chan_scale[5] *= 25.0f;
  g_chan_scale[77] *= 40.0f;
  g_chan_scale[120] *= 30.0f;
}

/* Correlated activations [rows, IN]. */
static void activations(int64_t rows, float *x) {
  int64_t t;
  int l, j;
  for (t = 0; t < rows; ++t) {
    double z[LATENT];
    for (l = 0; l < LATENT; ++l) z[l] = normal();
    for (j = 0; j < IN; ++j) {
      double v = 0.5 * normal();
      for (l = 0; l < LATENT; ++l) v += z[l] * g_mix[l][j];
      x[t * IN + j] = (float)(g_chan_scale[j] * v);
    }
  }
}

/* ------------------------------------------------------------------------ */
/* IEEE binary16 by hand                                                     */
/* ------------------------------------------------------------------------ */

/* float -> half bits, round to nearest even (normals, subnormals, inf, nan). */
static uint16_t f32_to_f16(float f) {
  uint32_t x, sign, exp, mant, rem, halfway, m;
  int32_t e;
  memcpy(&x, &f, sizeof x);
  sign = (x >> 16) & 0x8000u;
  exp = (x >> 23) & 0xFFu;
  mant = x & 0x7FFFFFu;
  if (exp == 0xFFu) return (uint16_t)(sign | 0x7C00u | (mant ? 0x200u : 0u));
  e = (int32_t)exp - 127 + 15;
  if (e >= 31) return (uint16_t)(sign | 0x7C00u);
  if (e <= 0) { /* subnormal half (or zero) */
    uint32_t shift;
    if (e < -10) return (uint16_t)sign;
    mant |= 0x800000u;
    shift = (uint32_t)(14 - e);
    m = mant >> shift;
    rem = mant & ((1u << shift) - 1u);
    halfway = 1u << (shift - 1u);
    if (rem > halfway || (rem == halfway && (m & 1u))) ++m;
    return (uint16_t)(sign | m);
  }
  m = mant >> 13;
  rem = mant & 0x1FFFu;
  {
    uint32_t h = sign | ((uint32_t)e << 10) | m;
    if (rem > 0x1000u || (rem == 0x1000u && (m & 1u))) ++h; /* carry may reach inf: right */
    return (uint16_t)h;
  }
}

static float f16_to_f32(uint16_t h) {
  const int sign = (h >> 15) & 1;
  const int exp = (h >> 10) & 0x1F;
  const int mant = h & 0x3FF;
  double v;
  if (exp == 0)
    v = ldexp((double)mant, -24);
  else if (exp == 31)
    v = mant ? NAN : INFINITY;
  else
    v = ldexp((double)(mant | 0x400), exp - 25);
  return (float)(sign ? -v : v);
}

/* Value i of a little-endian bit stream of `bits`-wide values held in 32-bit
 * words words[0], words[stride], words[2*stride], ... */
static uint32_t stream_get(const int32_t *words, int64_t stride, int64_t i, int bits) {
  const int64_t bit = (int64_t)bits * i;
  const int64_t w = bit / 32;
  const int off = (int)(bit % 32);
  uint64_t v = (uint64_t)(uint32_t)words[w * stride];
  if (off + bits > 32) v |= (uint64_t)(uint32_t)words[(w + 1) * stride] << 32;
  return (uint32_t)((v >> off) & ((1u << bits) - 1u));
}

/* ------------------------------------------------------------------------ */
/* Tests                                                                     */
/* ------------------------------------------------------------------------ */

static void test_version(void) {
  char expect[64];
  const char *s = gptq_version_string();
  CHECK(gptq_version_number() == (uint32_t)GPTQ_VERSION_NUMBER,
        "gptq_version_number() %u != GPTQ_VERSION_NUMBER %u", (unsigned)gptq_version_number(),
        (unsigned)GPTQ_VERSION_NUMBER);
  CHECK(GPTQ_VERSION_NUMBER ==
            GPTQ_VERSION_MAJOR * 10000 + GPTQ_VERSION_MINOR * 100 + GPTQ_VERSION_PATCH,
        "GPTQ_VERSION_NUMBER is not MAJOR*10000 + MINOR*100 + PATCH");
  snprintf(expect, sizeof expect, "%d.%d.%d", GPTQ_VERSION_MAJOR, GPTQ_VERSION_MINOR,
           GPTQ_VERSION_PATCH);
  CHECK(s != NULL && strcmp(s, expect) == 0, "gptq_version_string() \"%s\" != \"%s\"",
        s ? s : "(NULL)", expect);
}

static void test_status_strings(void) {
  int st;
  const char *unknown;
  for (st = GPTQ_OK; st <= GPTQ_ERR_INTERNAL; ++st) {
    const char *s = gptq_status_string((gptq_status)st);
    CHECK(s != NULL && s[0] != '\0', "gptq_status_string(%d) is empty", st);
  }
  unknown = gptq_status_string((gptq_status)999);
  CHECK(unknown != NULL && strcmp(unknown, "unknown status") == 0,
        "gptq_status_string(999) is \"%s\", expected \"unknown status\"",
        unknown ? unknown : "(NULL)");
  CHECK(gptq_last_error() != NULL, "gptq_last_error() returned NULL");
}

static void test_error_paths(void) {
  gptq_config cfg;
  gptq_ctx *ctx = (gptq_ctx *)&cfg; /* poison: must be set to NULL on failure */
  gptq_qtensor *q = (gptq_qtensor *)&cfg;
  float x[2 * (IN + 1)];
  float w[4 * IN];
  int i;

  for (i = 0; i < 2 * (IN + 1); ++i) x[i] = 0.25f * (float)(i % 7);
  for (i = 0; i < 4 * IN; ++i) w[i] = 0.01f * (float)(i % 5);

  gptq_config_default(&cfg);
  CHECK(cfg.struct_size == sizeof(gptq_config) && cfg.bits == 4 && cfg.group_size == 128 &&
            cfg.sym == 1 && cfg.act_order == 0 && cfg.block_size == 128,
        "gptq_config_default does not give the documented defaults");

  cfg.bits = 9;
  CHECK_FAILS(gptq_ctx_create(4, IN, &cfg, &ctx), GPTQ_ERR_INVALID_CONFIG);
  CHECK(ctx == NULL, "gptq_ctx_create left *out non-NULL on failure");
  CHECK(strstr(gptq_last_error(), "bits") != NULL,
        "the bad-config message does not name the field: \"%s\"", gptq_last_error());
  CHECK_FAILS(gptq_ctx_create(0, IN, NULL, &ctx), GPTQ_ERR_INVALID_SIZE);
  CHECK_FAILS(gptq_ctx_create(4, IN, NULL, NULL), GPTQ_ERR_NULL_POINTER);

  if (!CHECK_OK(gptq_ctx_create(4, IN, NULL, &ctx))) return;
  /* Quantizing before any calibration data. */
  CHECK_FAILS(gptq_quantize(ctx, w, GPTQ_DTYPE_F32, 4, IN, &q, NULL), GPTQ_ERR_INVALID_STATE);
  CHECK(q == NULL, "gptq_quantize left *out non-NULL on failure");
  /* A batch one column too wide. */
  CHECK_FAILS(gptq_add_batch(ctx, x, GPTQ_DTYPE_F32, 2, IN + 1, 1), GPTQ_ERR_SIZE_MISMATCH);
  CHECK(strstr(gptq_last_error(), "gptq_add_batch") != NULL,
        "the message does not name the function: \"%s\"", gptq_last_error());
  CHECK_FAILS(gptq_add_batch(ctx, NULL, GPTQ_DTYPE_F32, 2, IN, 1), GPTQ_ERR_NULL_POINTER);
  CHECK_FAILS(gptq_add_batch(ctx, x, (gptq_dtype)7, 2, IN, 1), GPTQ_ERR_UNSUPPORTED);
  x[IN + 3] = (float)NAN;
  CHECK_FAILS(gptq_add_batch(ctx, x, GPTQ_DTYPE_F32, 2, IN, 1), GPTQ_ERR_NON_FINITE);
  x[IN + 3] = 1.0f;
  CHECK(gptq_ctx_samples(ctx) == 0, "failed batches changed the sample count to %lld",
        (long long)gptq_ctx_samples(ctx));
  CHECK(gptq_ctx_samples(NULL) == -1, "gptq_ctx_samples(NULL) != -1");
  /* The context stays usable after those errors. */
  if (CHECK_OK(gptq_add_batch(ctx, x, GPTQ_DTYPE_F32, 2, IN, 2))) {
    CHECK(gptq_ctx_samples(ctx) == 2, "samples %lld after one batch of 2",
          (long long)gptq_ctx_samples(ctx));
    CHECK_FAILS(gptq_quantize(ctx, w, GPTQ_DTYPE_F32, 3, IN, &q, NULL), GPTQ_ERR_SIZE_MISMATCH);
    q = NULL;
    if (CHECK_OK(gptq_quantize(ctx, w, GPTQ_DTYPE_F32, 4, IN, &q, NULL))) {
      float y[2 * 4];
      CHECK_FAILS(gptq_matmul(q, x, GPTQ_DTYPE_F32, 2, IN, NULL, y, 7), GPTQ_ERR_SIZE_MISMATCH);
      CHECK_FAILS(gptq_matmul(q, x, GPTQ_DTYPE_F32, 2, IN + 1, NULL, y, 8),
                  GPTQ_ERR_SIZE_MISMATCH);
      CHECK_FAILS(gptq_matmul(q, x, GPTQ_DTYPE_F32, 0, IN, NULL, y, 8), GPTQ_ERR_INVALID_SIZE);
      CHECK_FAILS(gptq_qtensor_export(q, GPTQ_FORMAT_V1, NULL), GPTQ_ERR_NULL_POINTER);
    }
    gptq_qtensor_destroy(q);
  }
  gptq_ctx_destroy(ctx);
  gptq_ctx_destroy(NULL);
  gptq_qtensor_destroy(NULL);
}

/* Stable order of columns by descending diag H, as act-order uses it. */
static void act_order_positions(const double *h, int64_t *position) {
  int64_t order[IN];
  int64_t i, j;
  for (i = 0; i < IN; ++i) order[i] = i;
  for (i = 1; i < IN; ++i) { /* insertion sort: stable */
    const int64_t c = order[i];
    j = i - 1;
    while (j >= 0 && h[order[j] * IN + order[j]] < h[c * IN + c]) {
      order[j + 1] = order[j];
      --j;
    }
    order[j + 1] = c;
  }
  for (i = 0; i < IN; ++i) position[order[i]] = i;
}

static void test_full_cycle(void) {
  enum { BATCHES = 3, ROWS = 48, F16_ROWS = 32, MM_ROWS = 5 };
  gptq_config cfg;
  gptq_ctx *ctx = NULL, *ctx_f16 = NULL, *ctx_f32 = NULL;
  gptq_qtensor *q = NULL, *imported = NULL;
  gptq_quant_stats stats;
  gptq_qtensor_info info;
  gptq_checkpoint_sizes sz;
  gptq_checkpoint_tensors t;
  float *x, *x16f, *w, *deq_hand, *deq_q, *deq_imp, *y, *y_bias, *bias;
  uint16_t *x16, *xmm16, *ymm16;
  uint8_t *codes_q;
  double *h, *h_f16, *h_f32;
  int64_t samples = 0, expect_samples = 0, i, j, n, k, b, r;
  int64_t position[IN];
  int64_t group_members[IN / GROUP];
  int mismatches;

  x = (float *)xcalloc((size_t)ROWS * IN, sizeof(float));
  x16 = (uint16_t *)xcalloc((size_t)F16_ROWS * IN, sizeof(uint16_t));
  x16f = (float *)xcalloc((size_t)F16_ROWS * IN, sizeof(float));
  w = (float *)xcalloc((size_t)OUT * IN, sizeof(float));
  deq_hand = (float *)xcalloc((size_t)OUT * IN, sizeof(float));
  deq_q = (float *)xcalloc((size_t)OUT * IN, sizeof(float));
  deq_imp = (float *)xcalloc((size_t)OUT * IN, sizeof(float));
  codes_q = (uint8_t *)xcalloc((size_t)OUT * IN, 1);
  h = (double *)xcalloc((size_t)IN * IN, sizeof(double));
  h_f16 = (double *)xcalloc((size_t)IN * IN, sizeof(double));
  h_f32 = (double *)xcalloc((size_t)IN * IN, sizeof(double));
  y = (float *)xcalloc((size_t)MM_ROWS * OUT, sizeof(float));
  y_bias = (float *)xcalloc((size_t)MM_ROWS * OUT, sizeof(float));
  bias = (float *)xcalloc((size_t)OUT, sizeof(float));
  xmm16 = (uint16_t *)xcalloc((size_t)MM_ROWS * IN, sizeof(uint16_t));
  ymm16 = (uint16_t *)xcalloc((size_t)MM_ROWS * OUT, sizeof(uint16_t));
  memset(&t, 0, sizeof t);

  init_activation_model();
  for (i = 0; i < OUT * IN; ++i) w[i] = (float)(0.02 * normal());
  for (n = 0; n < OUT; ++n) bias[n] = (float)(0.1 * normal());

  /* --- create + add_batch ------------------------------------------------- */
  gptq_config_default(&cfg);
  cfg.bits = BITS;
  cfg.group_size = GROUP;
  cfg.sym = 1;
  cfg.act_order = 1;
  if (!CHECK_OK(gptq_ctx_create(OUT, IN, &cfg, &ctx))) goto done;
  CHECK(gptq_ctx_samples(ctx) == 0, "a new context has %lld samples",
        (long long)gptq_ctx_samples(ctx));
  for (b = 0; b < BATCHES; ++b) {
    activations(ROWS, x);
    CHECK_OK(gptq_add_batch(ctx, x, GPTQ_DTYPE_F32, ROWS, IN, ROWS));
    expect_samples += ROWS;
  }
  /* One f16 batch, converted by hand. */
  activations(F16_ROWS, x16f);
  for (i = 0; i < F16_ROWS * IN; ++i) {
    x16[i] = f32_to_f16(x16f[i]);
    x16f[i] = f16_to_f32(x16[i]); /* the values the library should see */
  }
  CHECK_OK(gptq_add_batch(ctx, x16, GPTQ_DTYPE_F16, F16_ROWS, IN, F16_ROWS));
  expect_samples += F16_ROWS;
  CHECK(gptq_ctx_samples(ctx) == expect_samples, "samples %lld, expected %lld",
        (long long)gptq_ctx_samples(ctx), (long long)expect_samples);

  /* The f16 batch reads as the same values as its f32 decoding. */
  if (CHECK_OK(gptq_ctx_create(OUT, IN, &cfg, &ctx_f16)) &&
      CHECK_OK(gptq_ctx_create(OUT, IN, &cfg, &ctx_f32)) &&
      CHECK_OK(gptq_add_batch(ctx_f16, x16, GPTQ_DTYPE_F16, F16_ROWS, IN, F16_ROWS)) &&
      CHECK_OK(gptq_add_batch(ctx_f32, x16f, GPTQ_DTYPE_F32, F16_ROWS, IN, F16_ROWS)) &&
      CHECK_OK(gptq_ctx_export_hessian(ctx_f16, h_f16, IN * IN, &samples)) &&
      CHECK_OK(gptq_ctx_export_hessian(ctx_f32, h_f32, IN * IN, &samples))) {
    CHECK(memcmp(h_f16, h_f32, (size_t)IN * IN * sizeof(double)) == 0,
          "the Hessian of an f16 batch differs from that of the same values as f32");
  }
  gptq_ctx_destroy(ctx_f16);
  gptq_ctx_destroy(ctx_f32);

  CHECK_OK(gptq_ctx_export_hessian(ctx, h, IN * IN, &samples));
  CHECK(samples == expect_samples, "exported sample count %lld", (long long)samples);

  /* --- quantize ----------------------------------------------------------- */
  memset(&stats, 0, sizeof stats);
  stats.struct_size = sizeof stats;
  if (!CHECK_OK(gptq_quantize(ctx, w, GPTQ_DTYPE_F32, OUT, IN, &q, &stats))) goto done;
  CHECK(stats.fell_back_to_rtn == 0 && stats.damp_retries == 0,
        "unexpected fallback (%d) or retries (%d)", (int)stats.fell_back_to_rtn,
        (int)stats.damp_retries);
  CHECK(stats.loss > 0.0 && isfinite(stats.loss), "loss %g", stats.loss);
  CHECK(stats.dead_columns == 0, "dead columns %lld", (long long)stats.dead_columns);
  CHECK(stats.seconds >= 0.0, "seconds %g", stats.seconds);
  CHECK(stats.backend == GPTQ_BACKEND_CPU || stats.backend == GPTQ_BACKEND_CUDA,
        "stats.backend %d", (int)stats.backend);
  CHECK(fabs(stats.damp_percent_used - 0.01) < 1e-6, "damp used %g", stats.damp_percent_used);

  CHECK_OK(gptq_qtensor_get_info(q, &info));
  CHECK(info.out_features == OUT && info.in_features == IN && info.bits == BITS &&
            info.group_size == GROUP && info.groups == IN / GROUP,
        "info: out %lld in %lld bits %d group %d groups %lld", (long long)info.out_features,
        (long long)info.in_features, (int)info.bits, (int)info.group_size,
        (long long)info.groups);
  CHECK(info.act_order == 1, "info.act_order %d with outlier channels", (int)info.act_order);

  /* --- export v1 ---------------------------------------------------------- */
  if (!CHECK_OK(gptq_checkpoint_sizes_for(OUT, IN, BITS, GROUP, &sz))) goto done;
  CHECK(sz.qweight_rows == IN * BITS / 32 && sz.qweight_cols == OUT &&
            sz.qzeros_rows == IN / GROUP && sz.qzeros_cols == OUT * BITS / 32 &&
            sz.scales_rows == IN / GROUP && sz.scales_cols == OUT && sz.g_idx_len == IN,
        "checkpoint sizes do not follow the documented layout");
  t.qweight_len = sz.qweight_rows * sz.qweight_cols;
  t.qzeros_len = sz.qzeros_rows * sz.qzeros_cols;
  t.scales_len = sz.scales_rows * sz.scales_cols;
  t.g_idx_len = sz.g_idx_len;
  t.qweight = (int32_t *)xcalloc((size_t)t.qweight_len, sizeof(int32_t));
  t.qzeros = (int32_t *)xcalloc((size_t)t.qzeros_len, sizeof(int32_t));
  t.scales = (uint16_t *)xcalloc((size_t)t.scales_len, sizeof(uint16_t));
  t.g_idx = (int32_t *)xcalloc((size_t)t.g_idx_len, sizeof(int32_t));
  t.qweight_len -= 1;
  CHECK_FAILS(gptq_qtensor_export(q, GPTQ_FORMAT_V1, &t), GPTQ_ERR_SIZE_MISMATCH);
  t.qweight_len += 1;
  if (!CHECK_OK(gptq_qtensor_export(q, GPTQ_FORMAT_V1, &t))) goto done;

  /* g_idx: act-order without static groups puts column j in group
   * (position of j in the descending-diag-H order) / group_size. */
  act_order_positions(h, position);
  memset(group_members, 0, sizeof group_members);
  mismatches = 0;
  for (j = 0; j < IN; ++j) {
    if (t.g_idx[j] != (int32_t)(position[j] / GROUP)) ++mismatches;
    if (t.g_idx[j] >= 0 && t.g_idx[j] < IN / GROUP) ++group_members[t.g_idx[j]];
  }
  CHECK(mismatches == 0, "%d g_idx entries differ from the act-order positions / group size",
        mismatches);
  for (i = 0; i < IN / GROUP; ++i)
    CHECK(group_members[i] == GROUP, "group %lld has %lld columns", (long long)i,
          (long long)group_members[i]);

  /* Decode by hand: codes (qweight), zeros (qzeros, v1 = stored + 1),
   * fp16 scales, and dequantize as scale * (code - zero). */
  CHECK_OK(gptq_qtensor_codes(q, codes_q, OUT * IN));
  mismatches = 0;
  {
    int bad_zero = 0;
    for (n = 0; n < OUT; ++n) {
      for (k = 0; k < IN; ++k) {
        const int32_t g = t.g_idx[k];
        const uint32_t code = stream_get(t.qweight + n, OUT, k, BITS);
        const uint32_t zero = stream_get(t.qzeros + (int64_t)g * sz.qzeros_cols, 1, n, BITS) + 1;
        const float scale = f16_to_f32(t.scales[(int64_t)g * OUT + n]);
        if (code != codes_q[n * IN + k]) ++mismatches;
        if (zero != (1u << (BITS - 1))) ++bad_zero;
        deq_hand[n * IN + k] = scale * (float)((int32_t)code - (int32_t)zero);
      }
    }
    CHECK(mismatches == 0, "%d packed codes differ from gptq_qtensor_codes", mismatches);
    CHECK(bad_zero == 0, "%d symmetric zeros are not 2^(bits-1)", bad_zero);
  }
  CHECK_OK(gptq_qtensor_dequantize(q, deq_q, OUT * IN));
  CHECK(memcmp(deq_hand, deq_q, (size_t)OUT * IN * sizeof(float)) == 0,
        "gptq_qtensor_dequantize differs from scale*(code-zero) decoded from the checkpoint");
  {
    double err = 0.0, norm = 0.0;
    for (i = 0; i < OUT * IN; ++i) {
      err += (double)(w[i] - deq_q[i]) * (w[i] - deq_q[i]);
      norm += (double)w[i] * w[i];
    }
    /* A sanity bound only: GPTQ trades weight error for output error, so with
     * outlier channels the weights move further than rounding alone would. */
    CHECK(err < 0.25 * norm, "4-bit weights are far from the originals: %g of %g", err, norm);
  }

  /* --- import -------------------------------------------------------------- */
  if (!CHECK_OK(gptq_qtensor_import(OUT, IN, BITS, GROUP, GPTQ_FORMAT_V1, &t, &imported)))
    goto done;
  CHECK_OK(gptq_qtensor_dequantize(imported, deq_imp, OUT * IN));
  CHECK(memcmp(deq_hand, deq_imp, (size_t)OUT * IN * sizeof(float)) == 0,
        "the re-imported tensor dequantizes differently");

  /* --- matmul on the imported tensor ----------------------------------------
   * y = x W^T (+ bias) against the hand-decoded weights, double accumulation;
   * tolerance 1e-4 relative to sum |x w| (float accumulation). */
  activations(MM_ROWS, x);
  CHECK_OK(gptq_matmul(imported, x, GPTQ_DTYPE_F32, MM_ROWS, IN, NULL, y, MM_ROWS * OUT));
  CHECK_OK(gptq_matmul(imported, x, GPTQ_DTYPE_F32, MM_ROWS, IN, bias, y_bias, MM_ROWS * OUT));
  for (i = 0; i < MM_ROWS * IN; ++i) xmm16[i] = f32_to_f16(x[i]);
  CHECK_OK(gptq_matmul(imported, xmm16, GPTQ_DTYPE_F16, MM_ROWS, IN, NULL, ymm16,
                       MM_ROWS * OUT));
  {
    int bad = 0, bad_bias = 0, bad_f16 = 0;
    double worst = 0.0;
    for (r = 0; r < MM_ROWS; ++r) {
      for (n = 0; n < OUT; ++n) {
        double ref = 0.0, mag = 0.0, ref16 = 0.0, mag16 = 0.0, rel;
        for (k = 0; k < IN; ++k) {
          const double wk = deq_hand[n * IN + k];
          const double xk = x[r * IN + k];
          const double xk16 = f16_to_f32(xmm16[r * IN + k]);
          ref += wk * xk;
          mag += fabs(wk * xk);
          ref16 += wk * xk16;
          mag16 += fabs(wk * xk16);
        }
        rel = fabs(y[r * OUT + n] - ref) / (mag > 0.0 ? mag : 1.0);
        if (rel > worst) worst = rel;
        if (fabs(y[r * OUT + n] - ref) > 1e-4 * mag + 1e-30) ++bad;
        if (fabs(y_bias[r * OUT + n] - (ref + bias[n])) > 1e-4 * (mag + fabs(bias[n])) + 1e-30)
          ++bad_bias;
        /* f16 output: one final rounding (2^-11 relative) on top. */
        if (fabs(f16_to_f32(ymm16[r * OUT + n]) - ref16) >
            fabs(ref16) / 2048.0 + 1e-4 * mag16 + 6e-8)
          ++bad_f16;
      }
    }
    CHECK(bad == 0, "%d of %d matmul outputs off by more than 1e-4 relative (worst %.3g)", bad,
          MM_ROWS * OUT, worst);
    CHECK(bad_bias == 0, "%d of %d matmul+bias outputs off by more than 1e-4 relative",
          bad_bias, MM_ROWS * OUT);
    CHECK(bad_f16 == 0, "%d of %d f16 matmul outputs off by more than fp16 rounding", bad_f16,
          MM_ROWS * OUT);
  }
  /* The tensor straight from gptq_quantize gives the same products. */
  {
    float *y_q = (float *)xcalloc((size_t)MM_ROWS * OUT, sizeof(float));
    int bad = 0;
    CHECK_OK(gptq_matmul(q, x, GPTQ_DTYPE_F32, MM_ROWS, IN, NULL, y_q, MM_ROWS * OUT));
    for (i = 0; i < MM_ROWS * OUT; ++i)
      if (fabs((double)y_q[i] - y[i]) > 1e-5 * (fabs((double)y[i]) + 1e-3)) ++bad;
    CHECK(bad == 0, "%d outputs differ between the quantized and the re-imported tensor", bad);
    free(y_q);
  }

done:
  gptq_qtensor_destroy(imported);
  gptq_qtensor_destroy(q);
  gptq_ctx_destroy(ctx);
  free(t.qweight);
  free(t.qzeros);
  free(t.scales);
  free(t.g_idx);
  free(x);
  free(x16);
  free(x16f);
  free(w);
  free(deq_hand);
  free(deq_q);
  free(deq_imp);
  free(codes_q);
  free(h);
  free(h_f16);
  free(h_f32);
  free(y);
  free(y_bias);
  free(bias);
  free(xmm16);
  free(ymm16);
}

int main(void) {
  test_version();
  test_status_strings();
  test_error_paths();
  test_full_cycle();
  printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed == 0 ? 0 : 1;
}
