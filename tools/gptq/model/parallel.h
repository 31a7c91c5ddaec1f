// Work spread over the CPU's cores by the tool's own threads, for the parts
// of the forward pass that OpenBLAS cannot parallelize well on its own: many
// small products (attention per head and block of rows) and elementwise
// passes (norms, activations, softmax, per-token losses).
//
// Inside parallel_for every BLAS call runs single-threaded in the calling
// thread, so the tool's threads and OpenBLAS's never contend for the cores;
// outside it OpenBLAS keeps its own thread count (large products, and the
// library's Hessians and GPTQ, are faster that way).
#pragma once

#include <cstdint>
#include <functional>

namespace gptqtool {

// Threads parallel_for uses: OpenBLAS's thread count (which honours
// OPENBLAS_NUM_THREADS and the CPUs this process may run on).
int worker_count();

// Calls fn(task, worker) once for every task in [0, tasks), handing tasks to
// worker_count() threads in increasing order as each becomes free (so list
// the most expensive tasks first). worker < worker_count() indexes
// per-thread scratch. Which thread runs a task never changes its result.
// The first exception a task throws is rethrown here once all threads stop.
void parallel_for(int64_t tasks, const std::function<void(int64_t task, int worker)> &fn);

// parallel_for over [0, n) in contiguous ranges of about `grain` items:
// fn(begin, end).
void parallel_ranges(int64_t n, int64_t grain,
                     const std::function<void(int64_t begin, int64_t end)> &fn);

}  // namespace gptqtool
