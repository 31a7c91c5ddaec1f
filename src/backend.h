// The one internal interface both backends implement. The API layer
// (src/api.cpp) validates every argument and then calls exactly one of these
// methods; backends may assume valid, finite input and report only resource
// failures (Error with OUT_OF_MEMORY / CANCELLED / BACKEND_UNAVAILABLE).
#pragma once

#include <cstdint>
#include <memory>

#include "gptq.h"
#include "log.h"
#include "qtensor.h"

namespace gptq {

// Running-mean Hessian H = 2/n Σ x xᵀ of one layer's inputs, stored where the
// backend computes.
class Hessian {
 public:
  virtual ~Hessian() = default;
  virtual int64_t dim() const = 0;
  virtual int64_t samples() const = 0;
  // x is [rows, dim()] of element type dtype, finite; samples >= 1.
  virtual void add_batch(const void *x, gptq_dtype dtype, int64_t rows, int64_t samples) = 0;
  // Sample-weighted merge of another Hessian given as a full row-major
  // double matrix [dim, dim].
  virtual void merge(const double *h, int64_t samples) = 0;
  // Full symmetric row-major copy as doubles.
  virtual void export_to(double *h) const = 0;
};

// Everything gptq_quantize needs besides the Hessian.
struct QuantizeJob {
  const void *weights;  // [out_features, in_features], finite
  gptq_dtype dtype;
  int64_t out_features;
  gptq_config config;   // validated
  Logger logger;
};

// A backend's own form of a quantized tensor, laid out for its kernels; made
// once when the tensor is made and read-only afterwards.
class PreparedWeights {
 public:
  virtual ~PreparedWeights() = default;
};

// Validated gptq_matmul_options.
struct MatmulOptions {
  bool int8_activations = false;
  int num_threads = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual gptq_backend kind() const = 0;
  virtual const char *name() const = 0;

  virtual std::unique_ptr<Hessian> create_hessian(int64_t dim, gptq_precision precision) = 0;

  // Runs GPTQ; fills stats' loss / damping / fallback / dead-column fields.
  // The Hessian is not const so that a backend may use its storage as
  // scratch, but its value must be the same afterwards (on errors too).
  virtual QTensorData quantize(Hessian &hessian, const QuantizeJob &job,
                               gptq_quant_stats &stats) = 0;

  // The tensor's layout for this backend's matmul.
  virtual std::unique_ptr<PreparedWeights> prepare(const QTensorData &q) = 0;

  // y = x·Wᵀ (+ bias) for validated arguments (see gptq_matmul_ex).
  virtual void matmul(const QTensorData &q, const PreparedWeights &prepared, const void *x,
                      gptq_dtype dtype, int64_t rows, const void *bias, void *y,
                      const MatmulOptions &options) = 0;
};

// The process-wide CPU backend.
Backend &cpu_backend();

// Resolves a configured backend choice to a backend (never AUTO), logging
// what `auto` chose and why. Throws Error(BACKEND_UNAVAILABLE) when an
// explicit choice cannot be served.
Backend &select_backend(gptq_backend requested, const Logger &logger, const char *where);

}  // namespace gptq
