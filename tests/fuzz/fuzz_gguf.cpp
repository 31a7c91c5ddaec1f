// libFuzzer harness: the GGUF reader (tools/gptq/formats/gguf_reader, what
// `gptq eval --gguf` opens, a file that may come from anywhere) on arbitrary
// bytes, through an in-memory file. A file the reader accepts must keep its
// promises: every tensor's bytes can be read, and a tensor of a type the
// tool decodes decodes into exactly rows × cols floats.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "common/tool_error.h"
#include "formats/gguf_reader.h"

using namespace gptqtool;

namespace {

int memory_file() {
  static const int fd = memfd_create("fuzz_gguf", 0);
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
