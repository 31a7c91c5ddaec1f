// The tool's parallel_for on its kept threads: every task runs exactly once
// in every call, however many calls follow each other; a task's exception
// reaches the caller and leaves the threads usable; a parallel_for inside a
// task runs in that task's thread; OpenBLAS's thread count is restored.
#include <gtest/gtest.h>

#include <cblas.h>

#include <atomic>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "model/parallel.h"

using namespace gptqtool;

namespace {

// More threads than this machine may have cores, so that the tool's
// threads are used (and contend) even on one or two cores.
class ParallelFor : public ::testing::Test {
 protected:
  void SetUp() override {
    saved_ = openblas_get_num_threads();
    openblas_set_num_threads(4);
  }
  void TearDown() override { openblas_set_num_threads(saved_); }

 private:
  int saved_ = 1;
};

}  // namespace

TEST_F(ParallelFor, EveryTaskRunsOnceInEveryCall) {
  ASSERT_EQ(worker_count(), 4);
  std::set<int> workers_seen;
  std::mutex seen_mutex;
  for (int call = 0; call < 3000; ++call) {
    const int64_t tasks = 1 + call % 37;
    std::vector<std::atomic<int>> runs(static_cast<size_t>(tasks));
    parallel_for(tasks, [&](int64_t t, int worker) {
      ASSERT_GE(worker, 0);
      ASSERT_LT(worker, 4);
      runs[static_cast<size_t>(t)]++;
      if (call % 100 == 0) {
        const std::lock_guard<std::mutex> lock(seen_mutex);
        workers_seen.insert(worker);
      }
    });
    for (int64_t t = 0; t < tasks; ++t) ASSERT_EQ(runs[static_cast<size_t>(t)].load(), 1) << call;
  }
  EXPECT_GE(workers_seen.size(), 1u);
  EXPECT_EQ(openblas_get_num_threads(), 4);  // restored after each call
}

TEST_F(ParallelFor, ExceptionReachesTheCallerAndTheThreadsStayUsable) {
  for (int round = 0; round < 50; ++round) {
    std::atomic<int> ran{0};
    EXPECT_THROW(parallel_for(64,
                              [&](int64_t t, int) {
                                ++ran;
                                if (t == 7) throw std::runtime_error("task 7");
                              }),
                 std::runtime_error);
    EXPECT_GE(ran.load(), 1);
    std::atomic<int64_t> sum{0};
    parallel_for(100, [&](int64_t t, int) { sum += t; });
    EXPECT_EQ(sum.load(), 4950);
  }
  EXPECT_EQ(openblas_get_num_threads(), 4);
}

TEST_F(ParallelFor, NestedCallsRunInTheTasksThread) {
  std::atomic<int64_t> inner{0};
  parallel_for(8, [&](int64_t, int) {
    const std::thread::id me = std::this_thread::get_id();
    parallel_for(5, [&](int64_t t, int worker) {
      EXPECT_EQ(worker, 0);
      EXPECT_EQ(std::this_thread::get_id(), me);
      inner += t;
    });
  });
  EXPECT_EQ(inner.load(), 8 * 10);
}

TEST_F(ParallelFor, RangesCoverEveryItemOnce) {
  std::vector<std::atomic<int>> hit(1000);
  parallel_ranges(1000, 7, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) hit[static_cast<size_t>(i)]++;
  });
  for (const auto &h : hit) ASSERT_EQ(h.load(), 1);
}
