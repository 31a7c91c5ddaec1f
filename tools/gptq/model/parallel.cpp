#include "model/parallel.h"

#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
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

namespace {

// The threads parallel_for hands tasks to, started once and kept: a decode
// step makes a few hundred parallel_for calls of tens of microseconds
// each, against which starting a thread per call (and faulting in its
// stack) costs as much as the work, and the thread arrives after the
// calling one has taken most of the tasks. Between calls a thread polls
// for 100 µs, then sleeps.
class TaskThreads {
 public:
  ~TaskThreads() {
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    for (std::thread &t : threads_) t.join();
  }

  // Runs fn over the tasks on the calling thread and `helpers` of these
  // threads (started here when there are fewer).
  void run(int64_t tasks, int helpers, const std::function<void(int64_t, int)> &fn) {
    const std::lock_guard<std::mutex> one_job(job_mutex_);
    while (static_cast<int>(threads_.size()) < helpers) {
      try {
        const int index = static_cast<int>(threads_.size()) + 1;
        threads_.emplace_back([this, index] { serve(index); });
      } catch (const std::system_error &) {
        helpers = static_cast<int>(threads_.size());  // no thread to be had: fewer helpers
        break;
      }
    }
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      fn_ = &fn;
      tasks_ = tasks;
      next_ = 0;
      helpers_ = helpers;
      error_ = nullptr;
      failed_ = false;
      busy_ = helpers;
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    work(0);
    // Wait for the helpers to leave the job (they find no tasks left soon
    // after the calling thread does).
    while (busy_.load(std::memory_order_acquire) != 0) pause();
    fn_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

 private:
  static void pause() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }

  void work(int worker) {
    try {
      for (int64_t t = next_++; t < tasks_ && !failed_.load(); t = next_++) (*fn_)(t, worker);
    } catch (...) {
      const std::lock_guard<std::mutex> lock(error_mutex_);
      if (!error_) error_ = std::current_exception();
      failed_ = true;
    }
  }

  void serve(int index) {
    uint64_t seen = 0;
    for (;;) {
      // Poll for the next job for a while, then sleep until one comes. The
      // job is looked for after every pause (one pause is up to ~140 cycles),
      // the clock only now and then: a job found late holds up its caller,
      // which waits for every helper at the end.
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(100);
      for (int polls = 1; generation_.load(std::memory_order_acquire) == seen && !stop_.load();
           ++polls) {
        pause();
        if (polls % 64 == 0 && std::chrono::steady_clock::now() >= deadline) break;
      }
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return stop_ || generation_.load() != seen; });
        if (stop_) return;
        seen = generation_.load();
        if (index > helpers_) continue;  // not needed for this job
      }
      work(index);
      busy_.fetch_sub(1, std::memory_order_release);
    }
  }

  std::vector<std::thread> threads_;
  std::mutex job_mutex_;  // one job at a time
  std::mutex mutex_;      // guards the job's fields and the sleep
  std::condition_variable wake_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> stop_{false};
  const std::function<void(int64_t, int)> *fn_ = nullptr;
  int64_t tasks_ = 0;
  int helpers_ = 0;
  std::atomic<int64_t> next_{0};
  std::atomic<int> busy_{0};
  std::atomic<bool> failed_{false};
  std::mutex error_mutex_;
  std::exception_ptr error_;
};

TaskThreads &task_threads() {
  static TaskThreads threads;
  return threads;
}

}  // namespace

void parallel_for(int64_t tasks, const std::function<void(int64_t task, int worker)> &fn) {
  if (tasks <= 0) return;
  // Inside a parallel_for, OpenBLAS is set to one thread (below), so a
  // nested call runs in its caller's thread.
  const int workers = static_cast<int>(std::min<int64_t>(worker_count(), tasks));
  if (workers == 1) {
    for (int64_t t = 0; t < tasks; ++t) fn(t, 0);
    return;
  }
  const SingleThreadedBlas single;
  task_threads().run(tasks, workers - 1, fn);
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
