// Writing a GGUF file (llama.cpp's model format, version 3): key-value
// metadata, then tensor descriptions, then the tensors' bytes, each aligned
// to 32 bytes. Tensors are described up front (name, shape, GGML type,
// size) and their bytes produced one at a time while the file is written,
// so a model is never held twice in memory. The file appears whole or not
// at all: it is written under a temporary name beside the target, synced,
// and renamed into place.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace gptqtool {

// GGML tensor types the tool writes (ggml.h's ggml_type numbers).
enum class GgmlType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
};

class GgufFile {
 public:
  void add_string(const std::string &key, const std::string &value);
  void add_u32(const std::string &key, uint32_t value);
  void add_i32(const std::string &key, int32_t value);
  void add_f32(const std::string &key, float value);
  void add_bool(const std::string &key, bool value);
  void add_string_array(const std::string &key, const std::vector<std::string> &values);
  void add_i32_array(const std::string &key, const std::vector<int32_t> &values);

  // A tensor of shape ne (GGUF order: ne[0] is the fastest-varying
  // dimension, the column count of a matrix), `bytes` long; `produce` is
  // called once, while the file is written, and must return exactly that
  // many bytes.
  void add_tensor(const std::string &name, const std::vector<int64_t> &ne, GgmlType type,
                  uint64_t bytes, std::function<std::string()> produce);

  size_t tensor_count() const { return tensors_.size(); }

  // Writes the file atomically (see above). Throws ToolError; on failure,
  // an interrupt included, `path` is left as it was and no temporary file
  // remains.
  void write(const std::string &path, const std::atomic<bool> *interrupted) const;

 private:
  struct Tensor {
    std::string name;
    std::vector<int64_t> ne;
    GgmlType type;
    uint64_t bytes;
    std::function<std::string()> produce;
  };
  void add_key(const std::string &key, uint32_t value_type);

  std::string kv_;  // the metadata, already encoded
  uint64_t kv_count_ = 0;
  std::vector<Tensor> tensors_;
};

}  // namespace gptqtool
