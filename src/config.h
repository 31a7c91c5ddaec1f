// Reading and validating gptq_config across ABI versions.
#pragma once

#include <cstddef>

#include "gptq.h"

namespace gptq {

// The smallest struct_size accepted: the first published layout, which ends
// with log_level. Fields appended since (num_threads, ...) keep their
// defaults when an older caller's struct does not reach them.
constexpr size_t kMinConfigSize = offsetof(gptq_config, num_threads);

// Copies the caller's config (or the defaults when cfg is NULL) into a
// full-size struct, reading only cfg->struct_size bytes, and checks every
// field. Throws Error(INVALID_CONFIG) naming the first bad field.
gptq_config read_config(const gptq_config *cfg, const char *where);

}  // namespace gptq
