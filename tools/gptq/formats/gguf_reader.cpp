#include "formats/gguf_reader.h"

#include <cstring>

#include "common/library_call.h"
#include "common/tool_error.h"
#include "formats/file_util.h"

namespace gptqtool {

namespace {

constexpr uint64_t kAlignment = 32;
constexpr uint32_t kU32 = 4, kString = 8, kArray = 9;

// Fixed sizes of GGUF's scalar value types (0..7 and 10..12); 8 string and
// 9 array have none.
uint64_t scalar_size(uint32_t type) {
  switch (type) {
    case 0: case 1: case 7: return 1;
    case 2: case 3: return 2;
    case 4: case 5: case 6: return 4;
    case 10: case 11: case 12: return 8;
    default: return 0;
  }
}

class Cursor {
 public:
  Cursor(const std::string &data, const std::string &path) : data_(data), path_(path) {}
  template <typename T>
  T get() {
    need(sizeof(T));
    T v;
    std::memcpy(&v, data_.data() + at_, sizeof(T));
    at_ += sizeof(T);
    return v;
  }
  std::string string() {
    const uint64_t n = get<uint64_t>();
    need(n);
    std::string s = data_.substr(at_, n);
    at_ += n;
    return s;
  }
  void skip(uint64_t n) {
    need(n);
    at_ += n;
  }
  void skip_value(uint32_t type, int depth = 0) {
    if (type == kString) {
      string();
    } else if (type == kArray) {
      if (depth > 2) throw ToolError(path_ + ": arrays nested too deep");
      const uint32_t elem = get<uint32_t>();
      const uint64_t count = get<uint64_t>();
      if (scalar_size(elem) > 0) {
        if (count > data_.size()) throw ToolError(path_ + ": an array's length is past the file");
        skip(count * scalar_size(elem));
      } else {
        for (uint64_t i = 0; i < count; ++i) skip_value(elem, depth + 1);
      }
    } else if (scalar_size(type) > 0) {
      skip(scalar_size(type));
    } else {
      throw ToolError(path_ + ": unknown metadata value type " + std::to_string(type));
    }
  }
  uint64_t at() const { return at_; }

 private:
  void need(uint64_t n) const {
    if (n > data_.size() - at_) throw ToolError(path_ + " is truncated (not a whole GGUF file)");
  }
  const std::string &data_;
  const std::string &path_;
  uint64_t at_ = 0;
};

}  // namespace

namespace {
const struct {
  uint32_t ggml;
  gptq_grid grid;
} kGrids[] = {{2, GPTQ_GRID_Q4_0},  {3, GPTQ_GRID_Q4_1},  {6, GPTQ_GRID_Q5_0},
              {7, GPTQ_GRID_Q5_1},  {8, GPTQ_GRID_Q8_0},  {12, GPTQ_GRID_Q4_K},
              {13, GPTQ_GRID_Q5_K}, {14, GPTQ_GRID_Q6_K}};
}  // namespace

std::vector<float> gguf_tensor_floats(const GgufTensorView &t) {
  int64_t elements = 1;
  for (int64_t n : t.ne) elements *= n;
  std::vector<float> out(static_cast<size_t>(elements));
  if (t.type == 0) {
    std::memcpy(out.data(), t.data, out.size() * sizeof(float));
    return out;
  }
  for (const auto &g : kGrids)
    if (g.ggml == t.type) {
      check_status(gptq_gguf_dequantize(g.grid, t.data, static_cast<int64_t>(t.bytes),
                                        elements / t.ne[0], t.ne[0], out.data(), elements),
                   "tensor " + t.name);
      return out;
    }
  throw ToolError("tensor " + t.name + " has GGML type " + std::to_string(t.type) +
                  ", which this tool does not decode");
}

uint64_t ggml_tensor_bytes(uint32_t type, int64_t rows, int64_t cols, const std::string &name) {
  if (type == 0) return static_cast<uint64_t>(rows * cols) * 4;
  if (type == 1) return static_cast<uint64_t>(rows * cols) * 2;
  for (const auto &g : kGrids)
    if (g.ggml == type) {
      int64_t bytes = 0;
      check_status(gptq_gguf_size(g.grid, rows, cols, &bytes), "tensor " + name);
      return static_cast<uint64_t>(bytes);
    }
  throw ToolError("tensor " + name + " has GGML type " + std::to_string(type) +
                  ", which this tool does not read (F32, F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, "
                  "Q4_K, Q5_K, Q6_K)");
}

GgufReader::GgufReader(const std::string &path) : path_(path), file_(read_text_file(path)) {
  Cursor c(file_, path_);
  if (file_.size() < 4 || file_.compare(0, 4, "GGUF") != 0)
    throw ToolError(path + " is not a GGUF file (no GGUF magic)");
  c.skip(4);
  const uint32_t version = c.get<uint32_t>();
  if (version != 3) throw ToolError(path + ": GGUF version " + std::to_string(version) + " (3 is read)");
  const uint64_t tensor_count = c.get<uint64_t>(), kv_count = c.get<uint64_t>();
  if (tensor_count > file_.size() || kv_count > file_.size())
    throw ToolError(path + ": tensor or key count past the file's size");
  for (uint64_t i = 0; i < kv_count; ++i) {
    const std::string key = c.string();
    const uint32_t type = c.get<uint32_t>();
    keys_[key] = type;
    if (type == kString) {
      strings_[key] = c.string();
    } else if (type == kU32) {
      u32s_[key] = c.get<uint32_t>();
    } else {
      c.skip_value(type);
    }
  }
  std::vector<uint64_t> offsets;
  for (uint64_t i = 0; i < tensor_count; ++i) {
    GgufTensorView t;
    t.name = c.string();
    const uint32_t dims = c.get<uint32_t>();
    if (dims < 1 || dims > 4) throw ToolError(path + ": tensor " + t.name + " has " + std::to_string(dims) + " dimensions");
    int64_t elements = 1;
    for (uint32_t d = 0; d < dims; ++d) {
      const uint64_t n = c.get<uint64_t>();
      if (n < 1 || n > (1ull << 31)) throw ToolError(path + ": tensor " + t.name + " has a dimension of " + std::to_string(n));
      t.ne.push_back(static_cast<int64_t>(n));
      // Checked before multiplying: 2^40 x 2^31 would wrap (to 0 for some
      // shapes, which passed the check after it; found by fuzz_gguf).
      if (static_cast<int64_t>(n) > (1ll << 40) / elements)
        throw ToolError(path + ": tensor " + t.name + " is too large");
      elements *= static_cast<int64_t>(n);
    }
    t.type = c.get<uint32_t>();
    offsets.push_back(c.get<uint64_t>());
    t.bytes = ggml_tensor_bytes(t.type, elements / t.ne[0], t.ne[0], t.name);
    tensors_.push_back(std::move(t));
  }
  uint64_t alignment = kAlignment;
  if (u32s_.count("general.alignment")) alignment = u32s_["general.alignment"];
  if (alignment == 0) throw ToolError(path + ": general.alignment is 0");
  const uint64_t data_start = (c.at() + alignment - 1) / alignment * alignment;
  for (size_t i = 0; i < tensors_.size(); ++i) {
    if (offsets[i] > file_.size() || data_start + offsets[i] > file_.size() ||
        tensors_[i].bytes > file_.size() - data_start - offsets[i])
      throw ToolError(path + ": tensor " + tensors_[i].name + " lies past the end of the file");
    tensors_[i].data = reinterpret_cast<const uint8_t *>(file_.data()) + data_start + offsets[i];
  }
}

std::string GgufReader::string_value(const std::string &key) const {
  const auto it = strings_.find(key);
  if (it == strings_.end()) throw ToolError(path_ + " has no string " + key);
  return it->second;
}

uint32_t GgufReader::u32_value(const std::string &key) const {
  const auto it = u32s_.find(key);
  if (it == u32s_.end()) throw ToolError(path_ + " has no uint32 " + key);
  return it->second;
}

}  // namespace gptqtool
