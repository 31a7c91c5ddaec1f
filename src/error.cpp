#include "error.h"

namespace gptq {
namespace {
// One message per thread: a failing call on one thread never clobbers the
// message another thread is about to read.
thread_local std::string last_error_message;
}  // namespace

void set_last_error(const std::string &message) { last_error_message = message; }

}  // namespace gptq

extern "C" GPTQ_API const char *gptq_last_error(void) {
  return gptq::last_error_message.c_str();
}

extern "C" GPTQ_API const char *gptq_status_string(gptq_status status) {
  switch (status) {
    case GPTQ_OK: return "GPTQ_OK: success";
    case GPTQ_ERR_NULL_POINTER: return "GPTQ_ERR_NULL_POINTER: a required pointer was NULL";
    case GPTQ_ERR_INVALID_SIZE: return "GPTQ_ERR_INVALID_SIZE: a size or count is zero, negative or too large";
    case GPTQ_ERR_SIZE_MISMATCH: return "GPTQ_ERR_SIZE_MISMATCH: sizes that must agree do not";
    case GPTQ_ERR_NON_FINITE: return "GPTQ_ERR_NON_FINITE: input contains NaN or Inf";
    case GPTQ_ERR_INVALID_CONFIG: return "GPTQ_ERR_INVALID_CONFIG: a configuration value is out of range";
    case GPTQ_ERR_INVALID_STATE: return "GPTQ_ERR_INVALID_STATE: call not valid in the object's current state";
    case GPTQ_ERR_UNSUPPORTED: return "GPTQ_ERR_UNSUPPORTED: request cannot be represented";
    case GPTQ_ERR_BACKEND_UNAVAILABLE: return "GPTQ_ERR_BACKEND_UNAVAILABLE: the requested backend cannot be used";
    case GPTQ_ERR_OUT_OF_MEMORY: return "GPTQ_ERR_OUT_OF_MEMORY: memory could not be allocated";
    case GPTQ_ERR_CANCELLED: return "GPTQ_ERR_CANCELLED: cancelled by the progress callback";
    case GPTQ_ERR_INVALID_DATA: return "GPTQ_ERR_INVALID_DATA: imported data is inconsistent";
    case GPTQ_ERR_INTERNAL: return "GPTQ_ERR_INTERNAL: internal error";
  }
  return "unknown status";
}
