#include "cli/run_options.h"

#include <cblas.h>

#include <cstdlib>
#include <string>

#include "common/library_call.h"

namespace gptqtool {

void choose_backend(const CliArgs &args) {
  if (!args.has("backend")) return;
  const std::string b = args.get("backend", "");
  if (b != "auto" && b != "cpu" && b != "cuda")
    throw ToolError("--backend must be auto, cpu or cuda, not '" + b + "'");
  setenv("GPTQ_BACKEND", b.c_str(), 1);
  if (b != "cuda") return;
  gptq_config cfg;
  gptq_config_default(&cfg);
  cfg.backend = GPTQ_BACKEND_CUDA;
  gptq_ctx *ctx = nullptr;
  const gptq_status s = gptq_ctx_create(1, 1, &cfg, &ctx);
  gptq_ctx_destroy(ctx);
  if (s != GPTQ_OK) throw ToolError(std::string("--backend cuda: ") + gptq_last_error());
}

MatmulChoice choose_matmul(const CliArgs &args) {
  MatmulChoice m;
  const std::string path = args.get("matmul", "f32");
  if (path == "int8") {
    m.int8_activations = true;
  } else if (path != "f32") {
    throw ToolError("--matmul must be f32 or int8, not '" + path + "'");
  }
  m.threads = static_cast<int32_t>(args.get_int("threads", 0, 0, 4096));
  if (m.threads > 0) openblas_set_num_threads(m.threads);
  return m;
}

KvDType choose_kv_cache(const CliArgs &args) {
  const std::string dtype = args.get("kv-cache", "f32");
  if (dtype == "bf16") return KvDType::BF16;
  if (dtype != "f32") throw ToolError("--kv-cache must be f32 or bf16, not '" + dtype + "'");
  return KvDType::F32;
}

}  // namespace gptqtool
