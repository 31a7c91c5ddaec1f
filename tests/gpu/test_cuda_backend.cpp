// The CUDA backend through the public API, on a real GPU: parity of the
// solve with the CPU backend over the configuration space, the matmul
// against dequantize-then-multiply in every dtype and layout, device
// pointers and streams, errors, and a create/destroy loop for leaks. Every
// test skips, saying why, where no usable CUDA device is found (the
// plugin's own reason). tests/gpu/run_gpu_checks.sh runs this on the GPU
// machine, the leak loop once more under compute-sanitizer.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "half.h"
#include "test_util.h"

using namespace gptq_test;

namespace {

// Whether the CUDA backend is usable here; if not, why.
const std::string &gpu_unavailable() {
  static const std::string why = [] {
    gptq_config cfg = default_config();
    cfg.backend = GPTQ_BACKEND_CUDA;
    gptq_ctx *ctx = nullptr;
    const gptq_status s = gptq_ctx_create(4, 32, &cfg, &ctx);
    gptq_ctx_destroy(ctx);
    return s == GPTQ_OK ? std::string() : std::string(gptq_last_error());
  }();
  return why;
}

#define REQUIRE_GPU()                                                        \
  do {                                                                       \
    if (!gpu_unavailable().empty())                                          \
      GTEST_SKIP() << "no usable CUDA backend: " << gpu_unavailable();       \
  } while (0)

gptq_config config_on(gptq_backend backend) {
  gptq_config cfg = default_config();
  cfg.backend = backend;
  return cfg;
}

struct Quantized {
  QTensor q;
  gptq_quant_stats stats{};
};

Quantized quantize_on(gptq_backend backend, gptq_config cfg, const std::vector<float> &x,
                      const std::vector<float> &w, int64_t tokens, int64_t out, int64_t in) {
  cfg.backend = backend;
  Quantized r;
  r.stats.struct_size = sizeof r.stats;
  r.q = quantize_layer(cfg, x, w, tokens, out, in, &r.stats);
  return r;
}

// ---------------------------------------------------------------------------
// Solve parity.

struct ParityCase {
  int bits, group, sym, act_order, static_groups, mse;
  gptq_precision precision;
};

std::string describe(const ParityCase &c) {
  char s[128];
  std::snprintf(s, sizeof s, "%d-bit g%d %s%s%s%s %s", c.bits, c.group, c.sym ? "sym" : "asym",
                c.act_order ? " act" : "", c.static_groups ? "+static" : "", c.mse ? " mse" : "",
                c.precision == GPTQ_PRECISION_F64 ? "F64" : "F32");
  return s;
}

// Shapes that are not multiples of the block (128), of 16 or of the groups.
constexpr int64_t kOut = 200, kIn = 300, kTokens = 1200;

TEST(CudaParity, CodesAndLossMatchTheCpuBackend) {
  REQUIRE_GPU();
  const std::vector<float> x = correlated_activations(kTokens, kIn, 41);
  const std::vector<float> w = layer_weights(kOut, kIn, 42);
  std::vector<ParityCase> cases;
  for (int bits : {2, 3, 4, 8})
    for (int group : {32, 64, 128, -1})
      for (int sym : {0, 1})
        for (int order : {0, 1, 2}) {
          if (group < 0 && order == 2) continue;  // static groups need groups
          cases.push_back({bits, group, sym, order > 0, order == 2, 0, GPTQ_PRECISION_F32});
          if (bits == 4 || bits == 3) cases.push_back({bits, group, sym, order > 0, order == 2, 0, GPTQ_PRECISION_F64});
        }
  cases.push_back({4, 128, 0, 1, 0, 1, GPTQ_PRECISION_F32});
  cases.push_back({3, 64, 1, 0, 0, 1, GPTQ_PRECISION_F64});

  // The order the columns are quantized in with act-order: by descending
  // Hessian diagonal (2/n Σ x², in double: the same order as the backends'
  // unless two diagonals tie, which this data does not have).
  std::vector<double> diag(kIn, 0.0);
  for (int64_t t = 0; t < kTokens; ++t)
    for (int64_t j = 0; j < kIn; ++j) diag[j] += double(x[t * kIn + j]) * x[t * kIn + j];
  std::vector<int64_t> act_perm(kIn);
  for (int64_t j = 0; j < kIn; ++j) act_perm[j] = j;
  std::stable_sort(act_perm.begin(), act_perm.end(), [&](int64_t a, int64_t b) { return diag[a] > diag[b]; });

  int64_t total_rows = 0, total_tie_rows = 0, total_codes = 0, total_differ = 0;
  double worst_clean_loss = 0;
  std::printf("  %-32s %8s %9s %8s %12s\n", "config", "codes", "tie rows", "max|d|", "loss rel");
  for (const ParityCase &c : cases) {
    gptq_config cfg = default_config();
    cfg.bits = c.bits;
    cfg.group_size = c.group;
    cfg.sym = c.sym;
    cfg.act_order = c.act_order;
    cfg.static_groups = c.static_groups;
    cfg.mse = c.mse;
    cfg.precision = c.precision;
    const Quantized cpu = quantize_on(GPTQ_BACKEND_CPU, cfg, x, w, kTokens, kOut, kIn);
    const Quantized gpu = quantize_on(GPTQ_BACKEND_CUDA, cfg, x, w, kTokens, kOut, kIn);
    ASSERT_TRUE(cpu.q && gpu.q) << describe(c);
    EXPECT_EQ(gpu.stats.backend, GPTQ_BACKEND_CUDA);
    const std::vector<uint8_t> a = codes_of(cpu.q.get(), kOut, kIn), b = codes_of(gpu.q.get(), kOut, kIn);
    // A row's codes may part only at a rounding tie: its first difference
    // in quantization order is one step, and its error, of the same size
    // either way but of the other sign, then changes the rest of the row.
    int64_t differ = 0, tie_rows = 0;
    int max_step = 0;
    for (int64_t r = 0; r < kOut; ++r) {
      bool first = true;
      for (int64_t p = 0; p < kIn; ++p) {
        const int64_t j = c.act_order ? act_perm[p] : p;
        const int d = std::abs(int(a[r * kIn + j]) - int(b[r * kIn + j]));
        if (d == 0) continue;
        ++differ;
        max_step = std::max(max_step, d);
        if (first) {
          EXPECT_EQ(d, 1) << describe(c) << ": row " << r << " first differs at column " << j
                          << " by " << d << " steps, which is no rounding tie";
          ++tie_rows;
          first = false;
        }
      }
    }
    const double loss_rel = std::abs(gpu.stats.loss - cpu.stats.loss) / cpu.stats.loss;
    std::printf("  %-32s %8lld %9lld %8d %12.2e\n", describe(c).c_str(), static_cast<long long>(differ),
                static_cast<long long>(tie_rows), max_step, loss_rel);
    total_rows += kOut;
    total_tie_rows += tie_rows;
    total_codes += static_cast<int64_t>(a.size());
    total_differ += differ;
    EXPECT_EQ(gpu.stats.dead_columns, cpu.stats.dead_columns);
    EXPECT_EQ(gpu.stats.fell_back_to_rtn, cpu.stats.fell_back_to_rtn);
    EXPECT_EQ(gpu.stats.damp_retries, cpu.stats.damp_retries);
    gptq_qtensor_info ia{}, ib{};
    gptq_qtensor_get_info(cpu.q.get(), &ia);
    gptq_qtensor_get_info(gpu.q.get(), &ib);
    EXPECT_EQ(ia.act_order, ib.act_order) << describe(c);
    // Ties are rare: symmetric groups put their largest weight exactly on
    // one, which either backend's last bit then decides.
    EXPECT_LE(tie_rows, kOut / 10) << describe(c);
    if (tie_rows == 0) {
      // The same codes: the loss differs by the sums' rounding alone.
      EXPECT_LT(loss_rel, c.precision == GPTQ_PRECISION_F64 ? 1e-9 : 1e-4) << describe(c);
      if (c.precision == GPTQ_PRECISION_F32) worst_clean_loss = std::max(worst_clean_loss, loss_rel);
    } else {
      EXPECT_LT(loss_rel, 1e-2) << describe(c);
    }
  }
  std::printf("  rows parted by a rounding tie: %lld of %lld (%.2e); codes that differ: %lld of %lld "
              "(%.2e); worst F32 loss difference without a tie %.2e\n",
              static_cast<long long>(total_tie_rows), static_cast<long long>(total_rows),
              static_cast<double>(total_tie_rows) / static_cast<double>(total_rows),
              static_cast<long long>(total_differ), static_cast<long long>(total_codes),
              static_cast<double>(total_differ) / static_cast<double>(total_codes), worst_clean_loss);
}

// Dead columns, damping retries and the round-to-nearest fallback are
// decided and reported as on the CPU.
TEST(CudaParity, DeadColumnsRetriesAndFallback) {
  REQUIRE_GPU();
  const int64_t out = 64, in = 96, tokens = 40;  // fewer tokens than columns: singular H
  std::vector<float> x = correlated_activations(tokens, in, 51);
  for (int64_t t = 0; t < tokens; ++t) x[t * in + 7] = x[t * in + 70] = 0.0f;
  const std::vector<float> w = layer_weights(out, in, 52);
  for (auto [damp, increment] : {std::pair<float, float>{0.0f, 0.0f}, {0.0f, 0.01f}, {0.01f, 0.0025f}}) {
    gptq_config cfg = default_config();
    cfg.group_size = 32;
    cfg.damp_percent = damp;
    cfg.damp_increment = increment;
    const Quantized cpu = quantize_on(GPTQ_BACKEND_CPU, cfg, x, w, tokens, out, in);
    const Quantized gpu = quantize_on(GPTQ_BACKEND_CUDA, cfg, x, w, tokens, out, in);
    ASSERT_TRUE(cpu.q && gpu.q);
    EXPECT_EQ(gpu.stats.dead_columns, 2);
    EXPECT_EQ(gpu.stats.dead_columns, cpu.stats.dead_columns);
    EXPECT_EQ(gpu.stats.fell_back_to_rtn, cpu.stats.fell_back_to_rtn) << damp << " " << increment;
    EXPECT_EQ(gpu.stats.damp_retries, cpu.stats.damp_retries) << damp << " " << increment;
    EXPECT_EQ(gpu.stats.damp_percent_used, cpu.stats.damp_percent_used);
    if (cpu.stats.fell_back_to_rtn) {
      EXPECT_EQ(codes_of(gpu.q.get(), out, in), codes_of(cpu.q.get(), out, in));
    }
  }
}

// ---------------------------------------------------------------------------
// Matmul.

std::vector<float> rounded_to(const std::vector<float> &v, gptq_dtype dtype) {
  std::vector<float> r(v);
  for (float &f : r) {
    if (dtype == GPTQ_DTYPE_F16) f = gptq::half_to_float(gptq::float_to_half(f));
    if (dtype == GPTQ_DTYPE_BF16) f = gptq::bf16_to_float(gptq::float_to_bf16(f));
  }
  return r;
}

std::vector<uint16_t> narrowed(const std::vector<float> &v, gptq_dtype dtype) {
  std::vector<uint16_t> r(v.size());
  for (size_t i = 0; i < v.size(); ++i)
    r[i] = dtype == GPTQ_DTYPE_F16 ? gptq::float_to_half(v[i]) : gptq::float_to_bf16(v[i]);
  return r;
}

std::vector<float> widened(const std::vector<uint16_t> &v, gptq_dtype dtype) {
  std::vector<float> r(v.size());
  for (size_t i = 0; i < v.size(); ++i)
    r[i] = dtype == GPTQ_DTYPE_F16 ? gptq::half_to_float(v[i]) : gptq::bf16_to_float(v[i]);
  return r;
}

// y = x·Wᵀ + bias through gptq_matmul in dtype, host pointers, as float.
std::vector<float> matmul_host(const gptq_qtensor *q, const std::vector<float> &x,
                               const std::vector<float> &bias, int64_t rows, int64_t in,
                               int64_t out, gptq_dtype dtype) {
  std::vector<float> y(static_cast<size_t>(rows * out));
  if (dtype == GPTQ_DTYPE_F32) {
    EXPECT_EQ(gptq_matmul(q, x.data(), dtype, rows, in, bias.data(), y.data(), rows * out), GPTQ_OK)
        << gptq_last_error();
    return y;
  }
  const std::vector<uint16_t> xn = narrowed(x, dtype), bn = narrowed(bias, dtype);
  std::vector<uint16_t> yn(y.size());
  EXPECT_EQ(gptq_matmul(q, xn.data(), dtype, rows, in, bn.data(), yn.data(), rows * out), GPTQ_OK)
      << gptq_last_error();
  return widened(yn, dtype);
}

double relative_l2(const std::vector<float> &got, const std::vector<double> &want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    num += (got[i] - want[i]) * (got[i] - want[i]);
    den += want[i] * want[i];
  }
  return std::sqrt(num / den);
}

TEST(CudaMatmul, MatchesDequantizeThenMultiplyInEveryLayoutAndDtype) {
  REQUIRE_GPU();
  struct Layout {
    const char *name;
    int bits, group, act_order;
    int64_t out, in;
  } layouts[] = {
      {"4-bit g128 (tiled)", 4, 128, 0, 300, 512},
      {"4-bit g128 act-order (tiled, gathered)", 4, 128, 1, 300, 520},
      {"4-bit g32 (tiled)", 4, 32, 0, 64, 256},
      {"4-bit g-1 (tiled)", 4, -1, 0, 48, 200},
      {"4-bit g40 (generic)", 4, 40, 0, 100, 200},
      {"3-bit g64 (generic)", 3, 64, 1, 100, 256},
      {"8-bit g128 (generic)", 8, 128, 0, 100, 256},
      {"2-bit g-1 (generic)", 2, -1, 0, 100, 256},
  };
  const int64_t batches[] = {1, 5, 8, 9, 16, 17, 40, 64, 65, 128};
  for (const Layout &l : layouts) {
    gptq_config cfg = config_on(GPTQ_BACKEND_CUDA);
    cfg.bits = l.bits;
    cfg.group_size = l.group;
    cfg.act_order = l.act_order;
    const std::vector<float> calib = correlated_activations(400, l.in, 61);
    const std::vector<float> w = layer_weights(l.out, l.in, 62);
    QTensor q = quantize_layer(cfg, calib, w, 400, l.out, l.in);
    ASSERT_TRUE(q);
    const std::vector<float> deq = dequantized(q.get(), l.out, l.in);
    std::vector<float> bias(static_cast<size_t>(l.out));
    for (int64_t o = 0; o < l.out; ++o) bias[o] = 0.01f * static_cast<float>(o % 7);
    double worst[3] = {0, 0, 0};
    for (int64_t rows : batches) {
      const std::vector<float> x = correlated_activations(rows, l.in, static_cast<uint32_t>(70 + rows));
      for (gptq_dtype dtype : {GPTQ_DTYPE_F32, GPTQ_DTYPE_F16, GPTQ_DTYPE_BF16}) {
        const std::vector<float> xr = rounded_to(x, dtype), br = rounded_to(bias, dtype);
        std::vector<double> want(static_cast<size_t>(rows * l.out));
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t o = 0; o < l.out; ++o) {
            double s = br[o];
            for (int64_t j = 0; j < l.in; ++j) s += double(xr[r * l.in + j]) * deq[o * l.in + j];
            want[r * l.out + o] = s;
          }
        const double err = relative_l2(matmul_host(q.get(), x, bias, rows, l.in, l.out, dtype), want);
        worst[dtype] = std::max(worst[dtype], err);
        // F32: exact float32 arithmetic. F16: weights and result rounded once
        // each. BF16: the scale, the weights and the result rounded to 8 bits.
        const double allowed = dtype == GPTQ_DTYPE_F32 ? 1e-5 : dtype == GPTQ_DTYPE_F16 ? 2e-3 : 1.5e-2;
        EXPECT_LT(err, allowed) << l.name << ", " << rows << " rows, dtype " << dtype;
      }
    }
    std::printf("  %-40s worst relative error F32 %.1e  F16 %.1e  BF16 %.1e\n", l.name, worst[0],
                worst[1], worst[2]);
  }
}

// ---------------------------------------------------------------------------
// Device pointers and streams.

template <typename T>
T *to_device(const std::vector<T> &v) {
  T *p = nullptr;
  EXPECT_EQ(cudaMalloc(reinterpret_cast<void **>(&p), v.size() * sizeof(T)), cudaSuccess);
  EXPECT_EQ(cudaMemcpy(p, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
  return p;
}

template <typename T>
std::vector<T> to_host(const T *p, size_t n) {
  std::vector<T> v(n);
  EXPECT_EQ(cudaMemcpy(v.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
  return v;
}

TEST(CudaDevice, MatmulOnDevicePointersAndTheCallersStream) {
  REQUIRE_GPU();
  const int64_t out = 256, in = 512, rows = 16;
  gptq_config cfg = config_on(GPTQ_BACKEND_CUDA);
  cfg.act_order = 1;
  QTensor q = quantize_layer(cfg, correlated_activations(300, in, 81), layer_weights(out, in, 82), 300, out, in);
  ASSERT_TRUE(q);
  const std::vector<float> x = correlated_activations(rows, in, 83);
  std::vector<float> bias(out, 0.5f);
  const std::vector<uint16_t> xh = narrowed(x, GPTQ_DTYPE_F16), bh = narrowed(bias, GPTQ_DTYPE_F16);
  std::vector<uint16_t> y_host(rows * out);
  ASSERT_EQ(gptq_matmul(q.get(), xh.data(), GPTQ_DTYPE_F16, rows, in, bh.data(), y_host.data(), rows * out), GPTQ_OK)
      << gptq_last_error();

  uint16_t *xd = to_device(xh), *bd = to_device(bh), *yd = nullptr;
  ASSERT_EQ(cudaMalloc(reinterpret_cast<void **>(&yd), rows * out * sizeof(uint16_t)), cudaSuccess);
  cudaStream_t stream = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);
  for (gptq_memory memory : {GPTQ_MEMORY_AUTO, GPTQ_MEMORY_DEVICE}) {
    ASSERT_EQ(cudaMemset(yd, 0, rows * out * sizeof(uint16_t)), cudaSuccess);
    gptq_matmul_options opts;
    gptq_matmul_options_default(&opts);
    opts.stream = stream;
    opts.memory = memory;
    ASSERT_EQ(gptq_matmul_ex(q.get(), xd, GPTQ_DTYPE_F16, rows, in, bd, yd, rows * out, &opts), GPTQ_OK)
        << gptq_last_error();
    ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
    EXPECT_EQ(to_host(yd, rows * out), y_host);  // the same kernel as the host path
  }
  // Buffers in two places are refused, naming which.
  EXPECT_EQ(gptq_matmul(q.get(), xd, GPTQ_DTYPE_F16, rows, in, nullptr, y_host.data(), rows * out),
            GPTQ_ERR_UNSUPPORTED);
  EXPECT_NE(std::string(gptq_last_error()).find("y is in host memory but x is in device memory"),
            std::string::npos)
      << gptq_last_error();
  // Device memory declared for a CPU tensor is refused.
  gptq_config cpu_cfg = config_on(GPTQ_BACKEND_CPU);
  QTensor cpu_q = quantize_layer(cpu_cfg, correlated_activations(300, in, 81), layer_weights(out, in, 82), 300, out, in);
  gptq_matmul_options opts;
  gptq_matmul_options_default(&opts);
  opts.memory = GPTQ_MEMORY_DEVICE;
  EXPECT_EQ(gptq_matmul_ex(cpu_q.get(), xd, GPTQ_DTYPE_F16, rows, in, nullptr, yd, rows * out, &opts),
            GPTQ_ERR_UNSUPPORTED);
  cudaStreamDestroy(stream);
  cudaFree(xd);
  cudaFree(bd);
  cudaFree(yd);
}

TEST(CudaDevice, CalibrationAndWeightsOnTheDeviceGiveTheHostResult) {
  REQUIRE_GPU();
  const int64_t out = 128, in = 256, tokens = 500;
  const std::vector<float> x = correlated_activations(tokens, in, 91);
  const std::vector<float> w = layer_weights(out, in, 92);
  cudaStream_t stream = nullptr;
  ASSERT_EQ(cudaStreamCreate(&stream), cudaSuccess);
  gptq_config cfg = config_on(GPTQ_BACKEND_CUDA);
  cfg.act_order = 1;
  QTensor host_q = quantize_layer(cfg, x, w, tokens, out, in);
  cfg.stream = stream;
  float *xd = to_device(x), *wd = to_device(w);
  Ctx ctx = make_ctx(out, in, cfg);
  ASSERT_TRUE(ctx);
  ASSERT_EQ(gptq_add_batch(ctx.get(), xd, GPTQ_DTYPE_F32, tokens, in, 1), GPTQ_OK) << gptq_last_error();
  gptq_qtensor *raw = nullptr;
  ASSERT_EQ(gptq_quantize(ctx.get(), wd, GPTQ_DTYPE_F32, out, in, &raw, nullptr), GPTQ_OK) << gptq_last_error();
  QTensor device_q(raw);
  EXPECT_EQ(codes_of(device_q.get(), out, in), codes_of(host_q.get(), out, in));

  // NaN in a device buffer is found where it is.
  std::vector<float> bad(x);
  bad[3 * in + 17] = NAN;
  float *bd = to_device(bad);
  EXPECT_EQ(gptq_add_batch(ctx.get(), bd, GPTQ_DTYPE_F32, tokens, in, 1), GPTQ_ERR_NON_FINITE);
  EXPECT_STREQ(gptq_last_error(), "gptq_add_batch: x[3, 17] is NaN or Inf");

  // A checkpoint imported from device buffers is the host import's tensor.
  gptq_checkpoint_sizes sz{};
  ASSERT_EQ(gptq_checkpoint_sizes_for(out, in, 4, 128, &sz), GPTQ_OK);
  std::vector<int32_t> qweight(sz.qweight_rows * sz.qweight_cols), qzeros(sz.qzeros_rows * sz.qzeros_cols),
      g_idx(sz.g_idx_len);
  std::vector<uint16_t> scales(sz.scales_rows * sz.scales_cols);
  gptq_checkpoint_tensors t{qweight.data(), (int64_t)qweight.size(), qzeros.data(), (int64_t)qzeros.size(),
                            scales.data(), (int64_t)scales.size(), g_idx.data(), (int64_t)g_idx.size()};
  ASSERT_EQ(gptq_qtensor_export(host_q.get(), GPTQ_FORMAT_V1, &t), GPTQ_OK) << gptq_last_error();
  gptq_checkpoint_tensors td{to_device(qweight), t.qweight_len, to_device(qzeros), t.qzeros_len,
                             to_device(scales), t.scales_len, to_device(g_idx), t.g_idx_len};
  gptq_import_options io;
  gptq_import_options_default(&io);
  io.backend = GPTQ_BACKEND_CUDA;
  io.stream = stream;
  raw = nullptr;
  ASSERT_EQ(gptq_qtensor_import_ex(out, in, 4, 128, GPTQ_FORMAT_V1, &td, &io, &raw), GPTQ_OK)
      << gptq_last_error();
  QTensor imported(raw);
  EXPECT_EQ(gptq_qtensor_backend(imported.get()), GPTQ_BACKEND_CUDA);
  EXPECT_EQ(codes_of(imported.get(), out, in), codes_of(host_q.get(), out, in));
  cudaFree(td.qweight);
  cudaFree(td.qzeros);
  cudaFree(td.scales);
  cudaFree(td.g_idx);
  cudaFree(xd);
  cudaFree(wd);
  cudaFree(bd);
  // Everything made on the stream goes before the stream itself.
  imported.reset();
  device_q.reset();
  ctx.reset();
  cudaStreamDestroy(stream);
}

// ---------------------------------------------------------------------------
// Errors and resources.

TEST(CudaErrors, OutOfDeviceMemoryIsAStatusWithTheCudaMessage) {
  REQUIRE_GPU();
  gptq_config cfg = config_on(GPTQ_BACKEND_CUDA);
  cfg.precision = GPTQ_PRECISION_F64;
  gptq_ctx *ctx = nullptr;
  // A 300000² Hessian in doubles: 720 GB.
  EXPECT_EQ(gptq_ctx_create(8, 300000, &cfg, &ctx), GPTQ_ERR_OUT_OF_MEMORY);
  EXPECT_EQ(ctx, nullptr);
  EXPECT_NE(std::string(gptq_last_error()).find("cudaErrorMemoryAllocation"), std::string::npos)
      << gptq_last_error();
  // The backend is still usable.
  Ctx ok = make_ctx(8, 64, config_on(GPTQ_BACKEND_CUDA));
  EXPECT_TRUE(ok);
}

// Contexts, tensors and imports made and freed over and over; run alone
// under compute-sanitizer --leak-check full by run_gpu_checks.sh. Device
// memory in use must not grow from one round to the next.
TEST(CudaLeaks, CreateUseDestroyLoop) {
  REQUIRE_GPU();
  const int64_t out = 96, in = 256, tokens = 200;
  const std::vector<float> x = correlated_activations(tokens, in, 101);
  const std::vector<float> w = layer_weights(out, in, 102);
  const std::vector<uint16_t> x16 = narrowed(std::vector<float>(x.begin(), x.begin() + 4 * in), GPTQ_DTYPE_F16);
  size_t free_after_first = 0, free_now = 0, total = 0;
  for (int round = 0; round < 12; ++round) {
    gptq_config cfg = config_on(GPTQ_BACKEND_CUDA);
    cfg.act_order = round % 2;
    QTensor q = quantize_layer(cfg, x, w, tokens, out, in);
    ASSERT_TRUE(q);
    std::vector<uint16_t> y16(4 * out);
    std::vector<float> y(4 * out);
    ASSERT_EQ(gptq_matmul(q.get(), x16.data(), GPTQ_DTYPE_F16, 4, in, nullptr, y16.data(), 4 * out), GPTQ_OK);
    ASSERT_EQ(gptq_matmul(q.get(), x.data(), GPTQ_DTYPE_F32, 4, in, nullptr, y.data(), 4 * out), GPTQ_OK);
    ASSERT_EQ(cudaMemGetInfo(&free_now, &total), cudaSuccess);
    if (round == 1) free_after_first = free_now;
  }
  EXPECT_GE(free_now + (size_t(32) << 20), free_after_first)
      << "device memory in use grew by " << (free_after_first - free_now) << " bytes";
}

}  // namespace
