// libFuzzer harness: the GGUF reader (tools/gptq/formats/gguf_reader, what
// `gptq eval --gguf` opens, a file that may come from anywhere) on arbitrary
// bytes, through an in-memory file. A file the reader accepts must keep its
// promises: every tensor's bytes can be read, and a tensor of a type the
// tool decodes decodes into exactly rows × cols floats.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "common/tool_error.h"
#include "formats/gguf_reader.h"
#include "memory_file.h"

using namespace gptqtool;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string path = fuzzing::write_memory_file(data, size);
  try {
    const GgufReader file(path);
    for (const auto &key : file.keys()) {
      try {  // typed lookups refuse a key of another type with a ToolError
        if (key.second == 8) (void)file.string_value(key.first);
        if (key.second == 4) (void)file.u32_value(key.first);
      } catch (const ToolError &) {
        std::abort();  // the key's recorded type said it would work
      }
    }
    for (const GgufTensorView &t : file.tensors()) {
      volatile uint8_t sink = 0;
      for (uint64_t i = 0; i < t.bytes; ++i) sink = sink ^ t.data[i];  // ASan checks each read
      int64_t elements = 1;
      for (int64_t d : t.ne) {
        if (d < 0) std::abort();
        if (d != 0 && elements > INT64_MAX / d) return 0;  // the decoder must refuse it below
        elements *= d;
      }
      try {
        const std::vector<float> values = gguf_tensor_floats(t);
        if (static_cast<int64_t>(values.size()) != elements) std::abort();
      } catch (const ToolError &) {
        // A type the tool does not decode, or a size the library refuses.
      }
    }
  } catch (const ToolError &) {
    // A clear refusal is the expected outcome for most inputs.
  }
  return 0;
}
