// The CUDA plugin's face to the core: its gptq_plugin_table and the one
// exported symbol (see src/plugin_abi.h for every entry's contract). Each
// entry makes the plugin's device current for its length (DeviceGuard),
// catches all C++ exceptions and returns a status with the message in the
// core's buffer; nothing unwinds across the C ABI.
#include <cuda_runtime_api.h>

#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <string>

#include "cuda_hessian.h"
#include "cuda_matmul.h"
#include "cuda_probe.h"
#include "cuda_solver.h"
#include "cuda_status.h"
#include "device_context.h"
#include "device_convert.h"
#include "matmul_layout.h"
#include "plugin_abi.h"
#include "plugin_error.h"

struct gptq_plugin_hessian {
  std::unique_ptr<gptq_cuda::DeviceHessian> impl;
};

struct gptq_plugin_weights {
  std::unique_ptr<gptq_cuda::DeviceWeights> impl;
};

namespace gptq_cuda {
namespace {

void write_message(char *msg, size_t msg_size, const std::string &text) {
  if (msg == nullptr || msg_size == 0) return;
  std::snprintf(msg, msg_size, "%s", text.c_str());
}

// Runs an entry's body on the plugin's device, turning every exception into
// a status + message.
template <typename Body>
int32_t guarded(char *msg, size_t msg_size, Body body) {
  try {
    DeviceGuard guard;
    body();
    return GPTQ_OK;
  } catch (const PluginError &e) {
    write_message(msg, msg_size, e.what());
    return e.status();
  } catch (const std::bad_alloc &) {
    write_message(msg, msg_size, "out of host memory");
    return GPTQ_ERR_OUT_OF_MEMORY;
  } catch (const std::exception &e) {
    write_message(msg, msg_size, std::string("internal error: ") + e.what());
    return GPTQ_ERR_INTERNAL;
  } catch (...) {
    write_message(msg, msg_size, "internal error: unknown exception");
    return GPTQ_ERR_INTERNAL;
  }
}

int32_t probe(char *msg, size_t msg_size) {
  std::string description;
  int32_t status = GPTQ_OK;
  try {
    description = probe_device();
    adopt_current_device();
  } catch (const PluginError &e) {
    write_message(msg, msg_size, e.what());
    status = e.status();
  } catch (const std::exception &e) {
    write_message(msg, msg_size, std::string("internal error: ") + e.what());
    status = GPTQ_ERR_INTERNAL;
  }
  if (status == GPTQ_OK) write_message(msg, msg_size, description);
  return status;
}

int32_t hessian_create(int64_t dim, gptq_precision precision, void *stream,
                       gptq_plugin_hessian **out, char *msg, size_t msg_size) {
  return guarded(msg, msg_size, [&] {
    auto h = std::make_unique<gptq_plugin_hessian>();
    h->impl = make_device_hessian(dim, precision, stream);
    *out = h.release();
  });
}

void hessian_destroy(gptq_plugin_hessian *h) {
  if (h == nullptr) return;
  try {
    DeviceGuard guard;
    delete h;
  } catch (...) {
    delete h;
  }
}

int32_t hessian_add_batch(gptq_plugin_hessian *h, const void *x, gptq_dtype dtype, int64_t rows,
                          int32_t memory, double beta, double alpha, char *msg, size_t msg_size) {
  return guarded(msg, msg_size, [&] {
    h->impl->add_batch(x, dtype, rows, memory == GPTQ_PLUGIN_MEMORY_DEVICE, beta, alpha);
  });
}

int32_t hessian_merge(gptq_plugin_hessian *h, const double *src, double keep, double take,
                      char *msg, size_t msg_size) {
  return guarded(msg, msg_size, [&] { h->impl->merge(src, keep, take); });
}

int32_t hessian_export(const gptq_plugin_hessian *h, double *dst, char *msg, size_t msg_size) {
  return guarded(msg, msg_size, [&] { h->impl->export_to(dst); });
}

int32_t quantize(const gptq_plugin_hessian *h, const void *w, gptq_dtype dtype, int32_t memory,
                 const gptq_config *config, gptq_plugin_qtensor *out, gptq_quant_stats *stats,
                 char *msg, size_t msg_size) {
  return guarded(msg, msg_size, [&] {
    solve_on_device(*h->impl, w, dtype, memory == GPTQ_PLUGIN_MEMORY_DEVICE, *config, *out,
                    *stats);
  });
}

int32_t weights_prepare(const gptq_plugin_qtensor *q, void *stream, gptq_plugin_weights **out,
                        char *msg, size_t msg_size) {
  return guarded(msg, msg_size, [&] {
    auto w = std::make_unique<gptq_plugin_weights>();
    w->impl = make_device_weights(*q, as_stream(stream));
    *out = w.release();
  });
}

void weights_destroy(gptq_plugin_weights *w) {
  if (w == nullptr) return;
  try {
    DeviceGuard guard;
    delete w;
  } catch (...) {
    delete w;
  }
}

int32_t matmul(const gptq_plugin_weights *weights, const gptq_plugin_qtensor *q, const void *x,
               gptq_dtype dtype, int64_t rows, const void *bias, void *y, int32_t memory,
               void *stream, const gptq_plugin_matmul_options *, char *msg, size_t msg_size) {
  return guarded(msg, msg_size, [&] {
    run_matmul(*weights->impl, *q, x, dtype, rows, bias, y, memory == GPTQ_PLUGIN_MEMORY_DEVICE,
               as_stream(stream));
  });
}

int32_t memory_of(const void *p, int32_t *memory, char *msg, size_t msg_size) {
  return guarded(msg, msg_size, [&] {
    cudaPointerAttributes attributes{};
    check_cuda(cudaPointerGetAttributes(&attributes, p), "cudaPointerGetAttributes");
    const bool device = attributes.type == cudaMemoryTypeDevice ||
                        attributes.type == cudaMemoryTypeManaged;
    if (device && attributes.type == cudaMemoryTypeDevice &&
        attributes.device != device_info().id)
      throw PluginError(GPTQ_ERR_UNSUPPORTED,
                        "the pointer is memory of CUDA device " +
                            std::to_string(attributes.device) + ", but the backend runs on device " +
                            std::to_string(device_info().id));
    *memory = device ? GPTQ_PLUGIN_MEMORY_DEVICE : GPTQ_PLUGIN_MEMORY_HOST;
  });
}

int32_t scan(const void *x, gptq_dtype dtype, int64_t count, void *stream,
             int64_t *first_non_finite, double *max_abs, char *msg, size_t msg_size) {
  return guarded(msg, msg_size, [&] {
    const ScanOutcome r = scan_on_device(x, dtype, count, as_stream(stream));
    *first_non_finite = r.first_non_finite;
    *max_abs = r.max_abs;
  });
}

int32_t copy_to_host(void *dst, const void *src, size_t bytes, void *stream, char *msg,
                     size_t msg_size) {
  return guarded(msg, msg_size, [&] {
    check_cuda(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, as_stream(stream)),
               "cudaMemcpyAsync");
    sync_stream(as_stream(stream), "copy_to_host");
  });
}

gptq_plugin_table make_table() {
  gptq_plugin_table t{};
  t.struct_size = sizeof t;
  t.abi_version = GPTQ_PLUGIN_ABI_VERSION;
  t.name = "cuda";
  t.probe = probe;
  t.hessian_create = hessian_create;
  t.hessian_destroy = hessian_destroy;
  t.hessian_add_batch = hessian_add_batch;
  t.hessian_merge = hessian_merge;
  t.hessian_export = hessian_export;
  t.quantize = quantize;
  t.weights_prepare = weights_prepare;
  t.weights_destroy = weights_destroy;
  t.matmul = matmul;
  t.memory_of = memory_of;
  t.scan = scan;
  t.copy_to_host = copy_to_host;
  return t;
}

}  // namespace
}  // namespace gptq_cuda

extern "C" __attribute__((visibility("default"))) const gptq_plugin_table *
gptq_backend_plugin_entry(void) {
  static const gptq_plugin_table table = gptq_cuda::make_table();
  return &table;
}
