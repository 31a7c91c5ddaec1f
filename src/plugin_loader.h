// Finding, loading and probing the CUDA backend plugin (libgptq-cuda.so),
// once per process. The outcome is either a usable Backend or the exact
// reason there is none, which select_backend turns into a log line (auto) or
// an error (an explicit request for CUDA).
#pragma once

#include <string>

#include "backend.h"

namespace gptq {

// File name of the CUDA plugin, looked for next to libgptq itself.
constexpr const char *kCudaPluginFile = "libgptq-cuda.so";
// Environment variable naming the plugin's full path instead.
constexpr const char *kCudaPluginEnv = "GPTQ_CUDA_PLUGIN";

struct PluginOutcome {
  Backend *backend = nullptr;  // non-NULL when usable; lives for the process
  std::string description;     // what the plugin will use (when usable)
  std::string reason;          // why it cannot be used (when not)
};

// The CUDA plugin's outcome. The first call searches, loads and probes;
// every later call (from any thread) returns the same result.
const PluginOutcome &cuda_plugin();

}  // namespace gptq
