// The backend plugin mechanism (src/plugin_abi.h, src/plugin_loader.cpp,
// src/plugin_backend.cpp, src/backend_registry.cpp) through the public API.
//
// The loader's outcome and the GPTQ_BACKEND override are fixed once per
// process, so every scenario runs in a forked child with its own environment
// (and the parent never creates a context itself). Child failures are
// reported by GoogleTest in the child's output and make it exit non-zero,
// which the parent checks. The fake plugins (fake_plugin.cpp) are plain C++;
// the real libgptq-cuda.so is tested when it was built.
#include <dlfcn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "half.h"
#include "plugin_abi.h"
#include "test_util.h"

using namespace gptq_test;

namespace {

constexpr int kSkipExit = 77;

struct EnvVar {
  const char *name;
  const char *value;  // nullptr: unset
};

// Runs body in a child process with env applied; returns its exit code
// (0 if no expectation failed, kSkipExit if it asked to be skipped).
template <typename Body>
int in_child(std::vector<EnvVar> env, Body body) {
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = fork();
  if (pid < 0) {
    ADD_FAILURE() << "fork failed";
    return -1;
  }
  if (pid == 0) {
    for (const EnvVar &e : env) {
      if (e.value != nullptr) setenv(e.name, e.value, 1);
      else unsetenv(e.name);
    }
    const int skip = body();
    std::fflush(stdout);
    _exit(testing::Test::HasFailure() ? 1 : skip);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status)) {
    ADD_FAILURE() << "child did not exit normally (signal " << WTERMSIG(status) << ")";
    return -1;
  }
  return WEXITSTATUS(status);
}

// The child must pass: any failure was already printed by it.
template <typename Body>
void expect_child(std::vector<EnvVar> env, Body body) {
  EXPECT_EQ(in_child(std::move(env), [&] { body(); return 0; }), 0)
      << "the child process failed; its messages are above";
}

// Environment for "use this plugin, no override".
std::vector<EnvVar> with_plugin(const char *path, const char *backend_override = nullptr) {
  return {{"GPTQ_CUDA_PLUGIN", path}, {"GPTQ_BACKEND", backend_override}};
}

struct Logs {
  std::vector<std::pair<gptq_log_level, std::string>> lines;
  static void sink(gptq_log_level level, const char *message, void *user) {
    static_cast<Logs *>(user)->lines.emplace_back(level, message);
  }
  bool has(gptq_log_level level, const std::string &part) const {
    for (const auto &l : lines)
      if (l.first == level && l.second.find(part) != std::string::npos) return true;
    return false;
  }
  std::string all() const {
    std::string s;
    for (const auto &l : lines) s += "[" + std::to_string(l.first) + "] " + l.second + "\n";
    return s;
  }
};

gptq_config config_for(gptq_backend backend, Logs *logs = nullptr) {
  gptq_config cfg = default_config();
  cfg.backend = backend;
  cfg.group_size = 16;
  if (logs != nullptr) {
    cfg.log = Logs::sink;
    cfg.log_user_data = logs;
  }
  return cfg;
}

// gptq_ctx_create's status and message.
std::pair<gptq_status, std::string> try_create(const gptq_config &cfg) {
  gptq_ctx *ctx = nullptr;
  const gptq_status s = gptq_ctx_create(8, 32, &cfg, &ctx);
  gptq_ctx_destroy(ctx);
  return {s, s == GPTQ_OK ? std::string() : std::string(gptq_last_error())};
}

// The backend a context really runs on, from a tiny quantization's stats.
gptq_backend backend_used(const gptq_config &cfg) {
  const int64_t out = 8, in = 32;
  Ctx ctx = make_ctx(out, in, cfg);
  if (!ctx) return GPTQ_BACKEND_AUTO;
  const std::vector<float> x = correlated_activations(64, in, 5);
  const std::vector<float> w = correlated_activations(out, in, 6, 0);
  EXPECT_EQ(gptq_add_batch(ctx.get(), x.data(), GPTQ_DTYPE_F32, 64, in, 1), GPTQ_OK)
      << gptq_last_error();
  gptq_quant_stats stats{};
  stats.struct_size = sizeof stats;
  gptq_qtensor *q = nullptr;
  EXPECT_EQ(gptq_quantize(ctx.get(), w.data(), GPTQ_DTYPE_F32, out, in, &q, &stats), GPTQ_OK)
      << gptq_last_error();
  gptq_qtensor_destroy(q);
  return stats.backend;
}

// CUDA must be refused with a message containing every part; AUTO must fall
// back to the CPU and log the same reason at INFO.
void expect_unusable(const std::vector<EnvVar> &env, const std::vector<std::string> &parts) {
  expect_child(env, [&] {
    const auto [status, message] = try_create(config_for(GPTQ_BACKEND_CUDA));
    EXPECT_EQ(status, GPTQ_ERR_BACKEND_UNAVAILABLE) << message;
    EXPECT_NE(message.find("gptq_ctx_create: the CUDA backend was requested but cannot be used"),
              std::string::npos)
        << message;
    for (const std::string &p : parts) EXPECT_NE(message.find(p), std::string::npos) << message;

    Logs logs;
    const gptq_config cfg = config_for(GPTQ_BACKEND_AUTO, &logs);
    EXPECT_EQ(backend_used(cfg), GPTQ_BACKEND_CPU);
    EXPECT_TRUE(logs.has(GPTQ_LOG_INFO, "backend auto: using the CPU backend, because"))
        << logs.all();
    for (const std::string &p : parts) EXPECT_TRUE(logs.has(GPTQ_LOG_INFO, p)) << logs.all();
  });
}

// The directory of the libgptq this test runs against.
std::string libgptq_path() {
  Dl_info info{};
  dladdr(reinterpret_cast<const void *>(&gptq_ctx_create), &info);
  return info.dli_fname != nullptr ? info.dli_fname : "";
}


bool copy_file(const std::string &from, const std::string &to) {
  std::ifstream in(from, std::ios::binary);
  std::ofstream out(to, std::ios::binary);
  out << in.rdbuf();
  return in.good() && out.good();
}

// ---------------------------------------------------------------------------
// Plugins that cannot be used: each reason is named exactly.

TEST(PluginLoader, NotFoundThroughEnvironment) {
  expect_unusable(with_plugin("/nonexistent/dir/libgptq-cuda.so"),
                  {"the CUDA plugin was not found", "GPTQ_CUDA_PLUGIN is /nonexistent/dir/libgptq-cuda.so"});
}

// A copy of libgptq alone in a directory: the default search looks next to
// it, finds nothing, and says where it looked.
TEST(PluginLoader, NotFoundNextToTheLibraryNamesThePathTried) {
  const std::string lib = libgptq_path();
  ASSERT_FALSE(lib.empty());
  char dir_template[] = "/tmp/gptq-no-plugin-XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr);
  const std::string dir = dir_template;
  const std::string lib_copy = dir + "/" + lib.substr(lib.rfind('/') + 1);
  ASSERT_TRUE(copy_file(lib, lib_copy));
  const std::string out_file = dir + "/out.txt";
  const std::string cmd = "env -u GPTQ_CUDA_PLUGIN -u GPTQ_BACKEND LD_LIBRARY_PATH=" + dir + " " +
                          PLUGIN_CHILD + " cuda > " + out_file + " 2>&1";
  EXPECT_EQ(std::system(cmd.c_str()), 0);
  std::ifstream in(out_file);
  const std::string output((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(output.find("status 8 "), std::string::npos) << output;  // BACKEND_UNAVAILABLE
  EXPECT_NE(output.find("the CUDA plugin was not found (tried " + dir + "/libgptq-cuda.so"),
            std::string::npos)
      << output;
  for (const std::string &f : {lib_copy, out_file}) unlink(f.c_str());
  rmdir(dir.c_str());
}

TEST(PluginLoader, FileThatIsNotALibraryGivesTheDlopenError) {
  char path[] = "/tmp/gptq-not-a-plugin-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, "not an ELF file\n", 16), 16);
  close(fd);
  expect_unusable(with_plugin(path), {std::string("the CUDA plugin ") + path + " could not be loaded: "});
  unlink(path);
}

TEST(PluginLoader, LibraryWithoutTheEntrySymbol) {
  expect_unusable(with_plugin(FAKE_PLUGIN_NO_ENTRY),
                  {std::string(FAKE_PLUGIN_NO_ENTRY) +
                   " is not a libgptq backend plugin: it has no symbol gptq_backend_plugin_entry"});
}

TEST(PluginLoader, WrongAbiVersion) {
  expect_unusable(with_plugin(FAKE_PLUGIN_OLD_ABI),
                  {std::string(FAKE_PLUGIN_OLD_ABI) + ": plugin ABI 1, library expects 2"});
}

TEST(PluginLoader, ProbeFailureCarriesThePluginsMessage) {
  expect_unusable(with_plugin(FAKE_PLUGIN_PROBE_FAILS),
                  {"cudaGetDeviceCount failed: cudaErrorNoDevice: no CUDA-capable device is detected"});
}

TEST(PluginLoader, IncompletePluginNamesWhatIsMissing) {
  expect_unusable(with_plugin(FAKE_PLUGIN_INCOMPLETE),
                  {std::string(FAKE_PLUGIN_INCOMPLETE) +
                   " implements only probe, hessian_create, hessian_destroy, hessian_add_batch, "
                   "hessian_merge, hessian_export, memory_of, scan, copy_to_host; quantize, "
                   "weights_prepare, weights_destroy, matmul are missing"});
}

TEST(PluginLoader, EntriesBeyondTheDeclaredTableSizeAreNotRead) {
  std::vector<EnvVar> env = with_plugin(FAKE_PLUGIN_COMPLETE);
  env.push_back({"FAKE_PLUGIN_SHORT_TABLE", "1"});
  expect_unusable(env, {"quantize, weights_prepare, weights_destroy, matmul, memory_of, scan, "
                        "copy_to_host are missing"});
}

// A plugin that loads and runs but computes wrongly is refused by the
// self-check against the CPU backend, with what differed.
TEST(PluginLoader, SelfCheckRefusesWrongCodes) {
  std::vector<EnvVar> env = with_plugin(FAKE_PLUGIN_COMPLETE);
  env.push_back({"FAKE_PLUGIN_WRONG_CODES", "1"});
  expect_unusable(env, {std::string(FAKE_PLUGIN_COMPLETE) +
                            " failed its self-check against the CPU backend: quantize (F64): ",
                        " codes differ (by up to "});
}

TEST(PluginLoader, SelfCheckRefusesAWrongMatmul) {
  std::vector<EnvVar> env = with_plugin(FAKE_PLUGIN_COMPLETE);
  env.push_back({"FAKE_PLUGIN_WRONG_MATMUL", "1"});
  expect_unusable(env, {"failed its self-check against the CPU backend: matmul (F32, 3 rows): "
                        "relative error 0.01"});
}

// ---------------------------------------------------------------------------
// A complete plugin: results flow both ways through the adapter.

TEST(PluginBackend, AutoChoosesAUsablePluginAndSaysSo) {
  expect_child(with_plugin(FAKE_PLUGIN_COMPLETE), [] {
    Logs logs;
    EXPECT_EQ(backend_used(config_for(GPTQ_BACKEND_AUTO, &logs)), GPTQ_BACKEND_CUDA);
    EXPECT_TRUE(logs.has(GPTQ_LOG_INFO, "backend auto: using CUDA (fake device for tests)"))
        << logs.all();
    EXPECT_EQ(backend_used(config_for(GPTQ_BACKEND_CPU)), GPTQ_BACKEND_CPU);
  });
}

TEST(PluginBackend, HessianMatchesTheCpuBackend) {
  expect_child(with_plugin(FAKE_PLUGIN_COMPLETE), [] {
    const int64_t out = 8, in = 32;
    const std::vector<float> a = correlated_activations(40, in, 11), b = correlated_activations(30, in, 12);
    std::vector<uint16_t> b16(b.size()), bbf(b.size());
    for (size_t i = 0; i < b.size(); ++i) {
      b16[i] = gptq::float_to_half(b[i]);
      bbf[i] = gptq::float_to_bf16(b[i]);
    }
    for (gptq_precision p : {GPTQ_PRECISION_F32, GPTQ_PRECISION_F64})
      for (gptq_dtype dt : {GPTQ_DTYPE_F16, GPTQ_DTYPE_BF16}) {
        gptq_config cpu_cfg = config_for(GPTQ_BACKEND_CPU), cuda_cfg = config_for(GPTQ_BACKEND_CUDA);
        cpu_cfg.precision = cuda_cfg.precision = p;
        Ctx cpu = make_ctx(out, in, cpu_cfg), cuda = make_ctx(out, in, cuda_cfg);
        ASSERT_TRUE(cpu && cuda);
        const void *second = dt == GPTQ_DTYPE_F16 ? b16.data() : bbf.data();
        for (gptq_ctx *c : {cpu.get(), cuda.get()}) {
          ASSERT_EQ(gptq_add_batch(c, a.data(), GPTQ_DTYPE_F32, 40, in, 2), GPTQ_OK) << gptq_last_error();
          ASSERT_EQ(gptq_add_batch(c, second, dt, 30, in, 3), GPTQ_OK) << gptq_last_error();
        }
        EXPECT_EQ(gptq_ctx_samples(cuda.get()), 5);
        std::vector<double> hc(in * in), hg(in * in);
        int64_t nc = 0, ng = 0;
        ASSERT_EQ(gptq_ctx_export_hessian(cpu.get(), hc.data(), in * in, &nc), GPTQ_OK);
        ASSERT_EQ(gptq_ctx_export_hessian(cuda.get(), hg.data(), in * in, &ng), GPTQ_OK);
        EXPECT_EQ(nc, ng);
        double scale = 0;
        for (double v : hc) scale = std::max(scale, std::abs(v));
        for (size_t i = 0; i < hc.size(); ++i) ASSERT_NEAR(hc[i], hg[i], 1e-5 * scale) << i;

        // Merging either way and importing go through the plugin's merge.
        ASSERT_EQ(gptq_ctx_merge(cuda.get(), cpu.get()), GPTQ_OK) << gptq_last_error();
        ASSERT_EQ(gptq_ctx_merge(cpu.get(), cuda.get()), GPTQ_OK) << gptq_last_error();
        EXPECT_EQ(gptq_ctx_samples(cuda.get()), 10);
        ASSERT_EQ(gptq_ctx_import_hessian(cuda.get(), hc.data(), in * in, 10), GPTQ_OK);
        EXPECT_EQ(gptq_ctx_samples(cuda.get()), 20);
        ASSERT_EQ(gptq_ctx_export_hessian(cuda.get(), hg.data(), in * in, &ng), GPTQ_OK);
        for (size_t i = 0; i < hc.size(); ++i) ASSERT_NEAR(hc[i], hg[i], 1e-5 * scale) << i;
      }
  });
}

// The complete fake is an independent GPTQ (the reference's formulation,
// in double): its results, stats and logs must come back through the
// adapter as the plugin made them, and agree with the CPU backend's.
TEST(PluginBackend, QuantizeResultsStatsLogsAndMatmulFlowBack) {
  expect_child(with_plugin(FAKE_PLUGIN_COMPLETE), [] {
    const int64_t out = 16, in = 64, rows = 5;
    Logs logs;
    gptq_config cfg = config_for(GPTQ_BACKEND_CUDA, &logs);
    cfg.sym = 0;
    cfg.act_order = 1;
    cfg.precision = GPTQ_PRECISION_F64;
    gptq_config cpu_cfg = cfg;
    cpu_cfg.backend = GPTQ_BACKEND_CPU;
    cpu_cfg.log = nullptr;
    std::vector<float> x = correlated_activations(100, in, 21);
    for (int64_t r = 0; r < 100; ++r) x[r * in + 5] = 0.0f;  // a dead input column
    const std::vector<float> w = correlated_activations(out, in, 22, 0);
    gptq_quant_stats stats{}, cpu_stats{};
    stats.struct_size = cpu_stats.struct_size = sizeof stats;
    QTensor q, cpu_q, q_imported, cpu_imported;
    for (auto [c, st, dst] : {std::make_tuple(&cfg, &stats, &q), std::make_tuple(&cpu_cfg, &cpu_stats, &cpu_q)}) {
      Ctx ctx = make_ctx(out, in, *c);
      ASSERT_TRUE(ctx);
      ASSERT_EQ(gptq_add_batch(ctx.get(), x.data(), GPTQ_DTYPE_F32, 100, in, 1), GPTQ_OK);
      gptq_qtensor *raw = nullptr;
      ASSERT_EQ(gptq_quantize(ctx.get(), w.data(), GPTQ_DTYPE_F32, out, in, &raw, st), GPTQ_OK)
          << gptq_last_error();
      dst->reset(raw);
    }
    EXPECT_EQ(stats.backend, GPTQ_BACKEND_CUDA);
    EXPECT_EQ(gptq_qtensor_backend(q.get()), GPTQ_BACKEND_CUDA);
    EXPECT_EQ(gptq_qtensor_backend(cpu_q.get()), GPTQ_BACKEND_CPU);
    EXPECT_NEAR(stats.loss, cpu_stats.loss, 1e-6 * cpu_stats.loss);
    EXPECT_EQ(stats.damp_retries, 0);
    EXPECT_EQ(stats.fell_back_to_rtn, 0);
    EXPECT_EQ(stats.dead_columns, 1);
    EXPECT_FLOAT_EQ(static_cast<float>(stats.damp_percent_used), cfg.damp_percent);
    EXPECT_TRUE(logs.has(GPTQ_LOG_INFO, "fake plugin: quantized")) << logs.all();

    gptq_qtensor_info info{};
    ASSERT_EQ(gptq_qtensor_get_info(q.get(), &info), GPTQ_OK);
    EXPECT_EQ(info.groups, 4);
    EXPECT_EQ(info.bits, 4);
    EXPECT_EQ(info.act_order, 1);
    std::vector<uint8_t> codes(out * in), cpu_codes(out * in);
    ASSERT_EQ(gptq_qtensor_codes(q.get(), codes.data(), out * in), GPTQ_OK);
    ASSERT_EQ(gptq_qtensor_codes(cpu_q.get(), cpu_codes.data(), out * in), GPTQ_OK);
    EXPECT_EQ(codes, cpu_codes);
    // The checkpoint export reads the plugin's g_idx.
    gptq_checkpoint_sizes sizes{};
    ASSERT_EQ(gptq_checkpoint_sizes_for(out, in, 4, 16, &sizes), GPTQ_OK);
    std::vector<int32_t> qweight(sizes.qweight_rows * sizes.qweight_cols),
        qzeros(sizes.qzeros_rows * sizes.qzeros_cols), g_idx(sizes.g_idx_len), cpu_g_idx(g_idx);
    std::vector<uint16_t> scales(sizes.scales_rows * sizes.scales_cols);
    gptq_checkpoint_tensors t{qweight.data(), (int64_t)qweight.size(), qzeros.data(), (int64_t)qzeros.size(),
                              scales.data(), (int64_t)scales.size(), g_idx.data(), (int64_t)g_idx.size()};
    ASSERT_EQ(gptq_qtensor_export(q.get(), GPTQ_FORMAT_V2, &t), GPTQ_OK) << gptq_last_error();
    t.g_idx = cpu_g_idx.data();
    ASSERT_EQ(gptq_qtensor_export(cpu_q.get(), GPTQ_FORMAT_V2, &t), GPTQ_OK) << gptq_last_error();
    EXPECT_EQ(g_idx, cpu_g_idx);
    // Those buffers imported onto the plugin's backend and onto the CPU: the
    // plugin's tensor gets its codes unpacked (the import reads the packed
    // qweight through the CPU layout only), so it dequantizes as the CPU's
    // does and its matmul runs.
    for (const gptq_backend backend : {GPTQ_BACKEND_CUDA, GPTQ_BACKEND_CPU}) {
      gptq_import_options io;
      gptq_import_options_default(&io);
      io.backend = backend;
      gptq_qtensor *raw = nullptr;
      ASSERT_EQ(gptq_qtensor_import_ex(out, in, 4, 16, GPTQ_FORMAT_V2, &t, &io, &raw), GPTQ_OK)
          << gptq_last_error();
      (backend == GPTQ_BACKEND_CUDA ? q_imported : cpu_imported).reset(raw);
      EXPECT_EQ(gptq_qtensor_backend(raw), backend);
      std::vector<uint8_t> imported_codes(out * in);
      ASSERT_EQ(gptq_qtensor_codes(raw, imported_codes.data(), out * in), GPTQ_OK);
      EXPECT_EQ(imported_codes, codes);
    }
    std::vector<float> deq_plugin(out * in), deq_cpu(out * in), y_imported(rows * out);
    ASSERT_EQ(gptq_qtensor_dequantize(q_imported.get(), deq_plugin.data(), out * in), GPTQ_OK);
    ASSERT_EQ(gptq_qtensor_dequantize(cpu_imported.get(), deq_cpu.data(), out * in), GPTQ_OK);
    EXPECT_EQ(deq_plugin, deq_cpu);
    ASSERT_EQ(gptq_matmul(q_imported.get(), x.data(), GPTQ_DTYPE_F32, rows, in, nullptr,
                          y_imported.data(), rows * out),
              GPTQ_OK)
        << gptq_last_error();

    // Matmul runs in the plugin: y = x·deqᵀ + bias.
    std::vector<float> deq(out * in);
    ASSERT_EQ(gptq_qtensor_dequantize(q.get(), deq.data(), out * in), GPTQ_OK);
    std::vector<float> bias(out), y(rows * out, -1.0f);
    for (int64_t o = 0; o < out; ++o) bias[o] = 0.25f * static_cast<float>(o);
    ASSERT_EQ(gptq_matmul(q.get(), x.data(), GPTQ_DTYPE_F32, rows, in, bias.data(), y.data(), rows * out),
              GPTQ_OK)
        << gptq_last_error();
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t o = 0; o < out; ++o) {
        double s = bias[o], mag = std::abs(bias[o]);
        for (int64_t j = 0; j < in; ++j) {
          s += double(x[r * in + j]) * deq[o * in + j];
          mag += std::abs(double(x[r * in + j]) * deq[o * in + j]);
        }
        EXPECT_NEAR(y[r * out + o], s, 1e-5 * mag + 1e-6);
      }
    // A plugin's error comes back with its status and message.
    gptq_matmul_options opts;
    gptq_matmul_options_default(&opts);
    opts.memory = GPTQ_MEMORY_DEVICE;
    EXPECT_EQ(gptq_matmul_ex(q.get(), x.data(), GPTQ_DTYPE_F32, rows, in, nullptr, y.data(),
                             rows * out, &opts),
              GPTQ_ERR_UNSUPPORTED);
    EXPECT_STREQ(gptq_last_error(), "cuda backend: matmul: fake plugin: host memory only");
    // A range of output features is for the CPU backend; the whole range
    // (spelled out) is the whole product.
    gptq_matmul_options_default(&opts);
    opts.out_begin = 4;
    std::vector<float> again(y.size(), -1.0f);
    EXPECT_EQ(gptq_matmul_ex(q.get(), x.data(), GPTQ_DTYPE_F32, rows, in, bias.data(), again.data(),
                             rows * out, &opts),
              GPTQ_ERR_UNSUPPORTED);
    EXPECT_NE(std::string(gptq_last_error()).find("out_begin/out_end"), std::string::npos)
        << gptq_last_error();
    for (float v : again) EXPECT_EQ(v, -1.0f);
    opts.out_begin = 0;
    opts.out_end = out;
    ASSERT_EQ(gptq_matmul_ex(q.get(), x.data(), GPTQ_DTYPE_F32, rows, in, bias.data(), again.data(),
                             rows * out, &opts),
              GPTQ_OK)
        << gptq_last_error();
    EXPECT_EQ(again, y);
  });
}

int cancel_progress(int64_t, int64_t, void *) { return 1; }

TEST(PluginBackend, CancellationFromThePluginIsACancel) {
  expect_child(with_plugin(FAKE_PLUGIN_COMPLETE), [] {
    gptq_config cfg = config_for(GPTQ_BACKEND_CUDA);
    cfg.progress = cancel_progress;
    Ctx ctx = make_ctx(8, 32, cfg);
    ASSERT_TRUE(ctx);
    const std::vector<float> x = correlated_activations(20, 32, 1), w = correlated_activations(8, 32, 2);
    ASSERT_EQ(gptq_add_batch(ctx.get(), x.data(), GPTQ_DTYPE_F32, 20, 32, 1), GPTQ_OK);
    gptq_qtensor *q = reinterpret_cast<gptq_qtensor *>(1);
    EXPECT_EQ(gptq_quantize(ctx.get(), w.data(), GPTQ_DTYPE_F32, 8, 32, &q, nullptr), GPTQ_ERR_CANCELLED);
    EXPECT_EQ(q, nullptr);
    EXPECT_NE(std::string(gptq_last_error()).find("cancelled by the progress callback"), std::string::npos);
  });
}

TEST(PluginBackend, InvalidResultsFromAPluginAreRefused) {
  std::vector<EnvVar> env = with_plugin(FAKE_PLUGIN_COMPLETE);
  env.push_back({"FAKE_PLUGIN_BAD_GIDX", "32"});
  expect_child(env, [] {
    Ctx ctx = make_ctx(8, 32, config_for(GPTQ_BACKEND_CUDA));
    ASSERT_TRUE(ctx);
    const std::vector<float> x = correlated_activations(20, 32, 1), w = correlated_activations(8, 32, 2);
    ASSERT_EQ(gptq_add_batch(ctx.get(), x.data(), GPTQ_DTYPE_F32, 20, 32, 1), GPTQ_OK);
    gptq_qtensor *q = nullptr;
    EXPECT_EQ(gptq_quantize(ctx.get(), w.data(), GPTQ_DTYPE_F32, 8, 32, &q, nullptr), GPTQ_ERR_INTERNAL);
    EXPECT_EQ(q, nullptr);
    EXPECT_NE(std::string(gptq_last_error()).find("quantize returned an invalid tensor: g_idx[0] = 2"),
              std::string::npos)
        << gptq_last_error();
  });
}

// ---------------------------------------------------------------------------
// Once per process, thread-safe.

int probe_calls(const char *plugin) {
  void *h = dlopen(plugin, RTLD_NOW | RTLD_NOLOAD);
  if (h == nullptr) return -1;  // never loaded
  auto fn = reinterpret_cast<int (*)()>(dlsym(h, "fake_plugin_probe_calls"));
  const int n = fn != nullptr ? fn() : -2;
  dlclose(h);  // drops only our reference
  return n;
}

TEST(PluginLoader, ProbedOncePerProcessEvenFromManyThreads) {
  for (const char *plugin : {FAKE_PLUGIN_COMPLETE, FAKE_PLUGIN_PROBE_FAILS})
    expect_child(with_plugin(plugin), [plugin] {
      EXPECT_EQ(probe_calls(plugin), -1);
      std::atomic<int> ok{0};
      std::vector<std::thread> threads;
      for (int i = 0; i < 8; ++i)
        threads.emplace_back([&] {
          for (int k = 0; k < 3; ++k) ok += try_create(config_for(GPTQ_BACKEND_AUTO)).first == GPTQ_OK;
        });
      for (auto &t : threads) t.join();
      EXPECT_EQ(ok.load(), 24);
      try_create(config_for(GPTQ_BACKEND_CUDA));
      EXPECT_EQ(probe_calls(plugin), 1);
    });
}

// ---------------------------------------------------------------------------
// GPTQ_BACKEND overrides the configured choice for the whole process.

TEST(BackendOverride, CpuOverridesACudaConfig) {
  expect_child(with_plugin(FAKE_PLUGIN_COMPLETE, "cpu"), [] {
    Logs logs;
    EXPECT_EQ(backend_used(config_for(GPTQ_BACKEND_CUDA, &logs)), GPTQ_BACKEND_CPU);
    EXPECT_TRUE(logs.has(GPTQ_LOG_INFO, "GPTQ_BACKEND=cpu overrides the configured backend cuda"))
        << logs.all();
    EXPECT_EQ(probe_calls(FAKE_PLUGIN_COMPLETE), -1);  // the plugin was not even loaded
  });
}

TEST(BackendOverride, CudaOverridesACpuConfig) {
  expect_child(with_plugin(FAKE_PLUGIN_COMPLETE, "cuda"), [] {
    EXPECT_EQ(backend_used(config_for(GPTQ_BACKEND_CPU)), GPTQ_BACKEND_CUDA);
  });
  expect_child(with_plugin("/nonexistent/libgptq-cuda.so", "cuda"), [] {
    const auto [status, message] = try_create(config_for(GPTQ_BACKEND_CPU));
    EXPECT_EQ(status, GPTQ_ERR_BACKEND_UNAVAILABLE) << message;
    EXPECT_NE(message.find("/nonexistent/libgptq-cuda.so"), std::string::npos) << message;
  });
}

TEST(BackendOverride, AutoOverridesAnExplicitChoice) {
  expect_child(with_plugin(FAKE_PLUGIN_PROBE_FAILS, "auto"), [] {
    EXPECT_EQ(backend_used(config_for(GPTQ_BACKEND_CUDA)), GPTQ_BACKEND_CPU);
  });
}

TEST(BackendOverride, UnknownValueIsAConfigError) {
  expect_child(with_plugin(FAKE_PLUGIN_COMPLETE, "gpu"), [] {
    const auto [status, message] = try_create(config_for(GPTQ_BACKEND_CPU));
    EXPECT_EQ(status, GPTQ_ERR_INVALID_CONFIG);
    EXPECT_EQ(message,
              "gptq_ctx_create: the environment variable GPTQ_BACKEND is \"gpu\"; it must be cpu, "
              "cuda or auto (or unset)");
  });
  expect_child(with_plugin(FAKE_PLUGIN_COMPLETE, ""), [] {  // empty = unset
    EXPECT_EQ(backend_used(config_for(GPTQ_BACKEND_CPU)), GPTQ_BACKEND_CPU);
  });
}

// ---------------------------------------------------------------------------
// Found next to libgptq (dladdr): a copy of libgptq and a plugin named
// libgptq-cuda.so in one directory, used by a fresh process.

TEST(PluginLoader, FoundNextToTheLibrary) {
  const std::string lib = libgptq_path();
  ASSERT_FALSE(lib.empty());
  char dir_template[] = "/tmp/gptq-plugin-dir-XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr);
  const std::string dir = dir_template;
  const std::string lib_copy = dir + "/" + lib.substr(lib.rfind('/') + 1);
  ASSERT_TRUE(copy_file(lib, lib_copy));
  ASSERT_TRUE(copy_file(FAKE_PLUGIN_COMPLETE, dir + "/libgptq-cuda.so"));
  const std::string out_file = dir + "/out.txt";

  const std::string cmd = "env -u GPTQ_CUDA_PLUGIN -u GPTQ_BACKEND LD_LIBRARY_PATH=" + dir + " " +
                          PLUGIN_CHILD + " cuda > " + out_file + " 2>&1";
  EXPECT_EQ(std::system(cmd.c_str()), 0);
  std::ifstream in(out_file);
  const std::string output((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(output.find("lib " + lib_copy), std::string::npos) << output;
  EXPECT_NE(output.find("status 0"), std::string::npos) << output;
  EXPECT_NE(output.find("backend 2 0"), std::string::npos) << output;  // CUDA, OK
  for (const std::string &f : {lib_copy, dir + "/libgptq-cuda.so", out_file}) unlink(f.c_str());
  rmdir(dir.c_str());
}

// ---------------------------------------------------------------------------
// The real libgptq-cuda.so, when this build made one.

#ifdef GPTQ_REAL_CUDA_PLUGIN
// Without a GPU the real plugin is unusable, and the reason carries the CUDA
// runtime's own error; with one, it passes its self-check and AUTO uses it.
TEST(RealCudaPlugin, UsableExactlyWhenThereIsADevice) {
  expect_child(with_plugin(GPTQ_REAL_CUDA_PLUGIN), [] {
    const auto [status, message] = try_create(config_for(GPTQ_BACKEND_CUDA));
    void *h = dlopen(GPTQ_REAL_CUDA_PLUGIN, RTLD_NOW | RTLD_NOLOAD);
    ASSERT_NE(h, nullptr);
    auto entry = reinterpret_cast<gptq_plugin_entry_fn>(dlsym(h, GPTQ_PLUGIN_ENTRY_NAME));
    ASSERT_NE(entry, nullptr);
    char probe_msg[GPTQ_PLUGIN_MSG_SIZE] = {};
    Logs logs;
    const gptq_backend used = backend_used(config_for(GPTQ_BACKEND_AUTO, &logs));
    if (entry()->probe(probe_msg, sizeof probe_msg) != GPTQ_OK) {
      std::printf("  (real plugin says: %s)\n", message.c_str());
      EXPECT_EQ(status, GPTQ_ERR_BACKEND_UNAVAILABLE) << message;
      EXPECT_NE(message.find(probe_msg), std::string::npos) << message;
      // The CUDA runtime's error name, e.g. cudaErrorNoDevice.
      EXPECT_NE(message.find("cudaGetDeviceCount failed: cudaError"), std::string::npos) << message;
      EXPECT_EQ(used, GPTQ_BACKEND_CPU);
      EXPECT_TRUE(logs.has(GPTQ_LOG_INFO, "backend auto: using the CPU backend, because"))
          << logs.all();
    } else {
      std::printf("  (real plugin: %s)\n", probe_msg);
      EXPECT_EQ(status, GPTQ_OK) << message;
      EXPECT_EQ(used, GPTQ_BACKEND_CUDA) << logs.all();
    }
  });
}

// The plugin's Hessian through the ABI directly, against a double reference.
// Needs a GPU with compute capability >= 8.0; skipped otherwise.
TEST(RealCudaPlugin, HessianMatchesReference) {
  const int code = in_child({}, [] {
    void *h = dlopen(GPTQ_REAL_CUDA_PLUGIN, RTLD_NOW | RTLD_LOCAL);
    EXPECT_NE(h, nullptr) << dlerror();
    if (h == nullptr) return 0;
    auto entry = reinterpret_cast<gptq_plugin_entry_fn>(dlsym(h, GPTQ_PLUGIN_ENTRY_NAME));
    const gptq_plugin_table *t = entry();
    char msg[GPTQ_PLUGIN_MSG_SIZE] = {};
    if (t->probe(msg, sizeof msg) != GPTQ_OK) {
      std::printf("  skipped: %s\n", msg);
      return kSkipExit;
    }
    const int64_t n = 96, rows1 = 300, rows2 = 5000;
    const std::vector<float> a = correlated_activations(rows1, n, 31), b = correlated_activations(rows2, n, 32);
    std::vector<uint16_t> b16(b.size()), bbf(b.size());
    for (size_t i = 0; i < b.size(); ++i) {
      b16[i] = gptq::float_to_half(b[i]);
      bbf[i] = gptq::float_to_bf16(b[i]);
    }
    for (gptq_precision p : {GPTQ_PRECISION_F32, GPTQ_PRECISION_F64})
      for (gptq_dtype dt : {GPTQ_DTYPE_F32, GPTQ_DTYPE_F16, GPTQ_DTYPE_BF16}) {
        gptq_plugin_hessian *hs = nullptr;
        EXPECT_EQ(t->hessian_create(n, p, nullptr, &hs, msg, sizeof msg), GPTQ_OK) << msg;
        if (hs == nullptr) return 0;
        // (a, 1 sample) then (b, 3 samples): H = (2/4)(aᵀa + b̃ᵀb̃).
        EXPECT_EQ(t->hessian_add_batch(hs, a.data(), GPTQ_DTYPE_F32, rows1, GPTQ_PLUGIN_MEMORY_HOST,
                                       0.0, 2.0, msg, sizeof msg), GPTQ_OK) << msg;
        const void *second = dt == GPTQ_DTYPE_F32 ? static_cast<const void *>(b.data())
                             : dt == GPTQ_DTYPE_F16 ? static_cast<const void *>(b16.data())
                                                    : static_cast<const void *>(bbf.data());
        EXPECT_EQ(t->hessian_add_batch(hs, second, dt, rows2, GPTQ_PLUGIN_MEMORY_HOST, 0.25, 0.5,
                                       msg, sizeof msg), GPTQ_OK) << msg;
        std::vector<double> got(n * n), ref(n * n, 0.0);
        EXPECT_EQ(t->hessian_export(hs, got.data(), msg, sizeof msg), GPTQ_OK) << msg;
        auto value = [&](int64_t i) {
          return dt == GPTQ_DTYPE_F32 ? double(b[i])
                 : dt == GPTQ_DTYPE_F16 ? double(gptq::half_to_float(b16[i]))
                                        : double(gptq::bf16_to_float(bbf[i]));
        };
        double scale = 0;
        for (int64_t i = 0; i < n; ++i)
          for (int64_t j = 0; j < n; ++j) {
            double s1 = 0, s2 = 0;
            for (int64_t r = 0; r < rows1; ++r) s1 += double(a[r * n + i]) * a[r * n + j];
            for (int64_t r = 0; r < rows2; ++r) s2 += value(r * n + i) * value(r * n + j);
            ref[i * n + j] = 0.5 * s1 + 0.5 * s2;
            scale = std::max(scale, std::abs(ref[i * n + j]));
          }
        const double tol = (p == GPTQ_PRECISION_F32 ? 1e-4 : 1e-10) * scale;
        for (int64_t i = 0; i < n * n; ++i) EXPECT_NEAR(got[i], ref[i], tol) << i;
        // Merge: H ← 0.5·H + 0.5·ref leaves H ≈ ref.
        EXPECT_EQ(t->hessian_merge(hs, ref.data(), 0.5, 0.5, msg, sizeof msg), GPTQ_OK) << msg;
        EXPECT_EQ(t->hessian_export(hs, got.data(), msg, sizeof msg), GPTQ_OK) << msg;
        for (int64_t i = 0; i < n * n; ++i) EXPECT_NEAR(got[i], ref[i], tol) << i;
        t->hessian_destroy(hs);
      }
    return 0;
  });
  if (code == kSkipExit) GTEST_SKIP() << "no usable CUDA device";
  EXPECT_EQ(code, 0) << "the child process failed; its messages are above";
}
#endif

}  // namespace
