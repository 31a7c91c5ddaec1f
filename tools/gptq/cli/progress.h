// Progress reporting on stderr: a redrawn bar when stderr is a terminal,
// plain lines (at most one per 10%) when it is not, so logs stay readable.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace gptqtool {

class Progress {
 public:
  Progress(std::string label, int64_t total, std::string unit, bool enabled = true);
  ~Progress();
  void update(int64_t done);
  void finish();  // final state and newline (idempotent)

 private:
  void draw(bool final);
  std::string label_, unit_;
  int64_t total_, done_ = 0;
  bool tty_, enabled_, finished_ = false;
  int last_decile_ = -1;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

// Whether stderr is an interactive terminal.
bool stderr_is_terminal();

}  // namespace gptqtool
