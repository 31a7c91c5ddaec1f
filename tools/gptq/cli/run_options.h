// Options shared by the commands that run a model: where the library
// computes (--backend), how quantized layers multiply (--matmul) and on how
// many threads (--threads).
#pragma once

#include "cli/cli_args.h"
#include "model/linear.h"

namespace gptqtool {

// --backend auto|cpu|cuda: the library's backend for the whole run, set
// through its GPTQ_BACKEND override before any context or import. An
// explicit cuda is checked at once.
void choose_backend(const CliArgs &args);

// --matmul f32|int8 (default f32) and --threads N (0 = every core; also
// OpenBLAS's thread count, so the float layers and attention follow it).
MatmulChoice choose_matmul(const CliArgs &args);

}  // namespace gptqtool
