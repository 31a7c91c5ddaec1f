// Reading and validating gptq_config across ABI versions.
#pragma once

#include "gptq.h"

namespace gptq {

// The smallest struct_size accepted: a config must at least reach the
// fields of version 0.1 (everything up to and including log_level).
constexpr size_t kMinConfigSize = sizeof(gptq_config);

// Copies the caller's config (or the defaults when cfg is NULL) into a
// full-size struct, reading only cfg->struct_size bytes, and checks every
// field. Throws Error(INVALID_CONFIG) naming the first bad field.
gptq_config read_config(const gptq_config *cfg, const char *where);

}  // namespace gptq
