#include "config.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "error.h"
#include "gguf_grid.h"

namespace gptq {

namespace {
template <typename Enum>
int32_t enum_field(const Enum &field) {
  static_assert(sizeof(Enum) == sizeof(int32_t), "C enums are int-sized");
  int32_t value;
  std::memcpy(&value, &field, sizeof value);
  return value;
}

[[noreturn]] void bad(const char *where, const std::string &what) {
  throw Error(GPTQ_ERR_INVALID_CONFIG, std::string(where) + ": " + what);
}
}  // namespace

gptq_config read_config(const gptq_config *cfg, const char *where) {
  gptq_config c;
  gptq_config_default(&c);
  if (cfg == nullptr) return c;
  if (cfg->struct_size < kMinConfigSize) {
    bad(where, "config.struct_size is " + std::to_string(cfg->struct_size) +
                   ", smaller than any gptq_config this library knows (" +
                   std::to_string(kMinConfigSize) + "); initialize it with gptq_config_default()");
  }
  // An older caller's smaller struct: its fields over the defaults, the rest
  // stay default. A newer caller's larger struct: fields this library does
  // not know are ignored.
  std::memcpy(&c, cfg, std::min(cfg->struct_size, sizeof c));
  c.struct_size = sizeof c;

  if (c.bits < 2 || c.bits > 8)
    bad(where, "bits is " + std::to_string(c.bits) + "; it must be in 2..8");
  if (c.group_size == 0 || c.group_size < -1)
    bad(where, "group_size is " + std::to_string(c.group_size) + "; it must be -1 or >= 1");
  if (c.sym != 0 && c.sym != 1) bad(where, "sym must be 0 or 1");
  if (c.act_order != 0 && c.act_order != 1) bad(where, "act_order must be 0 or 1");
  if (c.act_group_aware != 0 && c.act_group_aware != 1) bad(where, "act_group_aware must be 0 or 1");
  if (c.act_order == 1 && c.act_group_aware == 1)
    bad(where, "act_order and act_group_aware are two different orders; set one of them");
  if (c.static_groups != 0 && c.static_groups != 1) bad(where, "static_groups must be 0 or 1");
  if (c.block_size < 1)
    bad(where, "block_size is " + std::to_string(c.block_size) + "; it must be >= 1");
  if (!(c.damp_percent >= 0.0f && c.damp_percent < 1.0f))
    bad(where, "damp_percent is " + std::to_string(c.damp_percent) + "; it must be in [0, 1)");
  if (!(c.damp_increment >= 0.0f && c.damp_increment < 1.0f))
    bad(where, "damp_increment is " + std::to_string(c.damp_increment) + "; it must be in [0, 1)");
  if (c.mse != 0 && c.mse != 1) bad(where, "mse must be 0 or 1");
  if (!(c.mse_norm > 0.0f) || !std::isfinite(c.mse_norm))
    bad(where, "mse_norm must be a finite number > 0");
  if (c.mse_grid < 1) bad(where, "mse_grid must be >= 1");
  if (!(c.mse_max_shrink > 0.0f && c.mse_max_shrink <= 1.0f))
    bad(where, "mse_max_shrink must be in (0, 1]");
  // Enum fields come from C, where any int fits; read them as ints so an
  // out-of-range value is rejected without ever being loaded as the enum.
  const int32_t backend = enum_field(c.backend);
  if (backend != GPTQ_BACKEND_AUTO && backend != GPTQ_BACKEND_CPU && backend != GPTQ_BACKEND_CUDA)
    bad(where, "backend " + std::to_string(backend) + " is not a gptq_backend");
  const int32_t precision = enum_field(c.precision);
  if (precision != GPTQ_PRECISION_F32 && precision != GPTQ_PRECISION_F64)
    bad(where, "precision " + std::to_string(precision) + " is not a gptq_precision");
  const int32_t log_level = enum_field(c.log_level);
  if (log_level < GPTQ_LOG_DEBUG || log_level > GPTQ_LOG_ERROR)
    bad(where, "log_level " + std::to_string(log_level) + " is not a gptq_log_level");
  const int32_t memory = enum_field(c.memory);
  if (memory != GPTQ_MEMORY_AUTO && memory != GPTQ_MEMORY_HOST && memory != GPTQ_MEMORY_DEVICE)
    bad(where, "memory " + std::to_string(memory) + " is not a gptq_memory");
  if (c.num_threads < 0)
    bad(where, "num_threads is " + std::to_string(c.num_threads) + "; it must be >= 0 (0 = one per core)");
  const int32_t grid = enum_field(c.grid);
  if (grid != GPTQ_GRID_GPTQ) {
    const GgufGrid *gguf = gguf_grid(grid);
    if (gguf == nullptr) bad(where, "grid " + std::to_string(grid) + " is not a gptq_grid");
    if (c.act_order == 1 && c.static_groups == 0)
      bad(where, std::string("act_order without static_groups scatters a block's columns, but a ") +
                     gguf->name + " block is " + std::to_string(gguf->block) +
                     " consecutive columns; set static_groups = 1" +
                     (gguf->super_blocks() ? "" : " or use act_group_aware"));
    // The format fixes what GPTQ's own grid leaves to the config.
    c.bits = gguf->bits;
    c.group_size = gguf->group;
    c.sym = 1;
    c.mse = 0;
  }
  return c;
}

}  // namespace gptq

extern "C" GPTQ_API void gptq_config_default(gptq_config *cfg) {
  if (cfg == nullptr) return;
  std::memset(cfg, 0, sizeof *cfg);
  cfg->struct_size = sizeof *cfg;
  cfg->bits = 4;
  cfg->group_size = 128;
  cfg->sym = 1;
  cfg->act_order = 0;
  cfg->static_groups = 0;
  cfg->block_size = 128;
  cfg->damp_percent = 0.01f;
  cfg->damp_increment = 0.0025f;
  cfg->mse = 0;
  cfg->mse_norm = 2.4f;
  cfg->mse_grid = 100;
  cfg->mse_max_shrink = 0.8f;
  cfg->backend = GPTQ_BACKEND_AUTO;
  cfg->precision = GPTQ_PRECISION_F32;
  cfg->progress = nullptr;
  cfg->progress_user_data = nullptr;
  cfg->log = nullptr;
  cfg->log_user_data = nullptr;
  cfg->log_level = GPTQ_LOG_INFO;
  cfg->num_threads = 0;
  cfg->stream = nullptr;
  cfg->memory = GPTQ_MEMORY_AUTO;
  cfg->act_group_aware = 0;
  cfg->grid = GPTQ_GRID_GPTQ;
}
