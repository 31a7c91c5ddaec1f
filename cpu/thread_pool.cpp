#include "thread_pool.h"

#include <algorithm>
#include <chrono>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace gptq::cpu {

namespace {

// How long a thread polls before it blocks: a worker after its job (the next
// one usually follows within microseconds when an engine runs layer after
// layer), the caller for its workers to finish. Waking a blocked thread
// costs a sizeable part of a whole batch-1 matmul (bench/RESULTS.md); a
// poll this short is small against OpenBLAS's own spin-waits and bounds
// what an idle pool takes from others.
constexpr std::chrono::microseconds kSpin{50};

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#endif
}

// Polls `ready` for up to kSpin; true when it became true.
template <typename Ready>
bool spin_until(Ready ready) {
  const auto deadline = std::chrono::steady_clock::now() + kSpin;
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (ready()) return true;
      cpu_relax();
    }
    if (std::chrono::steady_clock::now() >= deadline) return false;
  }
}

}  // namespace

ThreadPool &ThreadPool::instance() {
  static ThreadPool pool(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  return pool;
}

ThreadPool::ThreadPool(int threads) {
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  for (auto &w : workers_) w.join();
}

void ThreadPool::run_tasks() {
  for (;;) {
    int64_t i;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (next_ >= tasks_) return;
      i = next_++;
    }
    (*task_)(i);
  }
}

void ThreadPool::worker_loop(int index) {
  uint64_t seen = 0;
  for (;;) {
    spin_until([&] { return generation_.load(std::memory_order_acquire) != seen || stop_; });
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock,
                 [&] { return stop_ || (generation_ != seen && index < active_workers_ + 1); });
      if (stop_) return;
      seen = generation_;
      ++busy_;
    }
    run_tasks();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (--busy_ == 0) done_.notify_all();
    }
  }
}

void ThreadPool::parallel_for(int64_t tasks, int max_threads,
                              const std::function<void(int64_t)> &task) {
  if (tasks <= 0) return;
  const int threads = max_threads <= 0 ? size() : std::min(max_threads, size());
  if (threads == 1 || tasks == 1) {
    for (int64_t i = 0; i < tasks; ++i) task(i);
    return;
  }
  std::lock_guard<std::mutex> submit(submit_);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    task_ = &task;
    tasks_ = tasks;
    next_ = 0;
    active_workers_ = threads - 1;
    ++generation_;
  }
  wake_.notify_all();
  run_tasks();
  spin_until([&] { return busy_.load(std::memory_order_acquire) == 0; });
  std::unique_lock<std::mutex> lock(mutex_);
  // Workers that never woke for this job do not count: wait only for those
  // inside it, and retire the job so late wakers find nothing to do.
  done_.wait(lock, [&] { return busy_ == 0 && next_ >= tasks_; });
  active_workers_ = 0;
  task_ = nullptr;
}

}  // namespace gptq::cpu
