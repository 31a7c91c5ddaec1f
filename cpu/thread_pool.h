// A small thread pool for the CPU backend's own loops (the GPTQ block loop,
// matmul kernels). Between jobs, workers poll for 50 µs and then sleep on a
// condition variable, so back-to-back jobs start without a wake-up while an
// idle pool takes no cycles from OpenBLAS's threads, which run the big GEMMs
// in between. No OpenMP runtime is pulled into the host process.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace gptq::cpu {

class ThreadPool {
 public:
  // The process-wide pool, with one thread per hardware core.
  static ThreadPool &instance();

  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool &) = delete;
  ThreadPool &operator=(const ThreadPool &) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Runs task(i) for i in [0, tasks) on up to max_threads threads (the
  // calling thread included; <= 0 means all) and returns when all are done.
  // Tasks must not throw. Calls from several threads are serialized.
  void parallel_for(int64_t tasks, int max_threads, const std::function<void(int64_t)> &task);

 private:
  void worker_loop(int index);
  void run_tasks();

  std::vector<std::thread> workers_;
  std::mutex submit_;  // one job at a time
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  const std::function<void(int64_t)> *task_ = nullptr;
  int64_t tasks_ = 0;
  int64_t next_ = 0;
  int active_workers_ = 0;  // workers allowed to join the current job
  // Written under mutex_; atomic so that the polls before blocking may read
  // them without it.
  std::atomic<int> busy_{0};             // workers still inside the current job
  std::atomic<uint64_t> generation_{0};  // bumps once per job
  std::atomic<bool> stop_{false};
};

}  // namespace gptq::cpu
