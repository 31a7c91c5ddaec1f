// Which backend a context gets: the config's choice, unless the environment
// variable GPTQ_BACKEND overrides it for the whole process (so a deployed
// program can be moved between CPU and GPU without a rebuild), resolved
// against what is actually usable. The CUDA backend is a plugin found and
// probed once per process (plugin_loader.cpp); nothing here knows CUDA.
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

  switch (requested) {
    case GPTQ_BACKEND_CPU:
      return cpu_backend();
    case GPTQ_BACKEND_AUTO: {
      const PluginOutcome &cuda = cuda_plugin();
      if (cuda.backend != nullptr) {
        logger.log(GPTQ_LOG_INFO, "backend auto: using CUDA (" + cuda.description + ")");
        return *cuda.backend;
      }
      logger.log(GPTQ_LOG_INFO, "backend auto: using the CPU backend, because " + cuda.reason);
      return cpu_backend();
    }
    case GPTQ_BACKEND_CUDA: {
      const PluginOutcome &cuda = cuda_plugin();
      if (cuda.backend != nullptr) return *cuda.backend;
      throw Error(GPTQ_ERR_BACKEND_UNAVAILABLE,
                  std::string(where) + ": the CUDA backend was requested but cannot be used: " +
                      cuda.reason);
    }
  }
  throw Error(GPTQ_ERR_INVALID_CONFIG, std::string(where) + ": unknown backend");
}

}  // namespace gptq
