// Writes every tensor of a GGUF file as float32, decoded by the tool's
// reader and the library (as llama.cpp dequantizes), one raw little-endian
// file OUTDIR/<tensor name>.f32 each, for check_gguf.py to compare with the
// gguf package's own dequantization:
//   dump_gguf FILE.gguf OUTDIR
#include <cstdio>
#include <fstream>

#include "formats/gguf_reader.h"

int main(int argc, char **argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: dump_gguf FILE.gguf OUTDIR\n");
    return 2;
  }
  try {
    gptqtool::GgufReader reader(argv[1]);
    for (const gptqtool::GgufTensorView &t : reader.tensors()) {
      const std::vector<float> values = gptqtool::gguf_tensor_floats(t);
      std::ofstream out(std::string(argv[2]) + "/" + t.name + ".f32", std::ios::binary);
      out.write(reinterpret_cast<const char *>(values.data()),
                static_cast<std::streamsize>(values.size() * sizeof(float)));
      if (!out) throw std::runtime_error("cannot write " + t.name);
    }
  } catch (const std::exception &e) {
    std::fprintf(stderr, "dump_gguf: %s\n", e.what());
    return 1;
  }
  return 0;
}
