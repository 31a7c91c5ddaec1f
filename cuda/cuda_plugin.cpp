// The CUDA plugin's face to the core: its gptq_plugin_v1 table and the one
// exported symbol (see src/plugin_abi.h for every entry's contract). Each
// entry catches all C++ exceptions and returns a status with the message in
// the core's buffer; nothing unwinds across the C ABI.
//
// Phase 1: probe and the Hessian accumulator are implemented; quantize,
// weights_prepare, weights_destroy and matmul are NULL. The core's loader
// therefore reports this plugin as incomplete ("... quantize, ... are
// missing"): GPTQ_BACKEND_AUTO keeps using the CPU and GPTQ_BACKEND_CUDA fails
// with GPTQ_ERR_BACKEND_UNAVAILABLE naming what is missing. The GPTQ solver
// and matmul kernels fill these entries in the next phase.
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <string>

#include "cuda_hessian.h"
#include "cuda_probe.h"
#include "plugin_abi.h"
#include "plugin_error.h"

struct gptq_plugin_hessian {
  std::unique_ptr<gptq_cuda::DeviceHessian> impl;
};

namespace gptq_cuda {
namespace {

void write_message(char *msg, size_t msg_size, const std::string &text) {
  if (msg == nullptr || msg_size == 0) return;
  std::snprintf(msg, msg_size, "%s", text.c_str());
}

// Runs an entry's body, turning every exception into a status + message.
template <typename Body>
int32_t guarded(char *msg, size_t msg_size, Body body) {
  try {
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
  const int32_t status = guarded(msg, msg_size, [&] { description = probe_device(); });
  if (status == GPTQ_OK) write_message(msg, msg_size, description);
  return status;
}

int32_t hessian_create(int64_t dim, gptq_precision precision, gptq_plugin_hessian **out,
                       char *msg, size_t msg_size) {
  return guarded(msg, msg_size, [&] {
    auto h = std::make_unique<gptq_plugin_hessian>();
    h->impl = make_device_hessian(dim, precision);
    *out = h.release();
  });
}

void hessian_destroy(gptq_plugin_hessian *h) { delete h; }

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

gptq_plugin_v1 make_table() {
  gptq_plugin_v1 t{};
  t.struct_size = sizeof t;
  t.abi_version = GPTQ_PLUGIN_ABI_VERSION;
  t.name = "cuda";
  t.probe = probe;
  t.hessian_create = hessian_create;
  t.hessian_destroy = hessian_destroy;
  t.hessian_add_batch = hessian_add_batch;
  t.hessian_merge = hessian_merge;
  t.hessian_export = hessian_export;
  // Not yet implemented (next phase); NULL makes the loader say so.
  t.quantize = nullptr;
  t.weights_prepare = nullptr;
  t.weights_destroy = nullptr;
  t.matmul = nullptr;
  return t;
}

}  // namespace
}  // namespace gptq_cuda

extern "C" __attribute__((visibility("default"))) const gptq_plugin_v1 *gptq_backend_plugin_entry(
    void) {
  static const gptq_plugin_v1 table = gptq_cuda::make_table();
  return &table;
}
