// libFuzzer harness: the safetensors reader (tools/gptq/formats/safetensors)
// on arbitrary bytes. The input is written to an in-memory file (memfd) and
// opened through its /proc path, as the tool opens a model's files. A file
// the reader accepts must keep its promises: every tensor's bytes lie inside
// the mapping and convert to float32 without reading past them.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "common/tool_error.h"
#include "formats/safetensors.h"
#include "memory_file.h"

using namespace gptqtool;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string path = fuzzing::write_memory_file(data, size);
  try {
    auto file = SafetensorsFile::open(path);
    // Accepted: the file starts with the header's length, little-endian.
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; --i) header_len = header_len << 8 | data[i];
    const uint64_t data_size = size - 8 - header_len;
    for (const TensorInfo &t : file->tensors()) {
      // The reader's own invariants, checked here so a violation is a crash.
      if (t.offset > data_size || t.nbytes > data_size - t.offset) std::abort();
      if (static_cast<uint64_t>(t.numel()) * dtype_size(t.dtype) != t.nbytes) std::abort();
      if (file->find(t.name) == nullptr) std::abort();
      const uint8_t *bytes = file->data(t);
      volatile uint8_t sink = 0;
      for (uint64_t i = 0; i < t.nbytes; ++i) sink = sink ^ bytes[i];  // ASan checks each read
      if (t.dtype == TensorDType::F32 || t.dtype == TensorDType::F16 || t.dtype == TensorDType::BF16) {
        const std::vector<float> values = to_float32(*file, t);
        if (static_cast<int64_t>(values.size()) != t.numel()) std::abort();
      }
    }
  } catch (const ToolError &) {
    // A clear refusal is the expected outcome for most inputs.
  }
  return 0;
}
