/*
 * libgptq — GPTQ post-training quantization as an embeddable C library.
 *
 * This header is the whole contract and its own manual. It is plain C99.
 *
 * ---------------------------------------------------------------------------
 * What it does
 * ---------------------------------------------------------------------------
 * GPTQ (Frantar et al., 2022) quantizes the weight matrix W [out, in] of one
 * linear layer y = x·Wᵀ to 2–8 bit integers with per-group scales and zeros.
 * It first collects the Hessian H = 2/n · Σ xᵢxᵢᵀ of the layer's inputs over
 * calibration data, then quantizes W column by column, feeding each column's
 * rounding error into the columns not yet quantized through the upper
 * Cholesky factor of H⁻¹, so that the layer's output stays close to the
 * original. The result is a packed tensor in the layout GPTQ checkpoints use
 * (qweight / qzeros / scales / g_idx), which this library can also multiply
 * with activations.
 *
 * The usual sequence for one layer:
 *
 *     gptq_config cfg;
 *     gptq_config_default(&cfg);
 *     cfg.bits = 4; cfg.group_size = 128;
 *     gptq_ctx *ctx;
 *     gptq_ctx_create(out_features, in_features, &cfg, &ctx);
 *     for each calibration batch:
 *         gptq_add_batch(ctx, x, GPTQ_DTYPE_F32, tokens, in_features, samples);
 *     gptq_qtensor *q;
 *     gptq_quantize(ctx, w, GPTQ_DTYPE_F32, out_features, in_features, &q, &stats);
 *     gptq_qtensor_export(q, GPTQ_FORMAT_V1, &buffers);   // checkpoint tensors
 *     gptq_matmul(q, x, GPTQ_DTYPE_F32, rows, in_features, NULL, y, y_len);
 *     gptq_qtensor_destroy(q);
 *     gptq_ctx_destroy(ctx);
 *
 * ---------------------------------------------------------------------------
 * Conventions that hold for every function
 * ---------------------------------------------------------------------------
 * - Matrices are dense and row-major. "Lengths" of caller buffers are counts
 *   of elements, not bytes.
 * - Every function that can fail returns gptq_status. On failure nothing the
 *   caller owns has been written to (outputs are untouched unless the
 *   function says otherwise), and a message naming the problem is available
 *   from gptq_last_error() on the calling thread.
 * - Errors. The message of the last failure is THREAD-LOCAL: it belongs to the
 *   thread that made the failing call and stays readable until that thread's
 *   next failing call. A successful call does not clear it. Bindings for
 *   runtimes that move work between threads (Go) must read it in the same
 *   native call that failed.
 * - No C++ exception, signal or abort crosses this API: invalid input of any
 *   kind is reported as a status. (Pointers that are non-NULL but point to
 *   too little memory cannot be detected; lengths are checked where given.)
 * - Threads. A gptq_ctx must be used by one thread at a time (no internal
 *   locking). A finished gptq_qtensor is immutable: any number of threads may
 *   call gptq_matmul, gptq_qtensor_dequantize, gptq_qtensor_export and the
 *   query functions on it at once. Different objects are independent.
 *   Functions without an object argument are thread-safe.
 * - Ownership. Objects this library allocates have a matching _destroy
 *   function, which accepts NULL. Buffers passed in are only read during the
 *   call and never retained.
 */
#ifndef GPTQ_H
#define GPTQ_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------
 * Export macro: only symbols marked GPTQ_API are visible in the shared library.
 * ------------------------------------------------------------------------- */
#if defined(_WIN32)
#  if defined(GPTQ_BUILDING_LIBRARY)
#    define GPTQ_API __declspec(dllexport)
#  else
#    define GPTQ_API __declspec(dllimport)
#  endif
#elif defined(__GNUC__) && __GNUC__ >= 4
#  define GPTQ_API __attribute__((visibility("default")))
#else
#  define GPTQ_API
#endif

/* In C++ every enum below has int as its fixed underlying type: any int a C
 * caller passes is then a valid value to hold (and to reject), and the layout
 * is int, as in C. */
#ifdef __cplusplus
#  define GPTQ_ENUM_INT : int
#else
#  define GPTQ_ENUM_INT
#endif

/* ---------------------------------------------------------------------------
 * Version
 * ------------------------------------------------------------------------- */
#define GPTQ_VERSION_MAJOR 0
#define GPTQ_VERSION_MINOR 1
#define GPTQ_VERSION_PATCH 0
/* MAJOR*10000 + MINOR*100 + PATCH, comparable with gptq_version_number(). */
#define GPTQ_VERSION_NUMBER \
  (GPTQ_VERSION_MAJOR * 10000 + GPTQ_VERSION_MINOR * 100 + GPTQ_VERSION_PATCH)

/* The version of the library actually loaded, as GPTQ_VERSION_NUMBER. A
 * program built against header version X runs against any library of the same
 * MAJOR whose number is >= X. */
GPTQ_API uint32_t gptq_version_number(void);
/* The same as "MAJOR.MINOR.PATCH"; static storage, never NULL. */
GPTQ_API const char *gptq_version_string(void);

/* ---------------------------------------------------------------------------
 * Status codes. Values are fixed forever; new codes are only appended.
 * ------------------------------------------------------------------------- */
typedef enum gptq_status GPTQ_ENUM_INT {
  GPTQ_OK = 0,
  /* A required pointer argument was NULL. */
  GPTQ_ERR_NULL_POINTER = 1,
  /* A size or count was zero, negative or absurdly large. */
  GPTQ_ERR_INVALID_SIZE = 2,
  /* Sizes that must agree do not: a batch whose width is not the layer's
   * in_features, weights of the wrong shape, a caller buffer shorter than
   * needed, a matmul whose x width is not the tensor's in_features. */
  GPTQ_ERR_SIZE_MISMATCH = 3,
  /* Activations, weights, bias or an imported Hessian contain NaN or Inf. */
  GPTQ_ERR_NON_FINITE = 4,
  /* A configuration value is out of range (bits, group size, damping, ...),
   * or gptq_config.struct_size is not one this library knows. */
  GPTQ_ERR_INVALID_CONFIG = 5,
  /* The call is not valid in the object's current state, e.g. quantizing a
   * context that has seen no calibration data. */
  GPTQ_ERR_INVALID_STATE = 6,
  /* The request is well-formed but cannot be represented: a checkpoint format
   * that cannot hold these zeros, a shape the packed layout cannot hold, an
   * unknown dtype or enum value. */
  GPTQ_ERR_UNSUPPORTED = 7,
  /* The requested backend cannot be used (not built, not loadable, no device). */
  GPTQ_ERR_BACKEND_UNAVAILABLE = 8,
  /* Memory could not be allocated. The object is unchanged. */
  GPTQ_ERR_OUT_OF_MEMORY = 9,
  /* A progress callback asked to stop. The object is unchanged. */
  GPTQ_ERR_CANCELLED = 10,
  /* Imported data is inconsistent: codes, zeros or g_idx out of range,
   * non-finite scales. */
  GPTQ_ERR_INVALID_DATA = 11,
  /* A bug in this library; the message says where. Please report it. */
  GPTQ_ERR_INTERNAL = 12
} gptq_status;

/* A short, static, English name for a status ("GPTQ_ERR_NULL_POINTER: ...").
 * Never NULL; unknown values give "unknown status". Thread-safe. */
GPTQ_API const char *gptq_status_string(gptq_status status);

/* The detailed message of the last failing call made by the calling thread,
 * e.g. "gptq_add_batch: x has 511 columns but the layer has in_features 512".
 * Empty string if this thread has had no failure. The pointer stays valid
 * until this thread's next call into the library. Never NULL. */
GPTQ_API const char *gptq_last_error(void);

/* ---------------------------------------------------------------------------
 * Element types of caller buffers (activations, weights, bias, outputs).
 * ------------------------------------------------------------------------- */
typedef enum gptq_dtype GPTQ_ENUM_INT {
  GPTQ_DTYPE_F32 = 0,  /* IEEE binary32 */
  GPTQ_DTYPE_F16 = 1,  /* IEEE binary16, passed as uint16_t bit patterns */
  GPTQ_DTYPE_BF16 = 2  /* bfloat16, passed as uint16_t bit patterns */
} gptq_dtype;

/* Which implementation runs the work.
 *
 * The CPU backend is always there. The CUDA backend is a separate plugin,
 * libgptq-cuda.so, that the library loads at run time (libgptq itself never
 * links CUDA and runs on machines without it). It is looked for, loaded and
 * checked (ABI version, a GPU of compute capability >= 8.0) once per
 * process, the first time a context asks for AUTO or CUDA:
 *   - GPTQ_CUDA_PLUGIN=/full/path/libgptq-cuda.so   use exactly that file;
 *   - otherwise libgptq-cuda.so in the directory libgptq was loaded from.
 * The environment variable GPTQ_BACKEND=cpu|cuda|auto, read once per
 * process, overrides the backend of every context's config (logged at INFO
 * when it changes the choice); any other non-empty value makes
 * gptq_ctx_create fail with GPTQ_ERR_INVALID_CONFIG.
 *
 * When the plugin loads, it quantizes and multiplies a small fixed problem
 * and the results are compared with the CPU backend's; a plugin whose
 * results disagree (a broken driver, an unsupported GPU) is refused, with
 * the reason, like any other unusable plugin: users are never handed kernels
 * that are wrong on their GPU.
 *
 * The CUDA backend runs on the CUDA device current on the calling thread
 * when the plugin was loaded (device 0 unless the caller chose another). */
typedef enum gptq_backend GPTQ_ENUM_INT {
  /* CUDA when the CUDA plugin is present and usable (a suitable GPU, a
   * complete plugin), else the CPU; the choice and the reason are logged at
   * GPTQ_LOG_INFO. */
  GPTQ_BACKEND_AUTO = 0,
  GPTQ_BACKEND_CPU = 1,
  /* Only CUDA; gptq_ctx_create fails with GPTQ_ERR_BACKEND_UNAVAILABLE if it
   * cannot be used, and the message says exactly why: the paths tried, the
   * loader's error, an ABI mismatch, the CUDA runtime's error text, or the
   * entries the plugin is missing. */
  GPTQ_BACKEND_CUDA = 2
} gptq_backend;

/* Floating-point precision of the Hessian, the factorization and the GPTQ
 * loop. F32 is what the reference implementation uses and is the fast path;
 * F64 takes longer and gives results that depend far less on summation
 * order (useful for ill-conditioned Hessians and for testing). */
typedef enum gptq_precision GPTQ_ENUM_INT {
  GPTQ_PRECISION_F32 = 0,
  GPTQ_PRECISION_F64 = 1
} gptq_precision;

/* Where a caller buffer lives. Only the CUDA backend accepts device memory:
 * pointers of the CUDA device the backend runs on (cudaMalloc, or the
 * storage of a torch / CuPy tensor there). AUTO asks the CUDA runtime about
 * each pointer (cudaPointerGetAttributes): device and managed memory count
 * as DEVICE, everything else as HOST; on the CPU backend AUTO is HOST.
 * Device buffers are read and written by work queued on the caller's stream
 * (gptq_config.stream, gptq_matmul_options.stream): the call returns as soon
 * as the work is queued, without waiting for it, and the caller orders its
 * own use of the buffers on that stream as for any CUDA kernel. */
typedef enum gptq_memory GPTQ_ENUM_INT {
  GPTQ_MEMORY_AUTO = 0,
  GPTQ_MEMORY_HOST = 1,
  GPTQ_MEMORY_DEVICE = 2
} gptq_memory;

typedef enum gptq_log_level GPTQ_ENUM_INT {
  GPTQ_LOG_DEBUG = 0,
  GPTQ_LOG_INFO = 1,
  GPTQ_LOG_WARN = 2,
  GPTQ_LOG_ERROR = 3
} gptq_log_level;

/* Log sink. `message` is valid only during the call. Called on the thread that
 * made the library call. Must not call back into the same object. */
typedef void (*gptq_log_fn)(gptq_log_level level, const char *message,
                            void *user_data);

/* Progress of a long operation: `done` of `total` units (columns for
 * gptq_quantize). Return 0 to continue, non-zero to cancel: the operation then
 * stops at the next check (at most one block of columns later) and returns
 * GPTQ_ERR_CANCELLED, leaving its object as it was before the call. */
typedef int (*gptq_progress_fn)(int64_t done, int64_t total, void *user_data);

/* The grid the weights are quantized onto.
 *
 * GPTQ_GRID_GPTQ is GPTQ's own: `bits`, `group_size` and `sym` as
 * configured, integer zeros, fp16 scales (checkpoints for transformers,
 * vLLM, GPTQModel).
 *
 * The others are llama.cpp's GGUF block formats: GPTQ runs on the block
 * format's own grid, each block's parameters found by the format's own rule
 * from the error-updated weights when the block's first column is reached
 * (exactly as groups are, see "Group parameters" under gptq_quantize), and
 * gptq_gguf_export writes the tensor as the format's bytes. Blocks are 32
 * consecutive input columns of one row; d and m are fp16 and are rounded to
 * fp16 before the block's codes are chosen; codes are round-to-nearest-even
 * of the error-updated weight, clamped to the code range:
 *   Q4_0: d = (the weight of largest magnitude, sign kept) / -8,
 *         codes 0..15, value (q - 8)·d;
 *   Q4_1: d = (max - min) / 15, m = min, codes 0..15, value q·d + m;
 *   Q5_0: d = (the weight of largest magnitude, sign kept) / -16,
 *         codes 0..31, value (q - 16)·d;
 *   Q5_1: d = (max - min) / 31, m = min, codes 0..31, value q·d + m;
 *   Q8_0: d = max|w| / 127, codes -128..127 (stored by gptq_qtensor_codes
 *         as q + 128), value q·d.
 * A block whose d is 0 (all its weights 0, or max = min) gives code 8, 16,
 * 0, 0 and 128 respectively for every weight.
 * Q4_0, Q5_0 and Q8_0 then refine d with the Hessian diagonal h (the
 * importance of each input column, as llama.cpp's importance matrix): the
 * candidates are the weight above divided by (divisor + k/10), k = -20..20,
 * each also refitted by weighted least squares to its codes
 * (d = Σ h·w·q / Σ h·q², q the signed code) and that refit refitted once
 * more to its own codes, all rounded to fp16; the one with the smallest
 * Σ h·(w - value)² over the block is kept, the rule's own d on ties. Q4_1 and Q5_1 likewise search (d, m): the rule's pair, and
 * the ranges [min, min + (max - min)·maxq/(maxq + k/10)], each also refitted
 * by weighted least squares (w ≈ q·d + m) to its codes.
 *
 * The K-quants have super-blocks of 256 consecutive columns of one row,
 * each with an fp16 d (and dmin) that scales the small integer scales (and
 * mins) of its sub-blocks: 8 sub-blocks of 32 columns with 6-bit sc and m
 * (Q4_K, Q5_K), 16 of 16 columns with int8 sc (Q6_K). The sub-blocks are
 * the groups (g_idx = j / 32, or j / 16). in_features must be a multiple of
 * 256.
 *   Q4_K: value d·sc·q - dmin·m, codes 0..15, sc and m 0..63;
 *   Q5_K: the same with codes 0..31;
 *   Q6_K: value d·sc·(q - 32), codes 0..63, sc -128..127.
 * d and dmin are fixed when the super-block's first column is reached,
 * from the error-updated weights of the whole super-block at that moment:
 * each sub-block's own fit (below) is made, and d = (the largest sub-block
 * scale) / 63, dmin = (the largest sub-block min) / 63 (Q4_K, Q5_K), or
 * d = (the sub-block scale of largest magnitude, sign kept) / -128 (Q6_K),
 * rounded to fp16. A sub-block's sc (and m) are fixed when its first column
 * is reached, from its error-updated weights then: its own fit, a scale
 * s >= 0 and a min m >= 0 with the range including 0 (Q4_K, Q5_K: the
 * range [min(min, 0), max] over maxq + k/10 steps, k = -9..9, each also
 * refitted by weighted least squares, the least Σ h·(w - value)² kept),
 * or a signed scale (Q6_K: as Q4_0 with divisor -32 instead of -8), gives
 * sc = rint(s/d) and m = rint(m/dmin), clamped to the integer range; then
 * sc ± 1 and m ± 1 (Q6_K: sc ± 1, ± 2) are tried and the integers of least
 * Σ h·(w - value)² over the sub-block are kept, the rounded ones on ties.
 * Codes are round-to-nearest-even of (w + dmin·m)/(d·sc), or w/(d·sc) + 32,
 * clamped; a sub-block whose d·sc is 0 gives code 0 (Q6_K: 32).
 * With act_group_aware, the super-blocks are taken by descending largest
 * Hessian diagonal, within each its sub-blocks likewise, within each
 * sub-block its columns by descending diagonal (g_idx stays j / 32 or
 * j / 16); each super-block's d is fixed when its first sub-block in that
 * order is reached. */
typedef enum gptq_grid GPTQ_ENUM_INT {
  GPTQ_GRID_GPTQ = 0,
  GPTQ_GRID_Q4_0 = 1,
  GPTQ_GRID_Q4_1 = 2,
  GPTQ_GRID_Q5_0 = 3,
  GPTQ_GRID_Q5_1 = 4,
  GPTQ_GRID_Q8_0 = 5,
  GPTQ_GRID_Q4_K = 6,
  GPTQ_GRID_Q5_K = 7,
  GPTQ_GRID_Q6_K = 8
} gptq_grid;

/* ---------------------------------------------------------------------------
 * Configuration of one layer context.
 *
 * Always initialize with gptq_config_default(), then change fields. The
 * first field is the struct's size as the caller compiled it; the library
 * reads only that many bytes, so programs built against an older header keep
 * working when fields are appended. Fields are never reordered or removed.
 * ------------------------------------------------------------------------- */
typedef struct gptq_config {
  size_t struct_size;        /* = sizeof(gptq_config); set by _default */

  int32_t bits;              /* 2..8. Default 4. */
  /* Columns (input features) per quantization group, or -1 for one group
   * spanning all columns. Any positive size is allowed; the last group may be
   * shorter. Default 128. */
  int32_t group_size;
  /* 1: symmetric (zero fixed at 2^(bits-1)); 0: asymmetric (zero chosen per
   * group). Default 1. */
  int32_t sym;
  /* 1: quantize columns in order of descending Hessian diagonal
   * ("act-order", "desc_act"). Ties keep the original column order.
   * Default 0. */
  int32_t act_order;
  /* With groups: 1 computes every group's scale/zero from the weights before
   * any column is quantized, over original column ranges, so that g_idx stays
   * j / group_size even with act-order. 0 computes a group's parameters when
   * its first column is reached (in the quantization order). Default 0. */
  int32_t static_groups;
  /* Columns per lazy block: errors are fed forward inside a block column by
   * column and to the rest of the matrix once per block. Any value >= 1.
   * Default 128. See "Group parameters" under gptq_quantize for the one way
   * the block size shows in the result. */
  int32_t block_size;
  /* Damping added to the Hessian diagonal, as a fraction of its mean:
   * H += damp_percent * mean(diag H) * I. 0 <= damp_percent < 1.
   * Default 0.01. */
  float damp_percent;
  /* If the Cholesky factorization fails, damp_percent is raised by this much
   * and the factorization retried, while it stays below 1; after that the
   * layer falls back to round-to-nearest (see gptq_quant_stats). 0 disables
   * the retries. Default 0.0025. */
  float damp_increment;
  /* 1: search, per group and row, for the clipping range that minimizes
   * Σ|q - w|^mse_norm, shrinking the min/max range in mse_grid steps down to
   * (1 - mse_max_shrink) of it. Default 0 (plain min/max). */
  int32_t mse;
  float mse_norm;            /* > 0. Default 2.4. */
  int32_t mse_grid;          /* >= 1. Default 100. */
  float mse_max_shrink;      /* in (0, 1]. Default 0.8. */
  gptq_backend backend;      /* Default GPTQ_BACKEND_AUTO. */
  gptq_precision precision;  /* Default GPTQ_PRECISION_F32. */
  /* Progress callback for gptq_quantize, or NULL. */
  gptq_progress_fn progress;
  void *progress_user_data;
  /* Log callback for this context, or NULL for silence. */
  gptq_log_fn log;
  void *log_user_data;
  /* Lowest level passed to `log`. Default GPTQ_LOG_INFO. */
  gptq_log_level log_level;
  /* Threads for the CPU backend's own loops (the GPTQ block loop, matmul
   * kernels); 0 = one per core. The BLAS library's threading is its own
   * (OpenBLAS: OPENBLAS_NUM_THREADS). Results do not depend on it.
   * Default 0. */
  int32_t num_threads;
  /* CUDA backend: the caller's stream (a cudaStream_t passed as void *) on
   * which this context's device work runs, and which the tensors it makes
   * use for their matmuls unless a call names another. NULL is CUDA's
   * default stream. Calls that return host results (gptq_quantize's
   * tensor, an export of the Hessian) wait for that stream. The stream
   * must outlive the context and every tensor that uses it: their memory is
   * freed in its order. Ignored by the CPU backend. Default NULL. */
  void *stream;
  /* Where the x of gptq_add_batch and the w of gptq_quantize live (see
   * gptq_memory). Device buffers are checked for NaN/Inf on the device, as
   * host buffers are on the host. Default GPTQ_MEMORY_AUTO. */
  gptq_memory memory;
  /* 1: group-aware act-order (GPTQModel's act_group_aware). The groups stay
   * the original column ranges [g·group_size, (g+1)·group_size), so g_idx is
   * j / group_size as without act-order (checkpoints then need no
   * desc_act, which fast inference kernels refuse), but they are quantized
   * in order of their largest Hessian diagonal, descending, and within each
   * group its columns by descending diagonal; a last, shorter group comes
   * last. Each group's parameters are found when its first column is
   * reached, as without act-order (or before any column, with
   * static_groups). Not with act_order = 1. Default 0. */
  int32_t act_group_aware;
  /* The grid (see gptq_grid). With a GGUF grid, bits and group_size are the
   * format's (4, 5, 6 or 8 bits; groups of 32 columns, 16 for Q6_K) and
   * sym and mse are ignored; in_features must be a multiple of the block
   * (32; 256 for the K-quants); act_order = 1 needs static_groups = 1 (a
   * block is consecutive columns), while act_group_aware keeps blocks whole
   * and is allowed (for the K-quants it takes each super-block whole: see
   * gptq_grid); the work runs on the CPU backend (AUTO picks it; CUDA is
   * refused). Default GPTQ_GRID_GPTQ. */
  gptq_grid grid;
} gptq_config;

/* Fill *cfg with the defaults above, struct_size included. NULL is ignored. */
GPTQ_API void gptq_config_default(gptq_config *cfg);

/* ---------------------------------------------------------------------------
 * Layer context
 * ------------------------------------------------------------------------- */

/* Opaque: the configuration and Hessian accumulator of one linear layer.
 * Used by one thread at a time; freed with gptq_ctx_destroy. */
typedef struct gptq_ctx gptq_ctx;

/* Create a context for a layer with weight [out_features, in_features].
 * cfg may be NULL for the defaults; it is copied (callbacks and user_data
 * pointers included) and not retained.
 * Errors: NULL_POINTER (out), INVALID_SIZE (a dimension < 1 or > 2^31-1),
 * INVALID_CONFIG (a field out of range; the message names it),
 * BACKEND_UNAVAILABLE (backend CUDA requested but unusable),
 * OUT_OF_MEMORY (the in_features² Hessian cannot be allocated).
 * On failure *out is set to NULL. */
GPTQ_API gptq_status gptq_ctx_create(int64_t out_features, int64_t in_features,
                                     const gptq_config *cfg, gptq_ctx **out);

/* Free a context. NULL is ignored. Quantized tensors it produced stay valid. */
GPTQ_API void gptq_ctx_destroy(gptq_ctx *ctx);

/* Add a batch of calibration activations x [rows, cols] (the layer's inputs,
 * one token per row) to the Hessian. cols must equal in_features.
 * `samples` is the number of calibration samples these rows stand for and is
 * the weight of this batch in the running mean, exactly as in the reference
 * implementation, which counts an input of shape [batch, seq, in] as `batch`
 * samples:  H ← H·n/(n+samples);  n ← n+samples;  H ← H + (2/n)·xᵀx.
 * (Pass samples = rows for a per-token mean.) Any number of calls.
 * On the CUDA backend x may be device memory (see gptq_memory); it is then
 * scanned for NaN/Inf on the device, and the call waits for that scan.
 * Errors: NULL_POINTER, INVALID_SIZE (rows or samples < 1, or the total
 * sample count would overflow), SIZE_MISMATCH (cols != in_features),
 * UNSUPPORTED (dtype), NON_FINITE (x holds NaN/Inf, or values so large
 * (~1e17 with precision F32) that the Hessian would overflow; checked before
 * anything changes), OUT_OF_MEMORY. On any error the Hessian is unchanged and
 * the context stays usable. */
GPTQ_API gptq_status gptq_add_batch(gptq_ctx *ctx, const void *x,
                                    gptq_dtype dtype, int64_t rows,
                                    int64_t cols, int64_t samples);

/* Number of calibration samples seen so far (0 for a new context), or -1 if
 * ctx is NULL. */
GPTQ_API int64_t gptq_ctx_samples(const gptq_ctx *ctx);

/* Merge the Hessian of `src` into `dst` (calibration sharded over threads,
 * processes or machines): the sample-weighted mean of the two, as if dst had
 * seen src's batches too. src is unchanged. Both must have the same
 * in_features; their precisions may differ. Merging an empty src is a no-op.
 * Errors: NULL_POINTER, SIZE_MISMATCH, INVALID_STATE (dst == src),
 * INVALID_SIZE (the total sample count would overflow), NON_FINITE (an F64
 * src holds values beyond the float range of an F32 dst), OUT_OF_MEMORY.
 * On any error dst is unchanged. */
GPTQ_API gptq_status gptq_ctx_merge(gptq_ctx *dst, const gptq_ctx *src);

/* Copy the Hessian [in_features, in_features] (row-major, as doubles) and the
 * sample count out of the context. h_len must be >= in_features².
 * Errors: NULL_POINTER, SIZE_MISMATCH. */
GPTQ_API gptq_status gptq_ctx_export_hessian(const gptq_ctx *ctx, double *h,
                                             int64_t h_len, int64_t *samples);

/* Merge an exported Hessian (e.g. from another machine) with `samples`
 * samples into the context, exactly as gptq_ctx_merge would; into an empty
 * context this is a plain load. h must be [in_features, in_features] and
 * finite. With precision F32 the values are rounded to float.
 * Errors: NULL_POINTER, SIZE_MISMATCH (h_len != in_features²),
 * INVALID_SIZE (samples < 1, or the total sample count would overflow),
 * NON_FINITE (NaN/Inf, or with precision F32 a value beyond float range).
 * On any error the context is unchanged. */
GPTQ_API gptq_status gptq_ctx_import_hessian(gptq_ctx *ctx, const double *h,
                                             int64_t h_len, int64_t samples);

/* ---------------------------------------------------------------------------
 * Quantization
 * ------------------------------------------------------------------------- */

/* Opaque: a quantized weight matrix (codes, scales, zeros, g_idx), laid out
 * for its backend's matmul by its first matmul (a tensor imported onto the
 * CPU backend: at import; see gptq_qtensor_import). Immutable to callers: may
 * be shared by threads; freed with gptq_qtensor_destroy. */
typedef struct gptq_qtensor gptq_qtensor;

/* What gptq_quantize reports. Initialize struct_size = sizeof(gptq_quant_stats)
 * before the call; only that many bytes are written. */
typedef struct gptq_quant_stats {
  size_t struct_size;
  /* Σ (w - q)² / U_jj² / 2 over all weights, U the upper Cholesky factor of
   * the damped H⁻¹ (the reference's "error"). For a round-to-nearest
   * fallback, U = I. */
  double loss;
  /* damp_percent finally used (>= the configured one after retries). */
  double damp_percent_used;
  /* Number of failed Cholesky attempts before success or fallback. */
  int32_t damp_retries;
  /* 1 if every factorization failed and the layer was quantized with
   * round-to-nearest (no error feedback); 0 otherwise. */
  int32_t fell_back_to_rtn;
  /* Input columns whose Hessian diagonal was 0 (never activated); their
   * weights were treated as 0, as in the reference. */
  int64_t dead_columns;
  /* Wall-clock seconds spent in gptq_quantize. */
  double seconds;
  /* The backend that did the work (CPU or CUDA, never AUTO). */
  gptq_backend backend;
} gptq_quant_stats;

/* Quantize the layer's weights w [rows, cols] (rows = out_features,
 * cols = in_features) with the Hessian collected so far, and return the
 * quantized tensor in *out (caller destroys it). stats may be NULL.
 * The context is not consumed: more batches may be added and quantize called
 * again. The Hessian itself is left unchanged.
 *
 * Algorithm (the reference GPTQ, faithfully):
 *  - dead columns (diag H = 0) get diag 1 and their weights set to 0;
 *  - act-order permutes columns by descending diag H (stable);
 *  - H += damp · mean(diag H) · I; U = upper Cholesky factor of H⁻¹,
 *    computed with one Cholesky and one triangular inverse;
 *  - columns in blocks of block_size; each column is rounded with its
 *    group's scale/zero: code = clamp(round_half_even(w / scale) + zero,
 *    0, 2^bits - 1); its error (w - q)/U_jj is fed into the rest of the
 *    block at once and into later blocks by one matrix product per block.
 *  - Group parameters. Per row: xmin = min(0, min w), xmax = max(0, max w)
 *    over the group's columns; symmetric: xmax = max(|xmin|, xmax), and
 *    xmin = -xmax if xmin < 0; if both are 0 they become -1, +1;
 *    scale = (xmax - xmin) / (2^bits - 1); zero = 2^(bits-1) (symmetric) or
 *    round(-xmin / scale) (asymmetric); then the optional MSE clip search.
 *    A group's parameters are taken from the weights as they stand at the
 *    start of the block that contains the group's first column, i.e. with
 *    the errors of all earlier blocks fed in (exactly what the reference
 *    does; when block_size is a multiple of group_size and groups start at
 *    block starts, this is the fully updated weights). group_size -1 takes
 *    parameters once from the original weights, before dead columns are
 *    zeroed (as the reference does). Static groups take them from the
 *    weights after dead columns are zeroed, before any column is quantized.
 *  - g_idx[j] is the group of input column j: j / group_size without
 *    act-order or with static groups; with act-order alone, the position of
 *    column j in the quantization order, divided by group_size.
 * The codes, scales and zeros come straight from the loop. Scales are kept
 * rounded to fp16, as checkpoints store them; the loop itself (and `loss`)
 * uses the unrounded float scales, as the reference does.
 *
 * If the factorization fails even after raising the damping (see
 * damp_increment), the layer is quantized with round-to-nearest using the
 * same groups, fell_back_to_rtn is set, and a warning is logged.
 *
 * Weights too small for a float scale (denormals) quantize to exactly 0.
 *
 * Backends. The CUDA backend runs the same algorithm; its sums (the
 * factorization, the block updates) are ordered differently, so a weight
 * that falls within rounding of a tie between two codes may take the other
 * one, and the rest of its row then follows from that; every other code,
 * and every code in a row without such a tie, is the CPU backend's. w may
 * be device memory there (see gptq_memory). The tensor's host copy of the
 * codes, scales and zeros is written before the call returns.
 *
 * Errors: NULL_POINTER, SIZE_MISMATCH (rows != out_features or
 * cols != in_features), UNSUPPORTED (dtype; or a scale beyond the fp16 range,
 * i.e. weights of magnitude ~65504·2^bits), NON_FINITE (w holds NaN/Inf),
 * INVALID_SIZE (stats->struct_size smaller than a size_t),
 * INVALID_STATE (no calibration data yet), CANCELLED, OUT_OF_MEMORY.
 * On any error *out is NULL and the context is unchanged and usable. */
GPTQ_API gptq_status gptq_quantize(gptq_ctx *ctx, const void *w,
                                   gptq_dtype dtype, int64_t rows,
                                   int64_t cols, gptq_qtensor **out,
                                   gptq_quant_stats *stats);

/* Free a quantized tensor. NULL is ignored. */
GPTQ_API void gptq_qtensor_destroy(gptq_qtensor *q);

/* Shape and parameters of a quantized tensor. */
typedef struct gptq_qtensor_info {
  int64_t out_features;  /* N: rows of the original weight */
  int64_t in_features;   /* K: columns of the original weight */
  int32_t bits;
  int32_t group_size;    /* as configured; -1 for one group */
  int64_t groups;        /* G: number of scale/zero rows */
  /* 1 if g_idx is not j / group_size (act-order without static groups). */
  int32_t act_order;
} gptq_qtensor_info;

/* Errors: NULL_POINTER. */
GPTQ_API gptq_status gptq_qtensor_get_info(const gptq_qtensor *q,
                                           gptq_qtensor_info *info);

/* Write the dequantized weights scale·(code - zero), as float32
 * [out_features, in_features] in the original column order. These are exactly
 * the weights gptq_matmul multiplies by (up to its documented rounding).
 * Errors: NULL_POINTER, SIZE_MISMATCH (out_len < out_features·in_features). */
GPTQ_API gptq_status gptq_qtensor_dequantize(const gptq_qtensor *q, float *out,
                                             int64_t out_len);

/* Raw integer codes [out_features, in_features], one byte each, original
 * column order, values 0 .. 2^bits - 1.
 * Errors: NULL_POINTER, SIZE_MISMATCH (out_len < out_features·in_features). */
GPTQ_API gptq_status gptq_qtensor_codes(const gptq_qtensor *q, uint8_t *out,
                                        int64_t out_len);

/* ---------------------------------------------------------------------------
 * GPTQ checkpoint layout (what transformers, vLLM and GPTQModel load).
 *
 * For K = in_features, N = out_features, G = groups, b = bits:
 *   qweight  int32 [K·b/32, N]   codes packed along K
 *   qzeros   int32 [G, N·b/32]   zeros packed along N
 *   scales   fp16  [G, N]        (uint16_t bit patterns)
 *   g_idx    int32 [K]
 * Packing is a little-endian bit stream: value i of a packed run occupies
 * bits [b·i, b·i + b) counted from the least significant bit of the first
 * 32-bit word, so 3-bit values cross word boundaries (32 values in 3 words).
 * Hence K must be a multiple of 32/b (of 32 for 3 bits) and N likewise.
 * ------------------------------------------------------------------------- */
typedef enum gptq_checkpoint_format GPTQ_ENUM_INT {
  /* Stores zero - 1 (the historical convention readers assume by default).
   * Cannot hold a zero of 0; exporting such a tensor fails. */
  GPTQ_FORMAT_V1 = 1,
  /* Stores the zero as is. */
  GPTQ_FORMAT_V2 = 2
} gptq_checkpoint_format;

/* Element counts of the four checkpoint tensors. */
typedef struct gptq_checkpoint_sizes {
  int64_t qweight_rows, qweight_cols;  /* K·b/32, N */
  int64_t qzeros_rows, qzeros_cols;    /* G, N·b/32 */
  int64_t scales_rows, scales_cols;    /* G, N */
  int64_t g_idx_len;                   /* K */
} gptq_checkpoint_sizes;

/* Caller buffers for export / import; lengths in elements. */
typedef struct gptq_checkpoint_tensors {
  int32_t *qweight;  int64_t qweight_len;
  int32_t *qzeros;   int64_t qzeros_len;
  uint16_t *scales;  int64_t scales_len;
  int32_t *g_idx;    int64_t g_idx_len;
} gptq_checkpoint_tensors;

/* Sizes the checkpoint tensors of a tensor would have (or would need).
 * Errors: NULL_POINTER, INVALID_SIZE, INVALID_CONFIG (bits),
 * UNSUPPORTED (K or N not a multiple of the packing unit). */
GPTQ_API gptq_status gptq_checkpoint_sizes_for(int64_t out_features,
                                               int64_t in_features,
                                               int32_t bits,
                                               int32_t group_size,
                                               gptq_checkpoint_sizes *sizes);

/* Write q into the four caller buffers in checkpoint layout.
 * Errors: NULL_POINTER, SIZE_MISMATCH (a buffer shorter than its size),
 * UNSUPPORTED (K or N not a multiple of the packing unit; format V1 with a
 * zero of 0, as asymmetric quantization produces: use V2), nothing is written
 * then. */
GPTQ_API gptq_status gptq_qtensor_export(const gptq_qtensor *q,
                                         gptq_checkpoint_format format,
                                         const gptq_checkpoint_tensors *t);

/* Build a tensor from checkpoint buffers quantized elsewhere (an engine
 * loading a checkpoint). g_idx may be NULL, meaning j / group_size. With V1,
 * zero = stored + 1, as readers compute it (so a stored 2^b - 1 is a zero of
 * 2^b). The caller's buffers are copied. The tensor goes to the backend
 * GPTQ_BACKEND_AUTO chooses (the CUDA backend where it is usable): see
 * gptq_qtensor_import_ex to choose. On the CPU backend the import lays the
 * tensor out for matmul at once, straight from qweight, and keeps its codes
 * (at their bit width, about the bytes of qweight), scales and zeros only in
 * that layout; gptq_qtensor_codes, _export and _dequantize read them from
 * there. It never holds the codes a byte each for the whole tensor.
 * Errors: NULL_POINTER, INVALID_SIZE, INVALID_CONFIG (bits, group size),
 * UNSUPPORTED (shape, format), SIZE_MISMATCH (buffer lengths),
 * INVALID_DATA (g_idx out of range, non-finite scales), OUT_OF_MEMORY. */
GPTQ_API gptq_status gptq_qtensor_import(int64_t out_features,
                                         int64_t in_features, int32_t bits,
                                         int32_t group_size,
                                         gptq_checkpoint_format format,
                                         const gptq_checkpoint_tensors *t,
                                         gptq_qtensor **out);

/* Where gptq_qtensor_import_ex puts a tensor and reads its buffers.
 * Initialize with gptq_import_options_default(). */
typedef struct gptq_import_options {
  size_t struct_size;   /* = sizeof(gptq_import_options); set by _default */
  /* The backend whose matmul runs the tensor, resolved as for a context
   * (GPTQ_BACKEND overrides it). Default GPTQ_BACKEND_AUTO. */
  gptq_backend backend;
  /* Where the four checkpoint buffers live. Device buffers (CUDA backend
   * only) are copied to the host once, checked like host buffers, and kept
   * in the library's own layout on the device; the call waits for the copy.
   * Default GPTQ_MEMORY_AUTO. */
  gptq_memory memory;
  /* The stream the tensor's matmuls use unless a call names another (see
   * gptq_config.stream). Default NULL. */
  void *stream;
} gptq_import_options;

/* Fill *opts with the defaults above. NULL is ignored. */
GPTQ_API void gptq_import_options_default(gptq_import_options *opts);

/* gptq_qtensor_import with options (NULL = defaults). gptq_qtensor_import is
 * this with default options: the tensor goes to the backend AUTO chooses.
 * Errors: those of gptq_qtensor_import, plus INVALID_CONFIG (a bad options
 * struct or GPTQ_BACKEND value), BACKEND_UNAVAILABLE (the backend cannot be
 * used), UNSUPPORTED (device memory on the CPU backend). */
GPTQ_API gptq_status gptq_qtensor_import_ex(int64_t out_features,
                                            int64_t in_features, int32_t bits,
                                            int32_t group_size,
                                            gptq_checkpoint_format format,
                                            const gptq_checkpoint_tensors *t,
                                            const gptq_import_options *opts,
                                            gptq_qtensor **out);

/* The backend a tensor lives on and whose matmul runs it (CPU or CUDA),
 * or GPTQ_BACKEND_AUTO if q is NULL. */
GPTQ_API gptq_backend gptq_qtensor_backend(const gptq_qtensor *q);

/* The grid q's codes lie on: the gptq_config.grid of the context that made
 * it (GPTQ_GRID_GPTQ for imported checkpoints), which is the grid to pass to
 * gptq_gguf_size for gptq_gguf_export. GPTQ_GRID_GPTQ if q is NULL. */
GPTQ_API gptq_grid gptq_qtensor_grid(const gptq_qtensor *q);

/* ---------------------------------------------------------------------------
 * GGUF blocks (what llama.cpp loads).
 *
 * A tensor quantized with a GGUF grid (gptq_config.grid) is written as the
 * block format's bytes, a GGUF tensor of ne0 = in_features,
 * ne1 = out_features: row after row, each row its in_features/32 blocks in
 * column order, little-endian, packed (no padding):
 *   Q4_0 (18 bytes): d fp16; qs[16]: byte j = code j | code (j+16) << 4
 *   Q4_1 (20 bytes): d fp16, m fp16; qs[16] as Q4_0
 *   Q5_0 (22 bytes): d fp16; qh[4], the 32-bit little-endian word whose
 *        bit j is bit 4 of code j; qs[16]: the low 4 bits as Q4_0
 *   Q5_1 (24 bytes): d fp16, m fp16; qh[4]; qs[16] as Q5_0
 *   Q8_0 (34 bytes): d fp16; qs[32]: int8 codes (q - 128 of
 *        gptq_qtensor_codes)
 * K-quants, blocks of 256 columns (c_i is the code of the block's column i,
 * sc_j and m_j those of its sub-block j):
 *   Q4_K (144 bytes): d fp16, dmin fp16; scales[12]: for j < 4, byte j =
 *        sc_j | (sc_{j+4} >> 4) << 6 and byte j + 4 = m_j | (m_{j+4} >> 4)
 *        << 6, byte j + 8 = (sc_{j+4} & 15) | (m_{j+4} & 15) << 4;
 *        qs[128]: byte 32·t + l = c_{64t+l} | c_{64t+l+32} << 4 (t < 4,
 *        l < 32)
 *   Q5_K (176 bytes): d, dmin, scales[12] as Q4_K; qh[32]: bit i of byte l
 *        is bit 4 of c_{32i+l}; qs[128]: the low 4 bits as Q4_K
 *   Q6_K (210 bytes): ql[128], qh[64], scales[16] (int8 sc_j), d fp16; for
 *        each half t < 2 and l < 32, ql byte 64t + l = low 4 bits of
 *        c_{128t+l} | those of c_{128t+l+64} << 4, ql byte 64t + l + 32 =
 *        those of c_{128t+l+32} | c_{128t+l+96} << 4, qh byte 32t + l = bits
 *        4..5 of c_{128t+l}, c_{128t+l+32}, c_{128t+l+64}, c_{128t+l+96}
 *        at bits 0, 2, 4, 6
 * These are llama.cpp's block_q4_0 ... block_q8_0 and block_q4_K,
 * block_q5_K, block_q6_K (GGML types 2, 3, 6, 7, 8, 12, 13 and 14).
 * Tensors on a GGUF grid cannot be exported as GPTQ checkpoints
 * (gptq_qtensor_export fails with UNSUPPORTED), and Q4_1, Q5_1 and K-quant
 * tensors cannot be used by gptq_matmul (UNSUPPORTED): dequantize them
 * instead.
 * ------------------------------------------------------------------------- */

/* Bytes of a [rows, cols] tensor in the block format of `grid`.
 * Errors: NULL_POINTER, INVALID_CONFIG (grid is GPTQ_GRID_GPTQ or not a
 * gptq_grid), INVALID_SIZE (a dimension < 1, cols not a multiple of the
 * block: 32, or 256 for the K-quants). */
GPTQ_API gptq_status gptq_gguf_size(gptq_grid grid, int64_t rows,
                                    int64_t cols, int64_t *bytes);

/* Write q, quantized with a GGUF grid, as that format's blocks into out
 * (out_len bytes, at least gptq_gguf_size's).
 * Errors: NULL_POINTER, UNSUPPORTED (q is not on a GGUF grid),
 * SIZE_MISMATCH (out_len too small); nothing is written then. */
GPTQ_API gptq_status gptq_gguf_export(const gptq_qtensor *q, void *out,
                                      int64_t out_len);

/* Decode the blocks of a [rows, cols] tensor in the format of `grid`
 * (bytes_len bytes, exactly gptq_gguf_size's) into float32 out
 * [rows, cols] (out_len >= rows·cols), as llama.cpp dequantizes them: for a
 * tensor this library quantized, exactly gptq_qtensor_dequantize's values.
 * Errors: NULL_POINTER, INVALID_CONFIG (not a GGUF grid), INVALID_SIZE (as
 * gptq_gguf_size), SIZE_MISMATCH (bytes_len or out_len). */
GPTQ_API gptq_status gptq_gguf_dequantize(gptq_grid grid, const void *bytes,
                                          int64_t bytes_len, int64_t rows,
                                          int64_t cols, float *out,
                                          int64_t out_len);

/* ---------------------------------------------------------------------------
 * Matmul with quantized weights.
 * ------------------------------------------------------------------------- */

/* y = x · Wᵀ (+ bias), with W the dequantized weights of q, on q's backend.
 * Precision:
 *  - F32 activations, on every backend: the result equals
 *    dequantize-then-multiply up to float32 summation order.
 *  - F16 / BF16 activations on the CPU: converted to float32 exactly, then
 *    as F32.
 *  - F16 / BF16 activations on CUDA, for 4-bit tensors whose groups cover
 *    whole runs of 32 input columns once ordered by group (group size -1 or
 *    a multiple of 32, act-order included): the weights are taken in the
 *    activations' type and the products summed in float32. With F16 each
 *    weight is scale·(code − zero) rounded once to binary16, as
 *    dequantize-then-cast gives it; with BF16 the scale is first rounded to
 *    bfloat16, then the product. Other tensors take the F32 path.
 * The backend lays the tensor out for its kernels on the tensor's first
 * matmul (once; that call waits for it): tensors that are only exported
 * never pay for it. The environment variable
 * GPTQ_CPU_KERNELS=portable|avx2|avx512|avx512vnni, read once per process,
 * caps the CPU's instruction set (a CPU that lacks the named set gets its
 * best); any other non-empty value makes every CPU matmul fail with
 * GPTQ_ERR_INVALID_CONFIG. (Which kernels run is described under
 * "Implementation notes" at the end of this header.)
 * This is gptq_matmul_ex with default options (float32 activations on the
 * CPU, the tensor's stream and pointers detected on CUDA).
 * x is [rows, cols] with cols = in_features; y is [rows, out_features];
 * bias is [out_features] or NULL. x, bias and y all have element type `dtype`.
 * Accumulation is in float32; with F16/BF16 the result is rounded once, at
 * the end. y_len must be >= rows·out_features. Any rows >= 1. x and bias are
 * not scanned for NaN/Inf (that would cost as much as the product): they
 * propagate into y as IEEE arithmetic says.
 * Thread-safe on a shared q.
 * Errors: NULL_POINTER, INVALID_SIZE (rows < 1), SIZE_MISMATCH (cols !=
 * in_features, y_len too small), UNSUPPORTED (dtype), OUT_OF_MEMORY. */
GPTQ_API gptq_status gptq_matmul(const gptq_qtensor *q, const void *x,
                                 gptq_dtype dtype, int64_t rows, int64_t cols,
                                 const void *bias, void *y, int64_t y_len);

/* How gptq_matmul_ex computes. Initialize with gptq_matmul_options_default(). */
typedef struct gptq_matmul_options {
  size_t struct_size;  /* = sizeof(gptq_matmul_options); set by _default */
  /* 0 (default): activations stay float32 in the SIMD kernels; the result
   * equals dequantize-then-multiply up to float32 summation order (relative
   * error ~1e-6 of Σ|x·w|).
   * 1: on CPUs with AVX2, at any batch size, each block of 32 activations
   * is rounded to int8 with its own scale (max|x|/127) and multiplied with
   * the integer codes in integer arithmetic (VNNI where present), each row
   * of x on its own (a row's result does not depend on the others).
   * Faster; the result is exactly scale·Σ x̃·(code − zero) with x̃ the rounded
   * activations (each within max|x of its block|/254 of x), which on
   * LLM-like activations is a relative L2 error of y of about 1%. Only 2-,
   * 3- and 4-bit tensors use it; others, and the CUDA backend, ignore the
   * flag. */
  int32_t int8_activations;
  /* Threads for this call (0 = one per core). Default 0. */
  int32_t num_threads;
  /* CUDA backend: the stream for this call, or NULL for the tensor's own
   * (gptq_config.stream of the context that made it, or
   * gptq_import_options.stream). Default NULL. */
  void *stream;
  /* Where x, bias and y live (see gptq_memory). With DEVICE the call only
   * queues the work on the stream and returns; with HOST it copies x and
   * bias in, y out, and waits for the stream. Default GPTQ_MEMORY_AUTO
   * (decided by x's pointer; bias and y must live in the same place). */
  gptq_memory memory;
  /* Only output features [out_begin, out_end) of y (out_end 0 = up to
   * out_features). y keeps its [rows, out_features] layout and y_len its
   * bound: the call writes those columns of every row and leaves the others
   * as they were; bias is read at those features only. For callers that
   * split one product over threads of their own (each thread a range,
   * num_threads 1) rather than use the library's: on the CPU each feature's
   * value does not depend on the range, so ranges that cover the features
   * give exactly the whole call's y, except with float32 activations (the
   * default) over more than 32 rows, where they agree up to float32
   * summation order. Any range 0 <= out_begin < out_end <= out_features is
   * valid; ranges whose ends are multiples of 16 (or out_features) waste
   * no work. The CUDA backend computes whole products only: a smaller range
   * there is GPTQ_ERR_UNSUPPORTED. Default 0, 0 (all). */
  int64_t out_begin;
  int64_t out_end;
} gptq_matmul_options;

/* Fill *opts with the defaults above. NULL is ignored. */
GPTQ_API void gptq_matmul_options_default(gptq_matmul_options *opts);

/* gptq_matmul with options (NULL = defaults). Same contract and errors as
 * gptq_matmul, plus INVALID_CONFIG for a bad options struct. */
GPTQ_API gptq_status gptq_matmul_ex(const gptq_qtensor *q, const void *x, gptq_dtype dtype,
                                    int64_t rows, int64_t cols, const void *bias, void *y,
                                    int64_t y_len, const gptq_matmul_options *opts);

/* ---------------------------------------------------------------------------
 * Implementation notes: what this version does, for callers who tune for
 * it. Not part of the contract; it may change in any release.
 *
 * CPU matmul. Up to 32 rows of x run SIMD kernels over the packed codes,
 * chosen at run time by CPUID (AVX-512 VNNI, AVX-512, AVX2 or portable),
 * with output rows in tiles of 16 and groups contiguous (act-order tensors
 * permute x rather than the weights), 8 rows of x per pass over the
 * weights; more rows dequantize tiles of W and use sgemm.
 *
 * CUDA matmul. The 4-bit path is a tensor-core kernel (mma.m16n8k16) that
 * reads each 16 × 16 tile of codes as one 32-bit word per lane and x in 16
 * bytes per lane per pair of tiles; up to 64 rows of x per pass over the
 * weights. The exact float32 path runs a warp per output row for up to 8
 * rows of x, and dequantized slabs of W with cuBLAS sgemm beyond.
 *
 * CUDA solve. The damped Cholesky factor comes from cuSOLVER, the lazy
 * block updates from cuBLAS, and each block of columns from one kernel in
 * which a warp owns 8 rows. The host takes part before the block loop (the
 * diagonal, for dead columns and the act-order permutation; whether the
 * factorization succeeded) and after it; inside the loop it waits only to
 * call a progress callback.
 * ------------------------------------------------------------------------- */

#ifdef __cplusplus
}
#endif

#endif /* GPTQ_H */
