// A separate process for test_backend_plugin's "next to libgptq" test: it is
// started with LD_LIBRARY_PATH pointing at a directory that holds a copy of
// libgptq and a plugin named libgptq-cuda.so, creates a context with the
// backend named in argv[1] (cpu|cuda|auto) and prints what happened:
//   lib <path of the libgptq actually loaded>
//   status <gptq_status> <gptq_last_error()>
//   backend <stats.backend after a tiny quantize>
// Exit code 0 if it ran (whatever the status), 2 on bad usage.
#include <dlfcn.h>

#include <cstdio>
#include <cstring>
#include <vector>

#include "gptq.h"

int main(int argc, char **argv) {
  if (argc != 2) return 2;
  gptq_config cfg;
  gptq_config_default(&cfg);
  cfg.backend = std::strcmp(argv[1], "cuda") == 0  ? GPTQ_BACKEND_CUDA
                : std::strcmp(argv[1], "cpu") == 0 ? GPTQ_BACKEND_CPU
                                                   : GPTQ_BACKEND_AUTO;
  cfg.group_size = -1;
  Dl_info info{};
  dladdr(reinterpret_cast<const void *>(&gptq_ctx_create), &info);
  std::printf("lib %s\n", info.dli_fname ? info.dli_fname : "?");
  gptq_ctx *ctx = nullptr;
  const gptq_status s = gptq_ctx_create(4, 8, &cfg, &ctx);
  std::printf("status %d %s\n", static_cast<int>(s), s == GPTQ_OK ? "" : gptq_last_error());
  if (s != GPTQ_OK) return 0;
  std::vector<float> x(16 * 8), w(4 * 8);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>((i * 37) % 11) - 5.0f;
  for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<float>((i * 13) % 7) - 3.0f;
  gptq_add_batch(ctx, x.data(), GPTQ_DTYPE_F32, 16, 8, 1);
  gptq_quant_stats stats{};
  stats.struct_size = sizeof stats;
  gptq_qtensor *q = nullptr;
  const gptq_status qs = gptq_quantize(ctx, w.data(), GPTQ_DTYPE_F32, 4, 8, &q, &stats);
  std::printf("backend %d %d\n", static_cast<int>(stats.backend), static_cast<int>(qs));
  gptq_qtensor_destroy(q);
  gptq_ctx_destroy(ctx);
  return 0;
}
