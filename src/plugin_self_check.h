// The check every plugin passes before it is used: a small fixed GPTQ
// problem quantized and multiplied by the plugin and by the CPU backend, the
// results compared. A plugin that runs but computes wrongly (a broken
// driver, a GPU its kernels do not support) is then refused with the reason,
// and AUTO falls back to the CPU, instead of handing users wrong weights.
#pragma once

#include <string>

#include "backend.h"

namespace gptq {

// Empty when the plugin's results agree with the CPU backend's, else what
// differs, in one line.
std::string self_check_failure(Backend &plugin);

}  // namespace gptq
