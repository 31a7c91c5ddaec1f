// Sizes built from numbers a file supplied (config.json dimensions, token
// counts). Their products are formed with overflow checks: a crafted
// config must never wrap a size into a small one that passes a shape check
// and then indexes past a buffer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "common/tool_error.h"

namespace gptqtool {

// a · b for non-negative a and b; throws ToolError naming `what` when the
// product does not fit in int64.
inline int64_t checked_mul(int64_t a, int64_t b, const std::string &what) {
  int64_t r = 0;
  if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &r)) {
    throw ToolError(what + ": " + std::to_string(a) + " x " + std::to_string(b) +
                    " is negative or does not fit in 64 bits");
  }
  return r;
}

// The element count of a buffer of the given dimensions, checked as above.
inline size_t checked_elements(std::initializer_list<int64_t> dims, const char *what) {
  int64_t n = 1;
  for (int64_t d : dims) n = checked_mul(n, d, what);
  return static_cast<size_t>(n);
}

}  // namespace gptqtool
