// The CUDA backend's speed on the GPU it runs on, against baselines measured
// in the same run on the same GPU: the device's copy bandwidth, cuBLAS f16
// GEMM for the matmul and cuBLAS fp32 for the Hessian. Absolute times (GPU
// events, L2 flushed before each timed matmul by writing a buffer larger
// than it), medians of --reps repetitions.
//
//   bench_gpu [--reps 20] [--json out.json]
//             [--solve 4096x4096,11008x4096,4096x11008] [--tokens 4096]
//             [--matmul 4096x4096,...]  (KxN: in → out features)
//             [--batches 1,2,4,8,16,32,64,128]
//
// GPTQ_CUDA_PLUGIN must name libgptq-cuda.so unless it sits next to
// libgptq. Needs a GPU; says why and exits 1 without one.
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "gptq.h"

namespace {

struct Shape {
  int64_t a, b;
};

std::vector<Shape> parse_shapes(const std::string &s) {
  std::vector<Shape> out;
  size_t pos = 0;
  while (pos < s.size()) {
    size_t end = s.find(',', pos);
    if (end == std::string::npos) end = s.size();
    const std::string item = s.substr(pos, end - pos);
    const size_t x = item.find('x');
    if (x != std::string::npos) out.push_back({std::atoll(item.substr(0, x).c_str()), std::atoll(item.substr(x + 1).c_str())});
    pos = end + 1;
  }
  return out;
}

std::vector<int64_t> parse_list(const std::string &s) {
  std::vector<int64_t> out;
  size_t pos = 0;
  while (pos < s.size()) {
    size_t end = s.find(',', pos);
    if (end == std::string::npos) end = s.size();
    out.push_back(std::atoll(s.substr(pos, end - pos).c_str()));
    pos = end + 1;
  }
  return out;
}

void check(cudaError_t e, const char *what) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(e));
    std::exit(1);
  }
}
void check(cublasStatus_t s, const char *what) {
  if (s != CUBLAS_STATUS_SUCCESS) {
    std::fprintf(stderr, "%s: cuBLAS status %d\n", what, static_cast<int>(s));
    std::exit(1);
  }
}
void check(gptq_status s, const char *what) {
  if (s != GPTQ_OK) {
    std::fprintf(stderr, "%s: %s\n", what, gptq_last_error());
    std::exit(1);
  }
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Times fn on the GPU, after overwriting an L2-sized buffer, reps times.
template <typename Fn>
double time_us(int reps, void *flush, size_t flush_bytes, Fn fn) {
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  fn();  // warm-up (and the tensor's one-time layout)
  check(cudaDeviceSynchronize(), "warm-up");
  std::vector<double> times;
  for (int r = 0; r < reps; ++r) {
    if (flush != nullptr) cudaMemsetAsync(flush, r & 0xff, flush_bytes, nullptr);
    cudaEventRecord(a, nullptr);
    fn();
    cudaEventRecord(b, nullptr);
    check(cudaEventSynchronize(b), "timed run");
    float ms = 0;
    cudaEventElapsedTime(&ms, a, b);
    times.push_back(ms * 1000.0);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return median(times);
}

template <typename T>
T *device_array(size_t n) {
  void *p = nullptr;
  check(cudaMalloc(&p, n * sizeof(T)), "cudaMalloc");
  return static_cast<T *>(p);
}

// Random device data of a given kind, filled from the host in chunks.
void fill_f16(uint16_t *d, size_t n, float scale, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  const size_t chunk = size_t(1) << 22;
  std::vector<uint16_t> h(std::min(n, chunk));
  for (size_t off = 0; off < n; off += chunk) {
    const size_t m = std::min(chunk, n - off);
    for (size_t i = 0; i < m; ++i) {
      const float v = normal(rng);
      // binary16 bits of v, rounded by truncation: enough for random data.
      uint32_t u;
      std::memcpy(&u, &v, 4);
      const uint32_t sign = (u >> 16) & 0x8000u;
      int32_t e = static_cast<int32_t>((u >> 23) & 0xff) - 127 + 15;
      uint16_t bits = static_cast<uint16_t>(sign);
      if (e > 0 && e < 31) bits = static_cast<uint16_t>(sign | (uint32_t(e) << 10) | ((u >> 13) & 0x3ff));
      h[i] = bits;
    }
    check(cudaMemcpy(d + off, h.data(), m * 2, cudaMemcpyHostToDevice), "cudaMemcpy");
  }
}

std::vector<float> correlated(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(rows * cols));
  std::vector<float> scale(static_cast<size_t>(cols));
  for (auto &s : scale) s = 0.3f + 1.4f * std::abs(normal(rng)) / 2.0f;
  for (int64_t r = 0; r < rows; ++r) {
    float shared = 0;
    for (int64_t c = 0; c < cols; ++c) {
      shared = 0.8f * shared + normal(rng);
      x[r * cols + c] = scale[c] * (shared + 0.3f * normal(rng));
    }
  }
  return x;
}

struct Json {
  std::string text = "{";
  bool first = true;
  void add(const std::string &key, const std::string &value) {
    text += (first ? "" : ",") + std::string("\n  \"") + key + "\": " + value;
    first = false;
  }
  std::string done() const { return text + "\n}\n"; }
};

std::string captured_log, captured_core_log;
void capture(gptq_log_level, const char *message, void *) {
  if (std::strstr(message, "cuda solve") != nullptr) captured_log = message;
  if (std::strstr(message, "as the core sees it") != nullptr) captured_core_log = message;
}

}  // namespace

int main(int argc, char **argv) {
  int reps = 20;
  int64_t tokens = 4096;
  std::string json_path;
  std::vector<Shape> solve = parse_shapes("4096x4096,11008x4096,4096x11008");
  std::vector<Shape> matmul = parse_shapes(
      "4096x4096,4096x11008,11008x4096,4096x14336,14336x4096,8192x8192,8192x28672,28672x8192");
  std::vector<int64_t> batches = parse_list("1,2,4,8,16,32,64,128");
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--reps") reps = std::atoi(value.c_str());
    else if (flag == "--json") json_path = value;
    else if (flag == "--solve") solve = parse_shapes(value);
    else if (flag == "--tokens") tokens = std::atoll(value.c_str());
    else if (flag == "--matmul") matmul = parse_shapes(value);
    else if (flag == "--batches") batches = parse_list(value);
    else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  {
    gptq_config cfg;
    gptq_config_default(&cfg);
    cfg.backend = GPTQ_BACKEND_CUDA;
    gptq_ctx *ctx = nullptr;
    if (gptq_ctx_create(8, 64, &cfg, &ctx) != GPTQ_OK) {
      std::fprintf(stderr, "bench_gpu: no usable CUDA backend: %s\n", gptq_last_error());
      return 1;
    }
    gptq_ctx_destroy(ctx);
  }
  Json json;
  cublasHandle_t blas;
  check(cublasCreate(&blas), "cublasCreate");
  const size_t flush_bytes = size_t(256) << 20;
  void *flush = device_array<char>(flush_bytes);

  // Copy bandwidth: bytes read plus bytes written per second.
  double copy_tbs = 0;
  {
    const size_t bytes = size_t(1) << 30;
    char *a = device_array<char>(bytes), *b = device_array<char>(bytes);
    check(cudaMemset(a, 1, bytes), "cudaMemset");
    const double us = time_us(10, nullptr, 0, [&] { cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, nullptr); });
    copy_tbs = 2.0 * bytes / (us * 1e-6) / 1e12;
    std::printf("copy bandwidth (read + write): %.2f TB/s\n\n", copy_tbs);
    json.add("copy_tb_s", std::to_string(copy_tbs));
    cudaFree(a);
    cudaFree(b);
  }

  // Hessian: gptq_add_batch of `tokens` device rows against cuBLAS XᵀX.
  std::printf("Hessian, %lld tokens, F32, device x\n%8s %12s %12s %12s %10s\n", (long long)tokens, "K",
              "ours us", "sgemm us", "ssyrk us", "sgemm/ours");
  std::string hessian_json = "[";
  for (int64_t k : {int64_t(4096), int64_t(11008)}) {
    const std::vector<float> x = correlated(tokens, k, 7);
    float *xd = device_array<float>(x.size());
    check(cudaMemcpy(xd, x.data(), x.size() * 4, cudaMemcpyHostToDevice), "cudaMemcpy");
    float *c = device_array<float>(static_cast<size_t>(k * k));
    gptq_config cfg;
    gptq_config_default(&cfg);
    cfg.backend = GPTQ_BACKEND_CUDA;
    gptq_ctx *ctx = nullptr;
    check(gptq_ctx_create(8, k, &cfg, &ctx), "gptq_ctx_create");
    const float one = 1, zero = 0;
    const int ki = static_cast<int>(k), ti = static_cast<int>(tokens);
    const double ours = time_us(5, nullptr, 0, [&] { gptq_add_batch(ctx, xd, GPTQ_DTYPE_F32, tokens, k, 1); });
    const double gemm = time_us(5, nullptr, 0, [&] {
      cublasSgemm(blas, CUBLAS_OP_N, CUBLAS_OP_T, ki, ki, ti, &one, xd, ki, xd, ki, &zero, c, ki);
    });
    const double syrk = time_us(5, nullptr, 0, [&] {
      cublasSsyrk(blas, CUBLAS_FILL_MODE_UPPER, CUBLAS_OP_N, ki, ti, &one, xd, ki, &zero, c, ki);
    });
    std::printf("%8lld %12.1f %12.1f %12.1f %10.2f\n", (long long)k, ours, gemm, syrk, gemm / ours);
    hessian_json += std::string(hessian_json.size() > 1 ? "," : "") + "{\"k\":" + std::to_string(k) +
                    ",\"ours_us\":" + std::to_string(ours) + ",\"sgemm_us\":" + std::to_string(gemm) +
                    ",\"ssyrk_us\":" + std::to_string(syrk) + "}";
    gptq_ctx_destroy(ctx);
    cudaFree(xd);
    cudaFree(c);
  }
  json.add("hessian", hessian_json + "]");

  // Solve: gptq_quantize, 4-bit group 128, weights and calibration on the
  // device, wall clock of the whole call (it returns host results).
  std::printf("\nGPTQ solve, 4-bit g128, %lld calibration tokens (wall clock of gptq_quantize)\n",
              (long long)std::min<int64_t>(tokens, 2048));
  std::printf("%14s %9s %10s %10s  %s\n", "out x in", "act-order", "median ms", "min ms", "breakdown (last run)");
  std::string solve_json = "[";
  for (const Shape &s : solve) {
    const int64_t n = s.a, k = s.b, t = std::min<int64_t>(tokens, 2048);
    const std::vector<float> x = correlated(t, k, 11), w = correlated(n, k, 12);
    float *xd = device_array<float>(x.size()), *wd = device_array<float>(w.size());
    check(cudaMemcpy(xd, x.data(), x.size() * 4, cudaMemcpyHostToDevice), "cudaMemcpy");
    std::vector<float> ws(w);
    for (float &v : ws) v *= 0.02f;
    check(cudaMemcpy(wd, ws.data(), ws.size() * 4, cudaMemcpyHostToDevice), "cudaMemcpy");
    for (int act : {0, 1}) {
      gptq_config cfg;
      gptq_config_default(&cfg);
      cfg.backend = GPTQ_BACKEND_CUDA;
      cfg.act_order = act;
      cfg.log = capture;
      cfg.log_level = GPTQ_LOG_DEBUG;
      gptq_ctx *ctx = nullptr;
      check(gptq_ctx_create(n, k, &cfg, &ctx), "gptq_ctx_create");
      check(gptq_add_batch(ctx, xd, GPTQ_DTYPE_F32, t, k, 1), "gptq_add_batch");
      std::vector<double> ms;
      for (int r = 0; r < 4; ++r) {
        gptq_qtensor *q = nullptr;
        check(cudaDeviceSynchronize(), "sync");
        const auto start = std::chrono::steady_clock::now();
        check(gptq_quantize(ctx, wd, GPTQ_DTYPE_F32, n, k, &q, nullptr), "gptq_quantize");
        const double elapsed =
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
        if (r > 0) ms.push_back(elapsed);  // the first run warms the pool and handles
        gptq_qtensor_destroy(q);
      }
      const double med = median(ms), mn = *std::min_element(ms.begin(), ms.end());
      std::printf("%7lldx%-6lld %9s %10.2f %10.2f  %s; %s\n", (long long)n, (long long)k,
                  act ? "yes" : "no", med, mn, captured_log.c_str(), captured_core_log.c_str());
      solve_json += std::string(solve_json.size() > 1 ? "," : "") + "{\"out\":" + std::to_string(n) +
                    ",\"in\":" + std::to_string(k) + ",\"act_order\":" + std::to_string(act) +
                    ",\"median_ms\":" + std::to_string(med) + ",\"min_ms\":" + std::to_string(mn) + "}";
      gptq_ctx_destroy(ctx);
    }
    cudaFree(xd);
    cudaFree(wd);
  }
  json.add("solve", solve_json + "]");

  // The same layer on the CPU backend: how far the GPU's codes and loss are
  // from the CPU's at full size (rows parted by rounding ties).
  if (!solve.empty()) {
    const int64_t n = solve[0].a, k = solve[0].b, t = std::min<int64_t>(tokens, 2048);
    const std::vector<float> x = correlated(t, k, 11);
    std::vector<float> w = correlated(n, k, 12);
    for (float &v : w) v *= 0.02f;
    std::printf("\nCPU against CUDA on %lldx%lld, 4-bit g128 (act-order off / on)\n", (long long)n, (long long)k);
    std::string quality_json = "[";
    for (int act : {0, 1}) {
      double loss[2];
      std::vector<uint8_t> codes[2];
      double seconds[2];
      for (int b = 0; b < 2; ++b) {
        gptq_config cfg;
        gptq_config_default(&cfg);
        cfg.backend = b == 0 ? GPTQ_BACKEND_CPU : GPTQ_BACKEND_CUDA;
        cfg.act_order = act;
        gptq_ctx *ctx = nullptr;
        check(gptq_ctx_create(n, k, &cfg, &ctx), "gptq_ctx_create");
        check(gptq_add_batch(ctx, x.data(), GPTQ_DTYPE_F32, t, k, 1), "gptq_add_batch");
        gptq_quant_stats st{};
        st.struct_size = sizeof st;
        gptq_qtensor *q = nullptr;
        check(gptq_quantize(ctx, w.data(), GPTQ_DTYPE_F32, n, k, &q, &st), "gptq_quantize");
        loss[b] = st.loss;
        seconds[b] = st.seconds;
        codes[b].resize(static_cast<size_t>(n * k));
        check(gptq_qtensor_codes(q, codes[b].data(), n * k), "gptq_qtensor_codes");
        gptq_qtensor_destroy(q);
        gptq_ctx_destroy(ctx);
      }
      int64_t differ = 0, rows = 0;
      for (int64_t r = 0; r < n; ++r) {
        bool any = false;
        for (int64_t j = 0; j < k; ++j)
          if (codes[0][r * k + j] != codes[1][r * k + j]) {
            ++differ;
            any = true;
          }
        rows += any;
      }
      const double rel = std::abs(loss[1] - loss[0]) / loss[0];
      std::printf("  act-order %s: loss CPU %.6g, CUDA %.6g (relative difference %.2e); rows with any "
                  "other code %lld of %lld, codes %lld of %lld; CPU %.2f s (this machine's cores)\n",
                  act ? "on " : "off", loss[0], loss[1], rel, (long long)rows, (long long)n,
                  (long long)differ, (long long)(n * k), seconds[0]);
      quality_json += std::string(quality_json.size() > 1 ? "," : "") + "{\"act_order\":" + std::to_string(act) +
                      ",\"loss_rel\":" + std::to_string(rel) + ",\"rows_differ\":" + std::to_string(rows) +
                      ",\"codes_differ\":" + std::to_string(differ) + "}";
    }
    json.add("cpu_vs_cuda", quality_json + "]");
  }

  // Matmul: 4-bit g128 W4A16 (f16 activations) against cuBLAS f16.
  std::printf("\nMatmul W4A16 (4-bit g128, f16 x and y, L2 flushed), us\n%14s %6s %10s %10s %8s %8s\n",
              "in x out", "batch", "ours", "cublas f16", "speedup", "% copy");
  std::string matmul_json = "[";
  for (const Shape &s : matmul) {
    const int64_t k = s.a, n = s.b, groups = k / 128;
    // A random 4-bit tensor imported from checkpoint buffers (symmetric,
    // v1 zeros 7 = a zero of 8), then laid out by its first matmul.
    std::mt19937 rng(static_cast<uint32_t>(k * 31 + n));
    std::vector<int32_t> qweight(static_cast<size_t>(k / 8 * n)), qzeros(static_cast<size_t>(groups * n / 8), 0x77777777);
    for (auto &v : qweight) v = static_cast<int32_t>(rng());
    std::vector<uint16_t> scales(static_cast<size_t>(groups * n), 0x1c00);  // 2^-8
    gptq_checkpoint_tensors t{qweight.data(), (int64_t)qweight.size(), qzeros.data(), (int64_t)qzeros.size(),
                              scales.data(), (int64_t)scales.size(), nullptr, 0};
    gptq_import_options io;
    gptq_import_options_default(&io);
    io.backend = GPTQ_BACKEND_CUDA;
    gptq_qtensor *q = nullptr;
    check(gptq_qtensor_import_ex(n, k, 4, 128, GPTQ_FORMAT_V1, &t, &io, &q), "gptq_qtensor_import_ex");
    const int64_t max_batch = *std::max_element(batches.begin(), batches.end());
    uint16_t *x = device_array<uint16_t>(static_cast<size_t>(max_batch * k));
    uint16_t *y = device_array<uint16_t>(static_cast<size_t>(max_batch * n));
    uint16_t *wf = device_array<uint16_t>(static_cast<size_t>(n * k));
    fill_f16(x, static_cast<size_t>(max_batch * k), 1.0f, 3);
    fill_f16(wf, static_cast<size_t>(n * k), 0.02f, 4);
    gptq_matmul_options opts;
    gptq_matmul_options_default(&opts);
    opts.memory = GPTQ_MEMORY_DEVICE;
    const double weight_bytes = n * k * 0.5 + groups * n * 2.0;
    const float one = 1.0f, zero = 0.0f;
    for (int64_t b : batches) {
      const double ours = time_us(reps, flush, flush_bytes, [&] {
        gptq_matmul_ex(q, x, GPTQ_DTYPE_F16, b, k, nullptr, y, b * n, &opts);
      });
      const double cublas = time_us(reps, flush, flush_bytes, [&] {
        cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(n), static_cast<int>(b),
                     static_cast<int>(k), &one, wf, CUDA_R_16F, static_cast<int>(k), x, CUDA_R_16F,
                     static_cast<int>(k), &zero, y, CUDA_R_16F, static_cast<int>(n), CUBLAS_COMPUTE_32F,
                     CUBLAS_GEMM_DEFAULT);
      });
      const double pct = 100.0 * (weight_bytes / (ours * 1e-6)) / (copy_tbs * 1e12);
      std::printf("%7lldx%-6lld %6lld %10.1f %10.1f %8.2f %7.0f%%\n", (long long)k, (long long)n, (long long)b,
                  ours, cublas, cublas / ours, pct);
      matmul_json += std::string(matmul_json.size() > 1 ? "," : "") + "{\"in\":" + std::to_string(k) +
                     ",\"out\":" + std::to_string(n) + ",\"batch\":" + std::to_string(b) +
                     ",\"ours_us\":" + std::to_string(ours) + ",\"cublas_f16_us\":" + std::to_string(cublas) + "}";
    }
    gptq_qtensor_destroy(q);
    cudaFree(x);
    cudaFree(y);
    cudaFree(wf);
  }
  json.add("matmul", matmul_json + "]");
  check(cudaDeviceSynchronize(), "end of the benchmarks");
  if (!json_path.empty()) {
    FILE *f = std::fopen(json_path.c_str(), "w");
    if (f != nullptr) {
      std::fputs(json.done().c_str(), f);
      std::fclose(f);
    }
  }
  cublasDestroy(blas);
  cudaFree(flush);
  return 0;
}
