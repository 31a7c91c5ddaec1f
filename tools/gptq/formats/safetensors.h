// The safetensors file format: an 8-byte little-endian header length, a JSON
// header naming each tensor's dtype, shape and byte range, then the raw
// little-endian data. SafetensorsFile reads one file through a read-only
// memory mapping (a model's weights are tens of GB; nothing is copied until
// a tensor is asked for) and refuses, with the file and tensor named, any
// header that does not describe the bytes that follow it. SafetensorsWriter
// builds a file in memory and writes it out whole.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace gptqtool {

// Only the dtypes a LLaMA-family checkpoint (float weights, GPTQ integer
// codes) can contain; any other dtype in a header is refused by name.
enum class TensorDType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };

const char *dtype_name(TensorDType dtype);  // "F32", ... as the format spells them
size_t dtype_size(TensorDType dtype);       // bytes per element

struct TensorInfo {
  std::string name;
  TensorDType dtype = TensorDType::F32;
  std::vector<int64_t> shape;
  uint64_t offset = 0;  // byte offset of the data from the start of the data section
  uint64_t nbytes = 0;
  int64_t numel() const;
};

// "[4096, 11008]"; for error messages.
std::string shape_string(const std::vector<int64_t> &shape);

class SafetensorsFile {
 public:
  // Maps and validates the whole header; throws ToolError.
  static std::unique_ptr<SafetensorsFile> open(const std::string &path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile &) = delete;
  SafetensorsFile &operator=(const SafetensorsFile &) = delete;

  const std::string &path() const { return path_; }
  const std::vector<TensorInfo> &tensors() const { return tensors_; }  // in header order
  const TensorInfo *find(const std::string &name) const;              // nullptr if absent
  // Pointer into the mapping, valid while this object lives. Not aligned:
  // the header length is arbitrary, so read through memcpy.
  const uint8_t *data(const TensorInfo &t) const;
  // Lets go of the pages of the mapping this process has read, so that
  // tensors already copied out stop counting in its resident memory; the
  // file is untouched and a later read pages it in again.
  void release_pages() const;
  const std::map<std::string, std::string> &metadata() const { return metadata_; }

 private:
  SafetensorsFile() = default;

  std::string path_;
  void *map_ = nullptr;
  size_t map_size_ = 0;
  const uint8_t *data_section_ = nullptr;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> index_;  // name -> position in tensors_
  std::map<std::string, std::string> metadata_;
};

// F64/F32/F16/BF16 as float32: exact for F16 and BF16, F64 rounded to
// nearest. Any other dtype throws a ToolError naming the tensor.
std::vector<float> to_float32(const SafetensorsFile &f, const TensorInfo &t);

class SafetensorsWriter {
 public:
  void set_metadata(const std::string &key, const std::string &value);
  // Takes the raw little-endian bytes; bytes.size() must equal
  // numel * dtype_size, and each name may be added once (throws otherwise).
  void add(const std::string &name, TensorDType dtype, std::vector<int64_t> shape,
           std::vector<uint8_t> bytes);
  // Writes the file (header padded with spaces to a multiple of 8 bytes, so
  // that the data section starts aligned; tensors in insertion order, data
  // contiguous), then fsyncs it. Throws ToolError with strerror on any I/O
  // failure, after removing the partial file.
  void write(const std::string &path) const;
  size_t size() const { return tensors_.size(); }  // number of tensors
  uint64_t data_bytes() const { return data_bytes_; }  // the tensors' bytes, header excluded
  std::vector<std::string> names() const;             // in insertion order

 private:
  struct Pending {
    std::string name;
    TensorDType dtype;
    std::vector<int64_t> shape;
    std::vector<uint8_t> bytes;
  };
  std::vector<Pending> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
  uint64_t data_bytes_ = 0;
};

}  // namespace gptqtool
