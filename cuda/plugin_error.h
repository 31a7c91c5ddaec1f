// How the CUDA plugin reports failure internally: code inside the plugin
// throws PluginError, and each ABI entry (cuda_plugin.cpp) catches it and
// returns its status with the message written to the core's buffer. Plain
// C++ with no CUDA types, so host-only files can include it.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#include "gptq.h"

namespace gptq_cuda {

class PluginError : public std::runtime_error {
 public:
  PluginError(gptq_status status, const std::string &message)
      : std::runtime_error(message), status_(status) {}
  gptq_status status() const { return status_; }

 private:
  gptq_status status_;
};

}  // namespace gptq_cuda
