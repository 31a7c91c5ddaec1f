// Ctrl-C handling: the first SIGINT (or SIGTERM) only raises a flag that the
// long loops poll (between blocks, windows and files, and inside
// gptq_quantize through its progress callback), so the run stops at the next
// check and removes what it had started writing. A second one ends the
// process at once. SIGXFSZ is ignored, so that a write past the file-size
// limit fails with an error that is reported and cleaned up.
#pragma once

#include <atomic>

namespace gptqtool {

const std::atomic<bool> *install_interrupt_handler();

}  // namespace gptqtool
