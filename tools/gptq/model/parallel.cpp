#include "model/parallel.h"

#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

namespace gptqtool {

namespace {

// Sets OpenBLAS to one thread for the lifetime of the scope. OpenBLAS then
// runs each call entirely in the calling thread, which makes concurrent
// calls from the tool's threads safe and keeps its own (spinning) threads
// from competing with them.
class SingleThreadedBlas {
 public:
  SingleThreadedBlas() : saved_(openblas_get_num_threads()) { openblas_set_num_threads(1); }
  ~SingleThreadedBlas() { openblas_set_num_threads(saved_); }
  SingleThreadedBlas(const SingleThreadedBlas &) = delete;
  SingleThreadedBlas &operator=(const SingleThreadedBlas &) = delete;

 private:
  int saved_;
};

}  // namespace

int worker_count() { return std::max(1, openblas_get_num_threads()); }

void parallel_for(int64_t tasks, const std::function<void(int64_t task, int worker)> &fn) {
  if (tasks <= 0) return;
  const int workers = static_cast<int>(std::min<int64_t>(worker_count(), tasks));
  if (workers == 1) {
    for (int64_t t = 0; t < tasks; ++t) fn(t, 0);
    return;
  }
  const SingleThreadedBlas single;
  std::atomic<int64_t> next{0};
  std::atomic<bool> failed{false};
  std::exception_ptr error;
  std::mutex error_mutex;
  auto work = [&](int worker) {
    try {
      for (int64_t t = next++; t < tasks && !failed.load(); t = next++) fn(t, worker);
    } catch (...) {
      const std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
      failed = true;
    }
  };
  std::vector<std::thread> threads;
  threads.reserve(static_cast<size_t>(workers - 1));
  for (int w = 1; w < workers; ++w) {
    try {
      threads.emplace_back(work, w);
    } catch (const std::system_error &) {
      break;  // no thread to be had: the ones running take the remaining tasks
    }
  }
  work(0);
  for (std::thread &t : threads) t.join();
  if (error) std::rethrow_exception(error);
}

void parallel_ranges(int64_t n, int64_t grain,
                     const std::function<void(int64_t begin, int64_t end)> &fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  const int64_t chunks = (n + grain - 1) / grain;
  parallel_for(chunks, [&](int64_t chunk, int) {
    const int64_t begin = chunk * n / chunks;
    fn(begin, (chunk + 1) * n / chunks);
  });
}

}  // namespace gptqtool
