#include "common/json_number.h"

#include <limits>

#include "common/tool_error.h"

namespace gptqtool {

int64_t json_integer(const nlohmann::json &v, int64_t lo, int64_t hi, const std::string &what) {
  auto out_of_range = [&]() {
    const std::string range = hi == std::numeric_limits<int64_t>::max()
                                  ? ">= " + std::to_string(lo)
                                  : "in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
    return ToolError(what + " is " + v.dump() + "; it must be " + range);
  };
  if (!v.is_number_integer()) throw ToolError(what + " is " + v.dump() + ", not an integer");
  // nlohmann keeps integers above INT64_MAX as unsigned; read each kind as
  // itself so that no conversion can wrap.
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (hi < 0 || u > static_cast<uint64_t>(hi)) throw out_of_range();
    const auto x = static_cast<int64_t>(u);
    if (x < lo) throw out_of_range();
    return x;
  }
  const int64_t x = v.get<int64_t>();
  if (x < lo || x > hi) throw out_of_range();
  return x;
}

}  // namespace gptqtool
