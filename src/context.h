// The layer context behind the opaque gptq_ctx handle.
#pragma once

#include <memory>

#include "backend.h"
#include "gptq.h"
#include "log.h"

struct gptq_ctx {
  int64_t out_features = 0;
  int64_t in_features = 0;
  gptq_config config{};
  gptq::Logger logger;
  gptq::Backend *backend = nullptr;          // not owned; lives for the process
  std::unique_ptr<gptq::Hessian> hessian;    // owned; on the backend
};
