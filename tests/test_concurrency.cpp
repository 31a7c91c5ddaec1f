// The thread-safety contract (README.md, "Errors and threads"), under load:
// one finished tensor read by many threads at once through every read-only
// call, and independent contexts quantizing in parallel, each with its own
// worker threads. Every thread must get exactly the serial result. Run under
// ThreadSanitizer by .ci/test.sh (build-tsan), which turns any data race into
// a failure; without TSan they still check the results.
#include <atomic>
#include <thread>

#include "test_util.h"

using namespace gptq_test;

namespace {

constexpr int kThreads = 6;

struct Checkpoint {
  std::vector<int32_t> qweight, qzeros, g_idx;
  std::vector<uint16_t> scales;
};

gptq_checkpoint_tensors buffers_of(Checkpoint &c) {
  return {c.qweight.data(), static_cast<int64_t>(c.qweight.size()),
          c.qzeros.data(),  static_cast<int64_t>(c.qzeros.size()),
          c.scales.data(),  static_cast<int64_t>(c.scales.size()),
          c.g_idx.data(),   static_cast<int64_t>(c.g_idx.size())};
}

void allocate(Checkpoint &c, const gptq_checkpoint_sizes &s) {
  c.qweight.resize(static_cast<size_t>(s.qweight_rows * s.qweight_cols));
  c.qzeros.resize(static_cast<size_t>(s.qzeros_rows * s.qzeros_cols));
  c.scales.resize(static_cast<size_t>(s.scales_rows * s.scales_cols));
  c.g_idx.resize(static_cast<size_t>(s.g_idx_len));
}

Checkpoint export_of(const gptq_qtensor *q, int64_t out, int64_t in, int32_t bits, int32_t group) {
  gptq_checkpoint_sizes s{};
  EXPECT_EQ(gptq_checkpoint_sizes_for(out, in, bits, group, &s), GPTQ_OK) << gptq_last_error();
  Checkpoint c;
  allocate(c, s);
  gptq_checkpoint_tensors t = buffers_of(c);
  EXPECT_EQ(gptq_qtensor_export(q, GPTQ_FORMAT_V2, &t), GPTQ_OK) << gptq_last_error();
  return c;
}

// Every way of reading a finished tensor, as one thread would call them.
struct Reads {
  std::vector<float> exact, exact_batch1, int8_batch1, dequant;
  std::vector<uint8_t> codes;
  std::vector<int32_t> qweight;
  gptq_qtensor_info info{};
  bool ok = false;

  bool operator==(const Reads &o) const {
    return ok == o.ok && exact == o.exact && exact_batch1 == o.exact_batch1 &&
           int8_batch1 == o.int8_batch1 && dequant == o.dequant && codes == o.codes &&
           qweight == o.qweight && info.bits == o.info.bits && info.group_size == o.info.group_size;
  }
};

Reads read_all(const gptq_qtensor *q, const std::vector<float> &x, int64_t rows, int64_t out,
               int64_t in, int32_t bits, int32_t group, int32_t threads_per_call) {
  Reads r;
  gptq_matmul_options exact;
  gptq_matmul_options_default(&exact);
  exact.num_threads = threads_per_call;
  gptq_matmul_options int8 = exact;
  int8.int8_activations = 1;
  r.exact.resize(static_cast<size_t>(rows * out));
  r.exact_batch1.resize(static_cast<size_t>(out));
  r.int8_batch1.resize(static_cast<size_t>(out));
  r.dequant.resize(static_cast<size_t>(out * in));
  r.codes.resize(static_cast<size_t>(out * in));
  bool ok = gptq_matmul_ex(q, x.data(), GPTQ_DTYPE_F32, rows, in, nullptr, r.exact.data(), rows * out,
                           &exact) == GPTQ_OK;
  ok &= gptq_matmul_ex(q, x.data(), GPTQ_DTYPE_F32, 1, in, nullptr, r.exact_batch1.data(), out, &exact) ==
        GPTQ_OK;
  ok &= gptq_matmul_ex(q, x.data(), GPTQ_DTYPE_F32, 1, in, nullptr, r.int8_batch1.data(), out, &int8) ==
        GPTQ_OK;
  ok &= gptq_qtensor_dequantize(q, r.dequant.data(), out * in) == GPTQ_OK;
  ok &= gptq_qtensor_codes(q, r.codes.data(), out * in) == GPTQ_OK;
  ok &= gptq_qtensor_get_info(q, &r.info) == GPTQ_OK;
  ok &= gptq_qtensor_backend(q) == GPTQ_BACKEND_CPU;
  gptq_checkpoint_sizes s{};
  ok &= gptq_checkpoint_sizes_for(out, in, bits, group, &s) == GPTQ_OK;
  Checkpoint c;
  allocate(c, s);
  gptq_checkpoint_tensors t = buffers_of(c);
  ok &= gptq_qtensor_export(q, GPTQ_FORMAT_V2, &t) == GPTQ_OK;
  r.qweight = c.qweight;
  r.ok = ok;
  return r;
}

// Quantizes with a context of its own, fed in two half batches (so that
// add_batch's accumulation overlaps too); the codes, or nothing on failure.
std::vector<uint8_t> quantize_in_two_batches(const gptq_config &cfg, const std::vector<float> &x,
                                             const std::vector<float> &w, int64_t tokens, int64_t out,
                                             int64_t in) {
  std::vector<uint8_t> codes;
  gptq_ctx *ctx = nullptr;
  if (gptq_ctx_create(out, in, &cfg, &ctx) != GPTQ_OK) return codes;
  gptq_qtensor *q = nullptr;
  const int64_t half = tokens / 2;
  if (gptq_add_batch(ctx, x.data(), GPTQ_DTYPE_F32, half, in, 1) == GPTQ_OK &&
      gptq_add_batch(ctx, x.data() + half * in, GPTQ_DTYPE_F32, tokens - half, in, 1) == GPTQ_OK &&
      gptq_quantize(ctx, w.data(), GPTQ_DTYPE_F32, out, in, &q, nullptr) == GPTQ_OK) {
    codes.resize(static_cast<size_t>(out * in));
    if (gptq_qtensor_codes(q, codes.data(), out * in) != GPTQ_OK) codes.clear();
  }
  gptq_qtensor_destroy(q);
  gptq_ctx_destroy(ctx);
  return codes;
}

// Many threads read one tensor through matmul (exact and int8, batch 1 and a
// batch, with the library's own worker threads inside each call), dequantize,
// codes, export and the queries, all at once.
TEST(Concurrency, SharedTensorReadByManyThreads) {
  const int64_t out = 96, in = 256, rows = 8;
  const int32_t bits = 4, group = 64;
  gptq_config cfg = default_config();
  cfg.bits = bits;
  cfg.group_size = group;
  cfg.act_order = 1;  // g_idx that is not j / group: the permuted paths too
  QTensor q = quantize_layer(cfg, correlated_activations(256, in, 31), layer_weights(out, in, 32), 256, out, in);
  ASSERT_TRUE(q);
  const std::vector<float> x = correlated_activations(rows, in, 33);
  const Reads serial = read_all(q.get(), x, rows, out, in, bits, group, 2);
  ASSERT_TRUE(serial.ok) << gptq_last_error();

  std::vector<Reads> got(kThreads);
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      ++ready;
      while (ready.load() < kThreads) std::this_thread::yield();  // start together
      // Alternate one worker per call and two, so calls with and without the
      // pool's threads overlap.
      for (int i = 0; i < 3; ++i) got[t] = read_all(q.get(), x, rows, out, in, bits, group, 1 + (t + i) % 2);
    });
  for (auto &th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_TRUE(got[t] == serial) << "thread " << t;
}

// The same checkpoint buffers imported by many threads at once (the caller's
// buffers are only read), each tensor then used on its own thread.
TEST(Concurrency, OneCheckpointImportedByManyThreads) {
  const int64_t out = 64, in = 128;
  const int32_t bits = 3, group = 32;
  gptq_config cfg = default_config();
  cfg.bits = bits;
  cfg.group_size = group;
  QTensor q = quantize_layer(cfg, correlated_activations(128, in, 41), layer_weights(out, in, 42), 128, out, in);
  ASSERT_TRUE(q);
  Checkpoint ck = export_of(q.get(), out, in, bits, group);
  const gptq_checkpoint_tensors t = buffers_of(ck);
  const std::vector<float> expect = dequantized(q.get(), out, in);

  std::vector<std::vector<float>> got(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i)
    threads.emplace_back([&, i] {
      gptq_qtensor *mine = nullptr;
      if (gptq_qtensor_import(out, in, bits, group, GPTQ_FORMAT_V2, &t, &mine) != GPTQ_OK) return;
      got[i].resize(static_cast<size_t>(out * in));
      if (gptq_qtensor_dequantize(mine, got[i].data(), out * in) != GPTQ_OK) got[i].clear();
      gptq_qtensor_destroy(mine);
    });
  for (auto &th : threads) th.join();
  for (int i = 0; i < kThreads; ++i) EXPECT_EQ(got[i], expect) << "thread " << i;
}

// Independent contexts quantize in parallel, each with two worker threads of
// its own, in both precisions, with and without act-order; each thread's
// codes must be exactly the serial ones.
TEST(Concurrency, IndependentContextsQuantizeInParallel) {
  const int64_t out = 48, in = 128, tokens = 160;
  const std::vector<float> x = correlated_activations(tokens, in, 51);
  const std::vector<float> w = layer_weights(out, in, 52);
  auto config_for = [](int t) {
    gptq_config c = default_config();
    c.group_size = 32;
    c.num_threads = 2;
    c.act_order = t % 2;
    c.precision = (t / 2) % 2 ? GPTQ_PRECISION_F64 : GPTQ_PRECISION_F32;
    return c;
  };
  std::vector<std::vector<uint8_t>> expect(4);
  for (int k = 0; k < 4; ++k) {
    expect[k] = quantize_in_two_batches(config_for(k), x, w, tokens, out, in);
    ASSERT_EQ(expect[k].size(), static_cast<size_t>(out * in)) << gptq_last_error();
  }

  std::vector<std::vector<uint8_t>> got(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      got[t] = quantize_in_two_batches(config_for(t), x, w, tokens, out, in);
    });
  for (auto &th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(got[t], expect[t % 4]) << "thread " << t;
}

}  // namespace
