// Thin C++ conveniences over the public C API (gptq.h only; the tool uses
// nothing private): statuses become ToolErrors carrying the library's own
// message, and the library's handles get owners so no path leaks them.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/tool_error.h"
#include "gptq.h"

namespace gptqtool {

// Throws ToolError("<what>: <status name>: <library message>") unless ok.
inline void check_status(gptq_status status, const std::string &what) {
  if (status == GPTQ_OK) return;
  std::string message = what + ": " + gptq_status_string(status);
  const char *detail = gptq_last_error();
  if (detail != nullptr && detail[0] != '\0') message += ": " + std::string(detail);
  throw ToolError(message);
}

struct CtxDeleter {
  void operator()(gptq_ctx *c) const { gptq_ctx_destroy(c); }
};
struct QTensorDeleter {
  void operator()(gptq_qtensor *q) const { gptq_qtensor_destroy(q); }
};
using CtxPtr = std::unique_ptr<gptq_ctx, CtxDeleter>;
using QTensorPtr = std::unique_ptr<gptq_qtensor, QTensorDeleter>;

// The library's view of a tensor's four checkpoint arrays held in vectors
// (an empty g_idx is passed as NULL: j / group_size).
inline gptq_checkpoint_tensors checkpoint_tensors_of(std::vector<int32_t> &qweight,
                                                     std::vector<int32_t> &qzeros,
                                                     std::vector<uint16_t> &scales,
                                                     std::vector<int32_t> &g_idx) {
  gptq_checkpoint_tensors t;
  t.qweight = qweight.data();
  t.qweight_len = static_cast<int64_t>(qweight.size());
  t.qzeros = qzeros.data();
  t.qzeros_len = static_cast<int64_t>(qzeros.size());
  t.scales = scales.data();
  t.scales_len = static_cast<int64_t>(scales.size());
  t.g_idx = g_idx.empty() ? nullptr : g_idx.data();
  t.g_idx_len = static_cast<int64_t>(g_idx.size());
  return t;
}

}  // namespace gptqtool
