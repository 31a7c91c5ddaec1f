// Ctrl-C handling: the first SIGINT (or SIGTERM) only raises a flag that
// every long phase polls (tokenizing, decompressing, loading a model, each
// block of a forward pass, each layer, each window batch, each tensor and
// file written, and gptq_quantize through its progress callback), so the
// run stops at the next check and removes what it had started writing. A
// second one ends the process at once. SIGXFSZ is ignored, so that a write
// past the file-size limit fails with an error that is reported and
// cleaned up.
#pragma once

#include <atomic>

namespace gptqtool {

const std::atomic<bool> *install_interrupt_handler();

// Whether a signal has asked the run to stop, and which (0 if none).
bool interrupt_requested();
int interrupt_signal();
// Throws ToolError("interrupted") once a signal has asked the run to stop.
void throw_if_interrupted();

// Tests raise and clear the flag as a signal would.
void set_interrupted_for_testing(bool on);

}  // namespace gptqtool
