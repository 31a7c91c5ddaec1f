// Options shared by the commands that run a model: where the library
// computes (--backend), how quantized layers multiply (--matmul), on how
// many threads (--threads), and how a generation's KV cache stores keys and
// values (--kv-cache).
#pragma once

#include "cli/cli_args.h"
#include "model/kv_cache.h"
#include "model/linear.h"

namespace gptqtool {

// --backend auto|cpu|cuda: the library's backend for the whole run, set
// through its GPTQ_BACKEND override before any context or import. An
// explicit cuda is checked at once.
void choose_backend(const CliArgs &args);

// --matmul f32|int8 (default f32) and --threads N (0 = every core; also
// OpenBLAS's thread count, so the float layers and attention follow it).
MatmulChoice choose_matmul(const CliArgs &args);

// --kv-cache f32|bf16 (default f32).
KvDType choose_kv_cache(const CliArgs &args);

}  // namespace gptqtool
