// Finding, loading, probing and checking backend plugins (such as
// libgptq-cuda.so), once per plugin per process. The outcome is either a
// usable Backend or the exact reason there is none, which select_backend
// turns into a log line (auto) or an error (an explicit request).
#pragma once

#include <string>
#include <vector>

#include "backend.h"

namespace gptq {

// A backend that lives in a plugin: which public backend it serves, the
// file looked for next to libgptq, and the environment variable that names
// its full path instead.
struct PluginSpec {
  gptq_backend kind;
  const char *label;  // for messages: "CUDA"
  const char *file;   // "libgptq-cuda.so"
  const char *env;    // "GPTQ_CUDA_PLUGIN"
};

// The plugin backends this core knows, in the order AUTO prefers them.
const std::vector<PluginSpec> &plugin_specs();

// The spec serving `kind`, or nullptr (the CPU is no plugin).
const PluginSpec *plugin_spec(gptq_backend kind);

struct PluginOutcome {
  Backend *backend = nullptr;  // non-NULL when usable; lives for the process
  std::string description;     // what the plugin will use (when usable)
  std::string reason;          // why it cannot be used (when not)
};

// The outcome for one plugin. The first call searches, loads, probes and
// self-checks it; every later call (from any thread) returns the same.
const PluginOutcome &plugin_outcome(const PluginSpec &spec);

}  // namespace gptq
