// Internal error type. Everything below the API layer reports failure by
// throwing gptq::Error; src/api.cpp catches it at the C boundary and turns it
// into a status plus the thread-local message.
#pragma once

#include <stdexcept>
#include <string>

#include "gptq.h"

namespace gptq {

class Error : public std::runtime_error {
 public:
  Error(gptq_status status, const std::string &message)
      : std::runtime_error(message), status_(status) {}
  gptq_status status() const { return status_; }

 private:
  gptq_status status_;
};

// Sets the calling thread's last-error message (what gptq_last_error returns).
void set_last_error(const std::string &message);

}  // namespace gptq
