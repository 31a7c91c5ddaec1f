#include "common/interrupt.h"

#include <csignal>

#include "common/tool_error.h"

namespace gptqtool {

namespace {

std::atomic<bool> g_interrupted{false};
std::atomic<int> g_signal{0};

extern "C" void on_signal(int sig) {
  int none = 0;
  g_signal.compare_exchange_strong(none, sig);  // the first signal names the exit status
  if (g_interrupted.exchange(true)) {
    std::signal(sig, SIG_DFL);
    std::raise(sig);
  }
}

}  // namespace

const std::atomic<bool> *install_interrupt_handler() {
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  std::signal(SIGXFSZ, SIG_IGN);
  return &g_interrupted;
}

bool interrupt_requested() { return g_interrupted.load(std::memory_order_relaxed); }

int interrupt_signal() { return g_signal.load(); }

void throw_if_interrupted() {
  if (interrupt_requested()) throw ToolError("interrupted");
}

void set_interrupted_for_testing(bool on) {
  g_interrupted.store(on);
  g_signal.store(on ? SIGINT : 0);
}

}  // namespace gptqtool
