// Thin C++ conveniences over the public C API (gptq.h only; the tool uses
// nothing private): statuses become ToolErrors carrying the library's own
// message, and the library's handles get owners so no path leaks them.
#pragma once

#include <memory>
#include <string>

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

}  // namespace gptqtool
