// The one internal interface both backends implement. The API layer
// (src/api.cpp) validates every argument and then calls exactly one of these
// methods; backends may assume valid, finite input and report only resource
// failures (Error with OUT_OF_MEMORY / CANCELLED / BACKEND_UNAVAILABLE).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "gptq.h"
#include "log.h"
#include "qtensor.h"

namespace gptq {

// Where a caller buffer lives, resolved (never AUTO).
enum class Memory { kHost, kDevice };

// Running-mean Hessian H = 2/n Σ x xᵀ of one layer's inputs, stored where the
// backend computes. The sample count, and so the weights of the running
// mean, belong to the context (context.h): a backend only applies them.
class Hessian {
 public:
  virtual ~Hessian() = default;
  virtual int64_t dim() const = 0;
  // H ← beta·H + alpha·xᵀx for x [rows, dim()] of element type dtype,
  // finite. On failure H is unchanged.
  virtual void add_batch(const void *x, gptq_dtype dtype, int64_t rows, Memory memory,
                         double beta, double alpha) = 0;
  // H ← keep·H + take·h for a full row-major double matrix h [dim, dim],
  // each element evaluated in double and rounded to H's precision.
  virtual void merge(const double *h, double keep, double take) = 0;
  // Full symmetric row-major copy as doubles.
  virtual void export_to(double *h) const = 0;
};

// Everything gptq_quantize needs besides the Hessian.
struct QuantizeJob {
  const void *weights;  // [out_features, in_features], finite
  gptq_dtype dtype;
  Memory memory;
  int64_t out_features;
  gptq_config config;   // validated
  Logger logger;
};

// A backend's own form of a quantized tensor, laid out for its kernels; made
// once, by the tensor's first matmul, and read-only afterwards.
class PreparedWeights {
 public:
  virtual ~PreparedWeights() = default;
};

// Validated gptq_matmul_options, with the memory resolved.
struct MatmulOptions {
  bool int8_activations = false;
  int num_threads = 0;
  // Output features [out_begin, out_end) only (out_end 0 = out_features);
  // the rest of y is left as it was.
  int64_t out_begin = 0, out_end = 0;
  Memory memory = Memory::kHost;
  void *stream = nullptr;  // the call's or the tensor's
};

// What a scan of a buffer found.
struct ScanResult {
  int64_t first_non_finite = -1;  // index, or -1 when all are finite
  double max_abs = 0.0;           // of the finite elements
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual gptq_backend kind() const = 0;
  virtual const char *name() const = 0;

  // stream: the context's (gptq_config.stream); backends without streams
  // ignore it.
  virtual std::unique_ptr<Hessian> create_hessian(int64_t dim, gptq_precision precision,
                                                  void *stream) = 0;

  // Runs GPTQ; fills stats' loss / damping / fallback / dead-column fields.
  // The Hessian's value must be the same afterwards (on errors too).
  virtual QTensorData quantize(Hessian &hessian, const QuantizeJob &job,
                               gptq_quant_stats &stats) = 0;

  // The tensor's layout for this backend's matmul.
  virtual std::unique_ptr<PreparedWeights> prepare(const QTensorData &q, void *stream) = 0;
  // For an imported tensor not yet published: a backend whose layout can
  // hold every code makes it now, becomes q's code source and empties
  // q.codes. Others return null, and the layout is made at the first matmul.
  virtual std::shared_ptr<const PreparedWeights> prepare_holding_codes(QTensorData &, void *) {
    return nullptr;
  }

  // y = x·Wᵀ (+ bias) for validated arguments (see gptq_matmul_ex).
  virtual void matmul(const QTensorData &q, const PreparedWeights &prepared, const void *x,
                      gptq_dtype dtype, int64_t rows, const void *bias, void *y,
                      const MatmulOptions &options) = 0;

  // Device memory. A backend without a device has only host memory: it
  // calls every pointer host memory and is never asked about device buffers
  // (the API layer refuses them first).
  virtual bool has_device_memory() const { return false; }
  virtual Memory memory_of(const void *) { return Memory::kHost; }
  // Scans a device buffer of count elements.
  virtual ScanResult scan_device(const void *x, gptq_dtype dtype, int64_t count, void *stream);
  // Copies bytes from a device buffer to host memory and waits for the copy.
  virtual void copy_to_host(void *dst, const void *src, size_t bytes, void *stream);
};

// The process-wide CPU backend.
Backend &cpu_backend();

// Resolves a configured backend choice to a backend (never AUTO), logging
// what `auto` chose and why. Throws Error(BACKEND_UNAVAILABLE) when an
// explicit choice cannot be served.
Backend &select_backend(gptq_backend requested, const Logger &logger, const char *where);

// Resolves a caller's gptq_memory for pointer p on backend b: AUTO asks the
// backend, DEVICE on a backend without device memory is refused
// (UNSUPPORTED), naming `what` (e.g. "x") and `where`.
Memory resolve_memory(gptq_memory requested, const void *p, Backend &b, const char *where,
                      const char *what);

}  // namespace gptq
