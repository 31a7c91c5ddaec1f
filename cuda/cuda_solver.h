// GPTQ on the GPU: the algorithm of cpu/gptq_solver.cpp (see there for the
// no-inverse, right-looking formulation), with cuSOLVER's Cholesky, cuBLAS
// for the block updates and our own kernels for everything else. The host
// takes part only before the loop (the diagonal, for dead columns and the
// act-order permutation, and the factorization's success) and after it (the
// results); the loop itself queues its work without waiting, except to call
// a progress callback.
#pragma once

#include "cuda_hessian.h"
#include "gptq.h"
#include "plugin_abi.h"

namespace gptq_cuda {

// Quantizes w [out->out_features, h.dim()] of element type dtype (on the
// device when w_on_device) with config (validated; its stream is h's) and
// writes the result into out's host arrays and the algorithmic fields of
// stats, as the plugin ABI's quantize entry documents.
void solve_on_device(const DeviceHessian &h, const void *w, gptq_dtype dtype, bool w_on_device,
                     const gptq_config &config, gptq_plugin_qtensor &out,
                     gptq_quant_stats &stats);

}  // namespace gptq_cuda
