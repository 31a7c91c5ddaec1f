// A gptq::Backend implemented by a dlopen'ed plugin: translates the internal
// C++ interface into calls through the plugin's C function table
// (plugin_abi.h) and the plugin's status + message back into gptq::Error.
// It is the only code that calls into a plugin after it has been probed.
#pragma once

#include <memory>
#include <string>

#include "backend.h"
#include "plugin_abi.h"

namespace gptq {

// `table` is a complete, probed table (every required entry non-NULL) that
// outlives the backend (plugins are never unloaded). `kind` is the public
// backend id the plugin serves.
std::unique_ptr<Backend> make_plugin_backend(const gptq_plugin_table &table, gptq_backend kind);

}  // namespace gptq
