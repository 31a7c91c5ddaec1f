// The one exception type of the gptq command-line tool. Every failure the
// user can cause (a missing file, a lying header, an unsupported model)
// becomes a ToolError whose message names the file or tensor and the reason;
// main() prints it and exits non-zero. Library statuses are converted into it
// with the library's own message (see library_call.h).
#pragma once

#include <stdexcept>
#include <string>

namespace gptqtool {

class ToolError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace gptqtool
