#include <string>

#include "backend.h"
#include "error.h"

namespace gptq {

Backend &select_backend(gptq_backend requested, const Logger &logger, const char *where) {
  switch (requested) {
    case GPTQ_BACKEND_CPU:
      return cpu_backend();
    case GPTQ_BACKEND_AUTO:
      logger.log(GPTQ_LOG_INFO,
                 "backend auto: using the CPU backend (this build of libgptq has no CUDA backend)");
      return cpu_backend();
    case GPTQ_BACKEND_CUDA:
      throw Error(GPTQ_ERR_BACKEND_UNAVAILABLE,
                  std::string(where) +
                      ": the CUDA backend was requested, but this build of libgptq has no CUDA "
                      "backend; use GPTQ_BACKEND_CPU or GPTQ_BACKEND_AUTO");
  }
  throw Error(GPTQ_ERR_INVALID_CONFIG, std::string(where) + ": unknown backend");
}

}  // namespace gptq
