// A context's log sink: forwards formatted lines to the caller's callback
// when their level is at or above the configured threshold.
#pragma once

#include <string>

#include "gptq.h"

namespace gptq {

struct Logger {
  gptq_log_fn fn = nullptr;
  void *user_data = nullptr;
  gptq_log_level level = GPTQ_LOG_INFO;

  void log(gptq_log_level at, const std::string &message) const {
    if (fn != nullptr && at >= level) fn(at, message.c_str(), user_data);
  }
};

}  // namespace gptq
