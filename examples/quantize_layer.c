/*
 * quantize_layer — quantize one realistic linear layer with libgptq and
 * compare GPTQ with round-to-nearest (RTN).
 *
 * Everything is generated inside the program from fixed seeds, so every run
 * sees the same data:
 *   - weights W [out, in]: Gaussian, sigma 0.02, with rare outliers (about
 *     one weight in a thousand is 5-10x larger);
 *   - activations x [tokens, in] with the structure LLM layer inputs have:
 *     channels correlated through a random low-rank mixing (rank in/16
 *     within 8..64) plus independent noise of the same energy, a per-channel
 *     scale spread (log-normal) and mean offset, a handful of outlier
 *     channels 20-50x larger than the rest with a consistent sign, and a
 *     mild per-token scale.
 * The calibration tokens go to the library in several gptq_add_batch calls;
 * the output error is measured on a separate, held-out set of tokens drawn
 * from the same distribution.
 *
 * Written in C99 against gptq.h only.
 *
 *   quantize_layer [--out N] [--in N] [--tokens N] [--batches N]
 *                  [--heldout N] [--bits B] [--group G] [--act-order] [--asym]
 */
#define _POSIX_C_SOURCE 199309L /* clock_gettime */

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gptq.h"

/* ------------------------------------------------------------------------ */
/* Options                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct options {
  int64_t out_features;
  int64_t in_features;
  int64_t tokens;   /* calibration tokens */
  int64_t batches;  /* gptq_add_batch calls they are split into */
  int64_t heldout;  /* evaluation tokens */
  int32_t bits;
  int32_t group_size;
  int32_t act_order;
  int32_t sym;
} options;

static void usage(FILE *f) {
  fprintf(f,
          "usage: quantize_layer [--out N] [--in N] [--tokens N] [--batches N]\n"
          "                      [--heldout N] [--bits B] [--group G] [--act-order] [--asym]\n"
          "defaults: --out 2048 --in 2048 --tokens 4096 --batches 8 --heldout 512\n"
          "          --bits 4 --group 128 (symmetric, act-order off; --group -1 = one group)\n"
          "The checkpoint step needs --out and --in to be multiples of 32/bits (32 for 3 bits).\n");
}

static int parse_int(const char *flag, const char *text, int64_t min, int64_t max,
                     int64_t *value) {
  char *end = NULL;
  long long v;
  if (text == NULL) {
    fprintf(stderr, "quantize_layer: %s needs a value\n", flag);
    return 0;
  }
  v = strtoll(text, &end, 10);
  if (end == text || *end != '\0' || v < min || v > max) {
    fprintf(stderr, "quantize_layer: %s %s: expected an integer in %lld..%lld\n", flag, text,
            (long long)min, (long long)max);
    return 0;
  }
  *value = (int64_t)v;
  return 1;
}

static int parse_options(int argc, char **argv, options *o) {
  int i;
  o->out_features = 2048;
  o->in_features = 2048;
  o->tokens = 4096;
  o->batches = 8;
  o->heldout = 512;
  o->bits = 4;
  o->group_size = 128;
  o->act_order = 0;
  o->sym = 1;
  for (i = 1; i < argc; ++i) {
    const char *a = argv[i];
    const char *next = i + 1 < argc ? argv[i + 1] : NULL;
    int64_t v = 0;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      exit(0);
    } else if (strcmp(a, "--act-order") == 0) {
      o->act_order = 1;
    } else if (strcmp(a, "--asym") == 0) {
      o->sym = 0;
    } else if (strcmp(a, "--sym") == 0) {
      o->sym = 1;
    } else if (strcmp(a, "--out") == 0) {
      if (!parse_int(a, next, 1, 1 << 16, &o->out_features)) return 0;
      ++i;
    } else if (strcmp(a, "--in") == 0) {
      if (!parse_int(a, next, 1, 1 << 15, &o->in_features)) return 0;
      ++i;
    } else if (strcmp(a, "--tokens") == 0) {
      if (!parse_int(a, next, 1, 1 << 20, &o->tokens)) return 0;
      ++i;
    } else if (strcmp(a, "--batches") == 0) {
      if (!parse_int(a, next, 1, 1 << 16, &o->batches)) return 0;
      ++i;
    } else if (strcmp(a, "--heldout") == 0) {
      if (!parse_int(a, next, 1, 1 << 16, &o->heldout)) return 0;
      ++i;
    } else if (strcmp(a, "--bits") == 0) {
      /* Range checking is the library's job: pass whatever was asked. */
      if (!parse_int(a, next, -1000, 1000, &v)) return 0;
      o->bits = (int32_t)v;
      ++i;
    } else if (strcmp(a, "--group") == 0) {
      if (!parse_int(a, next, -1000000, 1000000, &v)) return 0;
      o->group_size = (int32_t)v;
      ++i;
    } else {
      fprintf(stderr, "quantize_layer: unknown argument '%s'\n", a);
      usage(stderr);
      return 0;
    }
  }
  if (o->batches > o->tokens) o->batches = o->tokens;
  return 1;
}

/* ------------------------------------------------------------------------ */
/* Error handling: any library failure ends the program with its status.     */
/* ------------------------------------------------------------------------ */

static void check(gptq_status s, const char *what) {
  if (s != GPTQ_OK) {
    fflush(stdout);
    fprintf(stderr, "quantize_layer: %s failed: %s\n  %s\n", what, gptq_status_string(s),
            gptq_last_error());
    exit(1);
  }
}

static void *xmalloc(size_t count, size_t size) {
  void *p = calloc(count, size);
  if (p == NULL) {
    fprintf(stderr, "quantize_layer: out of memory (%zu x %zu bytes)\n", count, size);
    exit(1);
  }
  return p;
}

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ------------------------------------------------------------------------ */
/* Deterministic random numbers: splitmix64 + Box-Muller.                    */
/* ------------------------------------------------------------------------ */

typedef struct rng {
  uint64_t state;
  int has_spare;
  double spare;
} rng;

static rng rng_seed(uint64_t seed) {
  rng r;
  r.state = seed;
  r.has_spare = 0;
  r.spare = 0.0;
  return r;
}

static uint64_t rng_next(rng *r) {
  uint64_t z = (r->state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* Uniform in (0, 1). */
static double rng_uniform(rng *r) {
  return ((double)(rng_next(r) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

static double rng_normal(rng *r) {
  double u, v, radius;
  if (r->has_spare) {
    r->has_spare = 0;
    return r->spare;
  }
  u = rng_uniform(r);
  v = rng_uniform(r);
  radius = sqrt(-2.0 * log(u));
  r->spare = radius * sin(6.283185307179586 * v);
  r->has_spare = 1;
  return radius * cos(6.283185307179586 * v);
}

/* ------------------------------------------------------------------------ */
/* The synthetic layer.                                                      */
/* ------------------------------------------------------------------------ */

/* The activation distribution: fixed by one seed, sampled by others. */
typedef struct act_model {
  int64_t in;
  int64_t latent;   /* rank of the correlated part */
  float *mix;       /* [latent, in], N(0, 1/latent) */
  float *scale;     /* [in] per-channel scale (outliers included) */
  float *mean;      /* [in] per-channel offset, in units of the scale */
  int64_t outliers; /* number of outlier channels */
} act_model;

static act_model act_model_make(int64_t in, uint64_t seed) {
  act_model m;
  rng r = rng_seed(seed);
  int64_t i, j;
  m.in = in;
  m.latent = in / 16 < 8 ? 8 : (in / 16 > 64 ? 64 : in / 16);
  m.mix = (float *)xmalloc((size_t)(m.latent * in), sizeof(float));
  m.scale = (float *)xmalloc((size_t)in, sizeof(float));
  m.mean = (float *)xmalloc((size_t)in, sizeof(float));
  for (i = 0; i < m.latent * in; ++i)
    m.mix[i] = (float)(rng_normal(&r) / sqrt((double)m.latent));
  for (j = 0; j < in; ++j) {
    m.scale[j] = (float)exp(0.5 * rng_normal(&r)); /* log-normal spread */
    m.mean[j] = (float)(0.3 * rng_normal(&r));
  }
  /* A handful of outlier channels (about 1 in 256, at least 2), 20-50x
   * larger, with a consistent sign as in real models. */
  m.outliers = in / 256 < 2 ? 2 : in / 256;
  if (m.outliers > in) m.outliers = in;
  for (i = 0; i < m.outliers; ++i) {
    const int64_t c = (int64_t)(rng_uniform(&r) * (double)in) % in;
    m.scale[c] = (float)(20.0 + 30.0 * rng_uniform(&r));
    m.mean[c] = (float)(rng_uniform(&r) < 0.5 ? -1.5 : 1.5);
  }
  return m;
}

static void act_model_free(act_model *m) {
  free(m->mix);
  free(m->scale);
  free(m->mean);
}

/* Draw `tokens` rows of activations into x [tokens, in]. */
static void sample_activations(const act_model *m, rng *r, int64_t tokens, float *x) {
  const int64_t in = m->in;
  float *z = (float *)xmalloc((size_t)m->latent, sizeof(float));
  int64_t t, l, j;
  for (t = 0; t < tokens; ++t) {
    float *row = x + t * in;
    const float token_scale = (float)exp(0.25 * rng_normal(r));
    for (l = 0; l < m->latent; ++l) z[l] = (float)rng_normal(r);
    for (j = 0; j < in; ++j) row[j] = (float)rng_normal(r); /* independent noise */
    for (l = 0; l < m->latent; ++l) {                              /* low-rank mixing */
      const float zl = z[l];
      const float *mrow = m->mix + l * in;
      for (j = 0; j < in; ++j) row[j] += zl * mrow[j];
    }
    for (j = 0; j < in; ++j) row[j] = token_scale * m->scale[j] * (row[j] + m->mean[j]);
  }
  free(z);
}

static void make_weights(int64_t out, int64_t in, uint64_t seed, float *w) {
  rng r = rng_seed(seed);
  int64_t i;
  for (i = 0; i < out * in; ++i) {
    double v = 0.02 * rng_normal(&r);
    if (rng_uniform(&r) < 1e-3) v *= 5.0 + 5.0 * rng_uniform(&r); /* rare outlier */
    w[i] = (float)v;
  }
}

/* ------------------------------------------------------------------------ */
/* Evaluation                                                                */
/* ------------------------------------------------------------------------ */

/* ||x · dᵀ||² for x [rows, in] and d [out, in] (d = W, or W - Q for the
 * error), computed with d transposed so the inner loop is a plain axpy. */
static double output_energy(const float *x, int64_t rows, const float *d, int64_t out,
                            int64_t in) {
  float *dt = (float *)xmalloc((size_t)(in * out), sizeof(float));
  float *y = (float *)xmalloc((size_t)out, sizeof(float));
  double total = 0.0;
  int64_t t, k, n;
  for (n = 0; n < out; ++n)
    for (k = 0; k < in; ++k) dt[k * out + n] = d[n * in + k];
  for (t = 0; t < rows; ++t) {
    const float *xr = x + t * in;
    memset(y, 0, (size_t)out * sizeof(float));
    for (k = 0; k < in; ++k) {
      const float xk = xr[k];
      const float *col = dt + k * out;
      for (n = 0; n < out; ++n) y[n] += xk * col[n];
    }
    for (n = 0; n < out; ++n) total += (double)y[n] * (double)y[n];
  }
  free(dt);
  free(y);
  return total;
}

/* Relative output error ||x Wᵀ - x Qᵀ||² / ||x Wᵀ||² on held-out tokens. */
static double relative_error(const float *x, int64_t rows, const float *w, const float *q,
                             int64_t out, int64_t in, double reference_energy) {
  float *diff = (float *)xmalloc((size_t)(out * in), sizeof(float));
  double err;
  int64_t i;
  for (i = 0; i < out * in; ++i) diff[i] = w[i] - q[i];
  err = output_energy(x, rows, diff, out, in);
  free(diff);
  return err / reference_energy;
}

/* ------------------------------------------------------------------------ */

int main(int argc, char **argv) {
  options o;
  gptq_config cfg, rtn_cfg;
  gptq_ctx *ctx = NULL, *rtn_ctx = NULL;
  gptq_qtensor *q = NULL, *rtn_q = NULL, *reimported = NULL;
  gptq_quant_stats stats, rtn_stats;
  gptq_qtensor_info info;
  gptq_checkpoint_sizes sizes;
  gptq_checkpoint_tensors ckpt;
  gptq_checkpoint_format format;
  act_model model;
  rng calib_rng, heldout_rng;
  float *w, *x_batch, *x_eval, *q_gptq, *q_rtn, *q_back, *y_lib;
  double *identity;
  double t0, t_add = 0.0, t_total0 = now_seconds(), ref_energy, err_gptq, err_rtn;
  double max_diff = 0.0, max_tol_ratio = 0.0, max_ref = 0.0;
  int64_t out, in, b, i, r, n, k, done, check_rows;

  if (!parse_options(argc, argv, &o)) return 2;
  out = o.out_features;
  in = o.in_features;

  printf("libgptq %s (header %d.%d.%d) -- quantize_layer\n", gptq_version_string(),
         GPTQ_VERSION_MAJOR, GPTQ_VERSION_MINOR, GPTQ_VERSION_PATCH);
  printf("layer: out %lld x in %lld, %d-bit, group %d, %s, act-order %s\n", (long long)out,
         (long long)in, (int)o.bits, (int)o.group_size, o.sym ? "sym" : "asym",
         o.act_order ? "on" : "off");

  /* --- data ------------------------------------------------------------ */
  model = act_model_make(in, 0x5EEDull);
  calib_rng = rng_seed(0xCA11Bull);
  heldout_rng = rng_seed(0x4E1D0ull);
  w = (float *)xmalloc((size_t)(out * in), sizeof(float));
  make_weights(out, in, 0x3E16Full, w);
  x_eval = (float *)xmalloc((size_t)(o.heldout * in), sizeof(float));
  sample_activations(&model, &heldout_rng, o.heldout, x_eval);

  /* --- GPTQ: calibrate, then quantize ------------------------------------ */
  gptq_config_default(&cfg);
  cfg.bits = o.bits;
  cfg.group_size = o.group_size;
  cfg.sym = o.sym;
  cfg.act_order = o.act_order;
  cfg.backend = GPTQ_BACKEND_CPU;
  check(gptq_ctx_create(out, in, &cfg, &ctx), "gptq_ctx_create");

  x_batch = (float *)xmalloc((size_t)(((o.tokens + o.batches - 1) / o.batches) * in),
                             sizeof(float));
  done = 0;
  for (b = 0; b < o.batches; ++b) {
    /* Split the tokens as evenly as the count allows. */
    const int64_t rows = (o.tokens * (b + 1)) / o.batches - done;
    sample_activations(&model, &calib_rng, rows, x_batch);
    t0 = now_seconds();
    /* samples = 1: each batch counts as one calibration sequence, as in the
     * reference implementation fed [1, seq, in] inputs. */
    check(gptq_add_batch(ctx, x_batch, GPTQ_DTYPE_F32, rows, in, 1), "gptq_add_batch");
    t_add += now_seconds() - t0;
    done += rows;
  }
  free(x_batch);

  memset(&stats, 0, sizeof stats);
  stats.struct_size = sizeof stats;
  check(gptq_quantize(ctx, w, GPTQ_DTYPE_F32, out, in, &q, &stats), "gptq_quantize");

  /* --- RTN baseline, computed by the library itself ------------------------
   * GPTQ with the identity as Hessian and no damping is exactly
   * round-to-nearest: the inverse Cholesky factor is I, so no rounding error
   * is fed forward, and the group scales/zeros come from the untouched
   * weights under the same group and sym rules. So a second context is given
   * an identity Hessian via gptq_ctx_import_hessian instead of calibration
   * data, with damp_percent 0 and act-order off (with all diagonals equal it
   * would not reorder anything anyway). */
  rtn_cfg = cfg;
  rtn_cfg.damp_percent = 0.0f;
  rtn_cfg.act_order = 0;
  check(gptq_ctx_create(out, in, &rtn_cfg, &rtn_ctx), "gptq_ctx_create (RTN)");
  identity = (double *)xmalloc((size_t)(in * in), sizeof(double));
  for (i = 0; i < in; ++i) identity[i * in + i] = 1.0;
  check(gptq_ctx_import_hessian(rtn_ctx, identity, in * in, 1), "gptq_ctx_import_hessian");
  free(identity);
  memset(&rtn_stats, 0, sizeof rtn_stats);
  rtn_stats.struct_size = sizeof rtn_stats;
  check(gptq_quantize(rtn_ctx, w, GPTQ_DTYPE_F32, out, in, &rtn_q, &rtn_stats),
        "gptq_quantize (RTN)");

  /* --- output error on held-out tokens ------------------------------------ */
  q_gptq = (float *)xmalloc((size_t)(out * in), sizeof(float));
  q_rtn = (float *)xmalloc((size_t)(out * in), sizeof(float));
  check(gptq_qtensor_dequantize(q, q_gptq, out * in), "gptq_qtensor_dequantize");
  check(gptq_qtensor_dequantize(rtn_q, q_rtn, out * in), "gptq_qtensor_dequantize (RTN)");
  ref_energy = output_energy(x_eval, o.heldout, w, out, in);
  err_rtn = relative_error(x_eval, o.heldout, w, q_rtn, out, in, ref_energy);
  err_gptq = relative_error(x_eval, o.heldout, w, q_gptq, out, in, ref_energy);

  printf("calibration: %lld tokens in %lld gptq_add_batch calls; evaluation: %lld held-out "
         "tokens\n\n",
         (long long)o.tokens, (long long)o.batches, (long long)o.heldout);
  printf("%-6s  %-26s  %-14s  %-14s\n", "method", "rel. output error (held)", "add_batch [s]",
         "quantize [s]");
  printf("%-6s  %-26.4e  %-14s  %-14.3f\n", "RTN", err_rtn, "-", rtn_stats.seconds);
  printf("%-6s  %-26.4e  %-14.3f  %-14.3f\n", "GPTQ", err_gptq, t_add, stats.seconds);
  printf("error ratio RTN / GPTQ: %.2f\n", err_gptq > 0.0 ? err_rtn / err_gptq : 0.0);
  printf("  rel. output error = ||X W^T - X Q^T||^2 / ||X W^T||^2; RTN = GPTQ with an "
         "identity Hessian and damp 0\n");
  printf("GPTQ stats: loss %.4g, damp used %.4g, damp retries %d, fell back to RTN %d, "
         "dead columns %lld, backend %s\n\n",
         stats.loss, stats.damp_percent_used, (int)stats.damp_retries,
         (int)stats.fell_back_to_rtn, (long long)stats.dead_columns,
         stats.backend == GPTQ_BACKEND_CUDA ? "CUDA" : "CPU");

  /* --- gptq_matmul vs dequantize-then-multiply ----------------------------- */
  check_rows = o.heldout < 8 ? o.heldout : 8;
  y_lib = (float *)xmalloc((size_t)(check_rows * out), sizeof(float));
  check(gptq_matmul(q, x_eval, GPTQ_DTYPE_F32, check_rows, in, NULL, y_lib, check_rows * out),
        "gptq_matmul");
  for (r = 0; r < check_rows; ++r) {
    const float *xr = x_eval + r * in;
    for (n = 0; n < out; ++n) {
      const float *qr = q_gptq + n * in;
      double ref = 0.0, mag = 0.0, diff;
      for (k = 0; k < in; ++k) {
        ref += (double)xr[k] * (double)qr[k];
        mag += fabs((double)xr[k] * (double)qr[k]);
      }
      diff = fabs((double)y_lib[r * out + n] - ref);
      if (diff > max_diff) max_diff = diff;
      if (fabs(ref) > max_ref) max_ref = fabs(ref);
      /* float accumulation over `in` terms: allow 1e-5 of sum |x q| */
      if (mag > 0.0 && diff / (1e-5 * mag) > max_tol_ratio) max_tol_ratio = diff / (1e-5 * mag);
    }
  }
  free(y_lib);
  printf("gptq_matmul vs dequantize-then-multiply (%lld rows): max abs diff %.3g "
         "(max |y| %.3g)\n",
         (long long)check_rows, max_diff, max_ref);
  if (max_tol_ratio > 1.0) {
    fprintf(stderr, "quantize_layer: gptq_matmul disagrees with dequantized weights x x "
                    "beyond 1e-5 of sum |x*q|\n");
    return 1;
  }

  /* --- checkpoint round trip ----------------------------------------------- */
  check(gptq_qtensor_get_info(q, &info), "gptq_qtensor_get_info");
  format = o.sym ? GPTQ_FORMAT_V1 : GPTQ_FORMAT_V2;
  check(gptq_checkpoint_sizes_for(out, in, info.bits, info.group_size, &sizes),
        "gptq_checkpoint_sizes_for");
  ckpt.qweight_len = sizes.qweight_rows * sizes.qweight_cols;
  ckpt.qzeros_len = sizes.qzeros_rows * sizes.qzeros_cols;
  ckpt.scales_len = sizes.scales_rows * sizes.scales_cols;
  ckpt.g_idx_len = sizes.g_idx_len;
  ckpt.qweight = (int32_t *)xmalloc((size_t)ckpt.qweight_len, sizeof(int32_t));
  ckpt.qzeros = (int32_t *)xmalloc((size_t)ckpt.qzeros_len, sizeof(int32_t));
  ckpt.scales = (uint16_t *)xmalloc((size_t)ckpt.scales_len, sizeof(uint16_t));
  ckpt.g_idx = (int32_t *)xmalloc((size_t)ckpt.g_idx_len, sizeof(int32_t));
  check(gptq_qtensor_export(q, format, &ckpt), "gptq_qtensor_export");
  check(gptq_qtensor_import(out, in, info.bits, info.group_size, format, &ckpt, &reimported),
        "gptq_qtensor_import");
  q_back = (float *)xmalloc((size_t)(out * in), sizeof(float));
  check(gptq_qtensor_dequantize(reimported, q_back, out * in),
        "gptq_qtensor_dequantize (re-imported)");
  printf("checkpoint (format v%d): qweight [%lld, %lld] qzeros [%lld, %lld] scales [%lld, %lld] "
         "g_idx [%lld]\n",
         format == GPTQ_FORMAT_V1 ? 1 : 2, (long long)sizes.qweight_rows,
         (long long)sizes.qweight_cols, (long long)sizes.qzeros_rows,
         (long long)sizes.qzeros_cols, (long long)sizes.scales_rows,
         (long long)sizes.scales_cols, (long long)sizes.g_idx_len);
  if (memcmp(q_back, q_gptq, (size_t)(out * in) * sizeof(float)) != 0) {
    for (i = 0; i + 1 < out * in && memcmp(&q_back[i], &q_gptq[i], sizeof(float)) == 0; ++i) {
    }
    fprintf(stderr,
            "quantize_layer: checkpoint round trip changed the weights: element [%lld, %lld] "
            "is %.9g, was %.9g\n",
            (long long)(i / in), (long long)(i % in), (double)q_back[i], (double)q_gptq[i]);
    return 1;
  }
  printf("checkpoint round trip: exact\n");
  printf("total run time: %.2f s\n", now_seconds() - t_total0);

  free(ckpt.qweight);
  free(ckpt.qzeros);
  free(ckpt.scales);
  free(ckpt.g_idx);
  free(q_back);
  free(q_gptq);
  free(q_rtn);
  free(x_eval);
  free(w);
  act_model_free(&model);
  gptq_qtensor_destroy(reimported);
  gptq_qtensor_destroy(rtn_q);
  gptq_qtensor_destroy(q);
  gptq_ctx_destroy(rtn_ctx);
  gptq_ctx_destroy(ctx);
  return 0;
}
