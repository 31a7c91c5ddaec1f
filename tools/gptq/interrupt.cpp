#include "interrupt.h"

#include <csignal>

namespace gptqtool {

namespace {

std::atomic<bool> g_interrupted{false};

extern "C" void on_signal(int sig) {
  if (g_interrupted.exchange(true)) {
    std::signal(sig, SIG_DFL);
    std::raise(sig);
  }
}

}  // namespace

const std::atomic<bool> *install_interrupt_handler() {
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  // A write beyond the file-size limit (ulimit -f) would kill the process
  // with no message and leave its temporary files; ignored, the write fails
  // with EFBIG ("File too large"), which is reported and cleaned up.
  std::signal(SIGXFSZ, SIG_IGN);
  return &g_interrupted;
}

}  // namespace gptqtool
