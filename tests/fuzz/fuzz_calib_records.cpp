// libFuzzer harness: structured calibration data (formats/calibration_
// records: JSON Lines or a JSON array, `gptq quantize --calib-jsonl`) on
// arbitrary bytes, through an in-memory file. Accepted records are text or
// chat records, never both, and carry the line they started on.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "common/tool_error.h"
#include "formats/calibration_records.h"
#include "memory_file.h"

using namespace gptqtool;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string path = fuzzing::write_memory_file(data, size);
  try {
    const std::vector<CalibrationRecord> records = read_calibration_records(path, "text");
    if (records.empty()) std::abort();  // an empty set is refused, not returned
    for (const CalibrationRecord &r : records) {
      if (r.line < 1) std::abort();
      if (r.chat != !r.messages.empty()) std::abort();  // a chat record has messages
      if (r.chat && !r.text.empty()) std::abort();
    }
    (void)any_chat_record(records);
  } catch (const ToolError &) {
    // A clear refusal is the expected outcome for most inputs.
  }
  return 0;
}
