// Which backend a context gets: the config's choice, unless the environment
// variable GPTQ_BACKEND overrides it for the whole process (so a deployed
// program can be moved between CPU and GPU without a rebuild), resolved
// against what is actually usable. Every backend but the CPU is a plugin,
// found, probed and checked once per process (plugin_loader.cpp); nothing
// here knows CUDA.
#include <cstdlib>
#include <string>

#include "backend.h"
#include "error.h"
#include "plugin_loader.h"

namespace gptq {
namespace {

constexpr const char *kBackendEnv = "GPTQ_BACKEND";

const char *backend_name(gptq_backend b) {
  switch (b) {
    case GPTQ_BACKEND_AUTO: return "auto";
    case GPTQ_BACKEND_CPU: return "cpu";
    case GPTQ_BACKEND_CUDA: return "cuda";
  }
  return "unknown";
}

// The override as read once per process: the variable's value, and whether
// it names a backend (an unknown value is reported on every use rather than
// silently ignored).
struct Override {
  bool set = false;
  bool valid = false;
  gptq_backend backend = GPTQ_BACKEND_AUTO;
  std::string text;
};

const Override &backend_override() {
  static const Override value = [] {
    Override o;
    const char *env = std::getenv(kBackendEnv);
    if (env == nullptr || env[0] == '\0') return o;
    o.set = true;
    o.text = env;
    for (gptq_backend b : {GPTQ_BACKEND_AUTO, GPTQ_BACKEND_CPU, GPTQ_BACKEND_CUDA})
      if (o.text == backend_name(b)) {
        o.valid = true;
        o.backend = b;
      }
    return o;
  }();
  return value;
}

}  // namespace

Backend &select_backend(gptq_backend requested, const Logger &logger, const char *where) {
  const Override &o = backend_override();
  if (o.set) {
    if (!o.valid)
      throw Error(GPTQ_ERR_INVALID_CONFIG, std::string(where) + ": the environment variable " +
                                               kBackendEnv + " is \"" + o.text +
                                               "\"; it must be cpu, cuda or auto (or unset)");
    if (o.backend != requested)
      logger.log(GPTQ_LOG_INFO, std::string("backend: ") + kBackendEnv + "=" + o.text +
                                    " overrides the configured backend " +
                                    backend_name(requested));
    requested = o.backend;
  }

  if (requested == GPTQ_BACKEND_CPU) return cpu_backend();
  if (requested == GPTQ_BACKEND_AUTO) {
    std::string reasons;
    for (const PluginSpec &spec : plugin_specs()) {
      const PluginOutcome &plugin = plugin_outcome(spec);
      if (plugin.backend != nullptr) {
        logger.log(GPTQ_LOG_INFO, std::string("backend auto: using ") + spec.label + " (" +
                                      plugin.description + ")");
        return *plugin.backend;
      }
      reasons += (reasons.empty() ? "" : "; ") + plugin.reason;
    }
    logger.log(GPTQ_LOG_INFO, "backend auto: using the CPU backend, because " + reasons);
    return cpu_backend();
  }
  const PluginSpec *spec = plugin_spec(requested);
  if (spec == nullptr) throw Error(GPTQ_ERR_INVALID_CONFIG, std::string(where) + ": unknown backend");
  const PluginOutcome &plugin = plugin_outcome(*spec);
  if (plugin.backend != nullptr) return *plugin.backend;
  throw Error(GPTQ_ERR_BACKEND_UNAVAILABLE, std::string(where) + ": the " + spec->label +
                                                " backend was requested but cannot be used: " +
                                                plugin.reason);
}

Memory resolve_memory(gptq_memory requested, const void *p, Backend &b, const char *where,
                      const char *what) {
  switch (requested) {
    case GPTQ_MEMORY_HOST: return Memory::kHost;
    case GPTQ_MEMORY_AUTO: return b.has_device_memory() ? b.memory_of(p) : Memory::kHost;
    case GPTQ_MEMORY_DEVICE:
      if (!b.has_device_memory())
        throw Error(GPTQ_ERR_UNSUPPORTED, std::string(where) + ": " + what +
                                              " is declared device memory, but the " + b.name() +
                                              " backend has no device");
      return Memory::kDevice;
  }
  throw Error(GPTQ_ERR_INVALID_CONFIG, std::string(where) + ": memory " +
                                           std::to_string(static_cast<int>(requested)) +
                                           " is not a gptq_memory");
}

ScanResult Backend::scan_device(const void *, gptq_dtype, int64_t, void *) {
  throw Error(GPTQ_ERR_INTERNAL, std::string(name()) + " backend has no device memory to scan");
}

void Backend::copy_to_host(void *, const void *, size_t, void *) {
  throw Error(GPTQ_ERR_INTERNAL, std::string(name()) + " backend has no device memory to copy");
}

}  // namespace gptq
