// Reading a GGUF file back (what formats/gguf_file.h writes, or llama.cpp's
// own): its metadata keys and value types, and each tensor's name, shape,
// GGML type and bytes. The whole file is read into memory once.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace gptqtool {

struct GgufTensorView {
  std::string name;
  std::vector<int64_t> ne;  // GGUF order: ne[0] is the row length
  uint32_t type = 0;        // GGML type number
  const uint8_t *data = nullptr;
  uint64_t bytes = 0;
};

class GgufReader {
 public:
  // Throws ToolError naming the file and what is malformed or truncated.
  explicit GgufReader(const std::string &path);

  const std::vector<GgufTensorView> &tensors() const { return tensors_; }
  // Metadata value types by key (GGUF's numbers: 4 uint32, 8 string, 9 array, ...).
  const std::map<std::string, uint32_t> &keys() const { return keys_; }
  // A string or uint32 value; throws ToolError when the key is absent or
  // of another type.
  std::string string_value(const std::string &key) const;
  uint32_t u32_value(const std::string &key) const;

 private:
  std::string path_;
  std::string file_;
  std::map<std::string, uint32_t> keys_;
  std::map<std::string, std::string> strings_;
  std::map<std::string, uint32_t> u32s_;
  std::vector<GgufTensorView> tensors_;
};

// Bytes of a tensor of GGML type `type` with ne[0] = cols and `rows` rows,
// for the types the tool reads (F32, F16 and the GGUF grids); throws
// ToolError for others.
uint64_t ggml_tensor_bytes(uint32_t type, int64_t rows, int64_t cols, const std::string &name);

// A tensor's values as float32 (F32 copied, GGUF blocks decoded by the
// library as llama.cpp dequantizes them); throws ToolError for other types.
std::vector<float> gguf_tensor_floats(const GgufTensorView &t);

}  // namespace gptqtool
