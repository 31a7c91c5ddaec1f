// libFuzzer harness: structured calibration data (formats/calibration_
// records: JSON Lines or a JSON array, `gptq quantize --calib-jsonl`) on
// arbitrary bytes, through an in-memory file. Accepted records are text or
// chat records, never both, and carry the line they started on.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "common/tool_error.h"
#include "formats/calibration_records.h"

using namespace gptqtool;

namespace {

int memory_file() {
  static const int fd = memfd_create("fuzz_calib_records", 0);
  if (fd < 0) {
    std::perror("memfd_create");
    std::abort();
  }
  return fd;
}

void write_all(int fd, const uint8_t *data, size_t size) {
  if (ftruncate(fd, 0) != 0 || ftruncate(fd, static_cast<off_t>(size)) != 0) std::abort();
  size_t done = 0;
  while (done < size) {
    const ssize_t n = pwrite(fd, data + done, size - done, static_cast<off_t>(done));
    if (n <= 0) std::abort();
    done += static_cast<size_t>(n);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const int fd = memory_file();
  write_all(fd, data, size);
  const std::string path = "/proc/self/fd/" + std::to_string(fd);
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
