/*
 * The internal C ABI between libgptq (the core) and a backend plugin such as
 * libgptq-cuda.so. NOT a public header: it is not installed and callers of
 * libgptq never see it. It exists so that the core can use a backend that is
 * built separately (with nvcc, against cuBLAS/cuSOLVER) without ever linking
 * CUDA itself: the core dlopen()s the plugin and talks to it only through the
 * function table below.
 *
 * Why plain C: the plugin may be built by a different compiler (nvcc's host
 * compiler), with a different C++ standard library, at a different time than
 * the core. Only C types, fixed-size integers and function pointers cross
 * this boundary; no C++ object, exception or allocation does. The types of
 * the public header gptq.h (gptq_status, gptq_dtype, gptq_config,
 * gptq_quant_stats) are plain C too and are used here; a plugin includes
 * gptq.h for those types only and never calls a gptq_* function (it does not
 * link libgptq).
 *
 * Versioning. A plugin exports exactly one symbol, GPTQ_PLUGIN_ENTRY_NAME, a
 * function returning a pointer to its function table. The table begins with
 * its own size and the ABI version the plugin was built against:
 *   - abi_version must equal GPTQ_PLUGIN_ABI_VERSION, else the loader refuses
 *     the plugin ("plugin ABI 2, library expects 1"). The version is bumped
 *     only for changes that break existing plugins (a changed signature or
 *     meaning). The entry symbol's name carries no version on purpose: a
 *     plugin of another ABI is then still recognised and reported as a
 *     version mismatch, not as "not a plugin".
 *   - New entries are only ever appended. The core reads an entry only if
 *     struct_size covers it, so an older plugin of the same ABI version
 *     keeps loading; entries it lacks read as NULL.
 *
 * Required entries. Every entry of the table is required: a plugin whose
 * table has NULL in any of them is loaded, probed, and then reported as
 * unusable, naming what is missing (GPTQ_BACKEND_AUTO then uses the CPU;
 * an explicit request fails with GPTQ_ERR_BACKEND_UNAVAILABLE). A plugin
 * that passes is then checked against the CPU backend on a small problem
 * (src/plugin_self_check.cpp) and refused, with the reason, on a mismatch.
 *
 * Error reporting. Every fallible entry returns a gptq_status (as int32_t)
 * and takes a message buffer `msg` of `msg_size` bytes (msg_size >= 1; the
 * core passes GPTQ_PLUGIN_MSG_SIZE). On failure the plugin writes a
 * NUL-terminated, human-readable reason into it (truncated to fit) that the
 * core passes on in gptq_last_error(). On success the buffer's contents are
 * ignored unless the entry says otherwise. Statuses a plugin should use:
 * GPTQ_ERR_OUT_OF_MEMORY (host or device memory), GPTQ_ERR_CANCELLED (the
 * progress callback asked to stop), GPTQ_ERR_UNSUPPORTED (a request this
 * plugin cannot serve, e.g. a dtype), GPTQ_ERR_BACKEND_UNAVAILABLE (the
 * device failed or went away), GPTQ_ERR_INTERNAL (a bug). The core validates
 * every argument before calling (sizes, finiteness, config ranges) exactly as
 * for the CPU backend, so a plugin may assume valid input. A plugin must
 * catch every C++ exception inside each entry: none may unwind into the core.
 *
 * Threads. The core calls probe once per process. A Hessian handle is used by
 * one thread at a time (it belongs to one gptq_ctx). A weights handle is
 * immutable after weights_prepare: matmul may be called on it from many
 * threads at once, and must be safe then. Different handles are independent.
 *
 * Lifetime. The core never dlclose()s a plugin: handles created by it may
 * live until the process ends.
 */
#ifndef GPTQ_PLUGIN_ABI_H
#define GPTQ_PLUGIN_ABI_H

#include <stddef.h>
#include <stdint.h>

#include "gptq.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The ABI this core speaks. Bumped only for incompatible changes.
 * 2: streams, device memory (memory_of, scan, copy_to_host). */
#define GPTQ_PLUGIN_ABI_VERSION 2u

/* The one symbol a plugin exports: a function of type gptq_plugin_entry_fn. */
#define GPTQ_PLUGIN_ENTRY_NAME "gptq_backend_plugin_entry"

/* Size of the message buffer the core passes to every fallible entry. */
#define GPTQ_PLUGIN_MSG_SIZE 1024

/* Where a caller pointer points: host memory, or memory of the plugin's
 * device. The core resolves GPTQ_MEMORY_AUTO (through memory_of) before it
 * calls any other entry, so a plugin is always told which. */
enum {
  GPTQ_PLUGIN_MEMORY_HOST = 0,
  GPTQ_PLUGIN_MEMORY_DEVICE = 1
};

/* Opaque plugin-owned objects. */
typedef struct gptq_plugin_hessian gptq_plugin_hessian;
typedef struct gptq_plugin_weights gptq_plugin_weights;

/* A quantized tensor in host memory, in the core's layout (see qtensor.h):
 * codes [N, K] one byte each (0 .. 2^bits-1), scales [G, N] fp16 bit
 * patterns, zeros [G, N] (0 .. 2^bits), g_idx [K] (0 .. G-1), original column
 * order. For quantize the core fills the sizes and points the four arrays at
 * buffers of exactly these lengths; the plugin fills the arrays and
 * act_order. For weights_prepare and matmul everything is input. */
typedef struct gptq_plugin_qtensor {
  size_t struct_size;     /* = sizeof(gptq_plugin_qtensor) as the core built it */
  int64_t out_features;   /* N */
  int64_t in_features;    /* K */
  int32_t bits;
  int32_t group_size;     /* as configured, -1 for one group */
  int64_t groups;         /* G = 1 for group_size -1, else ceil(K / group_size) */
  int32_t act_order;      /* 1 if g_idx[j] != j / group_size for some j */
  uint8_t *codes;
  uint16_t *scales;
  int32_t *zeros;
  int32_t *g_idx;
} gptq_plugin_qtensor;

/* Validated matmul options (see gptq_matmul_options in gptq.h). */
typedef struct gptq_plugin_matmul_options {
  size_t struct_size;
  int32_t int8_activations;  /* 0 or 1; a plugin may ignore it */
  int32_t num_threads;       /* >= 0; a plugin may ignore it */
} gptq_plugin_matmul_options;

/* Streams. Every entry that queues device work takes the caller's stream
 * (a cudaStream_t for the CUDA plugin, as void *; NULL is the device's
 * default stream), either as an argument or through gptq_config.stream.
 * Work on device buffers is only queued: the entry returns without waiting,
 * unless it returns host results, which it must wait for. */
typedef struct gptq_plugin_table {
  /* sizeof(gptq_plugin_table) as the plugin was built; the core reads no
   * entry beyond it. Always first. */
  size_t struct_size;
  /* GPTQ_PLUGIN_ABI_VERSION as the plugin was built. Always second. */
  uint32_t abi_version;
  /* Short lowercase backend name for messages, e.g. "cuda". Static storage. */
  const char *name;

  /* Whether the plugin can work in this process: driver, device, libraries.
   * Called once, before any other entry. On GPTQ_OK, msg holds a one-line
   * description of what will be used (e.g. "NVIDIA H100 (compute capability
   * 9.0), CUDA runtime 13.0"), which the core logs. On failure (status
   * GPTQ_ERR_BACKEND_UNAVAILABLE) msg says why, with the underlying
   * library's own error text, e.g. "cudaGetDeviceCount: cudaErrorNoDevice:
   * no CUDA-capable device is detected". */
  int32_t (*probe)(char *msg, size_t msg_size);

  /* A running-mean Hessian of dimension dim (>= 1) in the given precision,
   * all zero, whose work runs on `stream`. On success *out is the new
   * handle. */
  int32_t (*hessian_create)(int64_t dim, gptq_precision precision, void *stream,
                            gptq_plugin_hessian **out, char *msg, size_t msg_size);
  /* Frees a handle; NULL is ignored. Cannot fail. */
  void (*hessian_destroy)(gptq_plugin_hessian *h);
  /* H ← beta·H + alpha·xᵀx for x [rows, dim] of element type dtype (F32, F16
   * or BF16) at `memory` (GPTQ_PLUGIN_MEMORY_*). The core computes beta =
   * n/(n+s) and alpha = 2/(n+s) from its sample counts, so the running mean
   * is defined in one place; the plugin rounds both to its precision and
   * accumulates at that precision. x is finite and rows >= 1. On failure H
   * must be unchanged. A host x is free for the caller when the entry
   * returns. */
  int32_t (*hessian_add_batch)(gptq_plugin_hessian *h, const void *x, gptq_dtype dtype,
                               int64_t rows, int32_t memory, double beta, double alpha,
                               char *msg, size_t msg_size);
  /* H ← keep·H + take·src, src a full row-major symmetric [dim, dim] host
   * matrix of doubles, each element evaluated in double and then rounded to
   * H's precision (what the CPU backend does). On failure H is unchanged. */
  int32_t (*hessian_merge)(gptq_plugin_hessian *h, const double *src, double keep, double take,
                           char *msg, size_t msg_size);
  /* Writes H as a full symmetric row-major [dim, dim] host matrix of
   * doubles. */
  int32_t (*hessian_export)(const gptq_plugin_hessian *h, double *dst, char *msg,
                            size_t msg_size);

  /* GPTQ on H for weights w [out->out_features, dim] of element type dtype at
   * `memory`, with the validated config (struct_size = sizeof(gptq_config) of
   * the core; its log and progress callbacks may be called from the calling
   * thread; its stream is the one to use). Writes the result into the
   * caller-allocated host arrays of *out (see gptq_plugin_qtensor) and fills
   * stats' loss, damp_percent_used, damp_retries, fell_back_to_rtn and
   * dead_columns (stats->struct_size says how much of it the core has). The
   * algorithm and its results are those documented for gptq_quantize in
   * gptq.h. H is not changed. */
  int32_t (*quantize)(const gptq_plugin_hessian *h, const void *w, gptq_dtype dtype,
                      int32_t memory, const gptq_config *config, gptq_plugin_qtensor *out,
                      gptq_quant_stats *stats, char *msg, size_t msg_size);

  /* The plugin's own layout of a finished tensor for matmul (e.g. repacked
   * on the device), made by the tensor's first matmul (once, under the
   * core's lock: never twice for one tensor), on `stream`. q and its arrays
   * are only read during the call. */
  int32_t (*weights_prepare)(const gptq_plugin_qtensor *q, void *stream,
                             gptq_plugin_weights **out, char *msg, size_t msg_size);
  /* Frees prepared weights; NULL is ignored. Cannot fail. */
  void (*weights_destroy)(gptq_plugin_weights *w);
  /* y = x·Wᵀ (+ bias) as documented for gptq_matmul: x [rows, K], bias [N]
   * or NULL, y [rows, N], all of element type dtype at `memory`, on
   * `stream`. With device memory the entry only queues the work; with host
   * memory y is written when it returns. q is the tensor weights were
   * prepared from. Thread-safe on shared weights. */
  int32_t (*matmul)(const gptq_plugin_weights *weights, const gptq_plugin_qtensor *q,
                    const void *x, gptq_dtype dtype, int64_t rows, const void *bias, void *y,
                    int32_t memory, void *stream, const gptq_plugin_matmul_options *options,
                    char *msg, size_t msg_size);

  /* Where p points (*memory = GPTQ_PLUGIN_MEMORY_*): device for memory the
   * plugin's kernels can use directly, host for anything else. */
  int32_t (*memory_of)(const void *p, int32_t *memory, char *msg, size_t msg_size);
  /* Scans count (>= 1) elements of dtype at device memory x on `stream`
   * and waits: *first_non_finite = index of the first NaN/Inf or -1,
   * *max_abs = the largest |x| of the finite elements. */
  int32_t (*scan)(const void *x, gptq_dtype dtype, int64_t count, void *stream,
                  int64_t *first_non_finite, double *max_abs, char *msg, size_t msg_size);
  /* Copies `bytes` from device memory src to host memory dst on `stream`
   * and waits for the copy. */
  int32_t (*copy_to_host)(void *dst, const void *src, size_t bytes, void *stream, char *msg,
                          size_t msg_size);

  /* Entries of later versions of this ABI are appended here. */
} gptq_plugin_table;

/* The type of the exported entry. Returns the plugin's static table; never
 * NULL; may be called more than once. Must not initialise the device (probe
 * does that), so that loading a plugin stays cheap and cannot fail. */
typedef const gptq_plugin_table *(*gptq_plugin_entry_fn)(void);

#ifdef __cplusplus
}
#endif

#endif /* GPTQ_PLUGIN_ABI_H */
