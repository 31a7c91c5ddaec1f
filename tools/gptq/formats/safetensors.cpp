// Reading validates the header completely before any tensor is handed out:
// a truncated download or a header that lies about sizes must be a clear
// error naming the file and tensor, never a read past the mapping.
#include "formats/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>

#include <nlohmann/json.hpp>

#include "common/interrupt.h"
#include "common/json_number.h"
#include "common/tool_error.h"
#include "formats/float_formats.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian; this reader assumes a little-endian host"
#endif

namespace gptqtool {
namespace {

// A real header (names, shapes and offsets of a few thousand tensors) is a
// few hundred KB; anything this large is a corrupt length field, and
// refusing it avoids handing gigabytes of binary to the JSON parser.
constexpr uint64_t kMaxHeaderBytes = 100ull * 1000 * 1000;

// 2^128 - 2^103: FLT_MAX plus half its ulp, where rounding reaches infinity.
constexpr double kFloatOverflow = 0x1.ffffffp127;

struct DTypeEntry {
  TensorDType dtype;
  const char *name;
  size_t size;
};

constexpr DTypeEntry kDTypes[] = {
    {TensorDType::F64, "F64", 8}, {TensorDType::F32, "F32", 4}, {TensorDType::F16, "F16", 2},
    {TensorDType::BF16, "BF16", 2}, {TensorDType::I64, "I64", 8}, {TensorDType::I32, "I32", 4},
    {TensorDType::I16, "I16", 2}, {TensorDType::I8, "I8", 1}, {TensorDType::U8, "U8", 1},
    {TensorDType::BOOL, "BOOL", 1},
};

const DTypeEntry &entry_of(TensorDType dtype) {
  for (const auto &e : kDTypes) {
    if (e.dtype == dtype) return e;
  }
  throw ToolError("internal error: unknown TensorDType " +
                  std::to_string(static_cast<int>(dtype)));
}

bool dtype_from_name(const std::string &name, TensorDType *out) {
  for (const auto &e : kDTypes) {
    if (name == e.name) {
      *out = e.dtype;
      return true;
    }
  }
  return false;
}

std::string supported_dtypes() {
  std::string s;
  for (const auto &e : kDTypes) {
    if (!s.empty()) s += ", ";
    s += e.name;
  }
  return s;
}

// numel of a shape, or false if a dimension is negative or the product does
// not fit in int64. A zero dimension makes the tensor empty whatever the rest.
bool checked_numel(const std::vector<int64_t> &shape, int64_t *out) {
  for (int64_t d : shape) {
    if (d < 0) return false;
    if (d == 0) {
      *out = 0;
      return true;
    }
  }
  int64_t n = 1;
  for (int64_t d : shape) {
    if (__builtin_mul_overflow(n, d, &n)) return false;
  }
  *out = n;
  return true;
}

// numel * element size in bytes, or false on overflow.
bool checked_nbytes(const std::vector<int64_t> &shape, TensorDType dtype, uint64_t *out) {
  int64_t numel = 0;
  if (!checked_numel(shape, &numel)) return false;
  return !__builtin_mul_overflow(static_cast<uint64_t>(numel),
                                 static_cast<uint64_t>(dtype_size(dtype)), out);
}

// The tensor entry of a header: {"dtype": "F16", "shape": [..], "data_offsets": [b, e]}.
TensorInfo parse_entry(const std::string &path, const std::string &name,
                       const nlohmann::ordered_json &entry, uint64_t data_size) {
  const std::string where = path + ": tensor " + name;
  if (!entry.is_object()) {
    throw ToolError(where + ": header entry is not a JSON object");
  }
  for (const char *key : {"dtype", "shape", "data_offsets"}) {
    if (!entry.contains(key)) throw ToolError(where + ": header entry has no \"" + key + "\"");
  }
  const auto &jdtype = entry["dtype"];
  if (!jdtype.is_string()) throw ToolError(where + ": \"dtype\" is not a string");
  TensorInfo t;
  t.name = name;
  const std::string dtype_str = jdtype.get<std::string>();
  if (!dtype_from_name(dtype_str, &t.dtype)) {
    throw ToolError(where + ": unknown dtype \"" + dtype_str + "\" (supported: " +
                    supported_dtypes() + ")");
  }

  const auto &jshape = entry["shape"];
  if (!jshape.is_array()) throw ToolError(where + ": \"shape\" is not an array");
  for (const auto &d : jshape) {
    if (d.is_number_unsigned() &&
        d.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      throw ToolError(where + ": dimension " + d.dump() + " is too large (numel overflow)");
    }
    t.shape.push_back(json_integer(d, std::numeric_limits<int64_t>::min(),
                                   std::numeric_limits<int64_t>::max(),
                                   where + ": a dimension of \"shape\""));
  }
  for (int64_t d : t.shape) {
    if (d < 0) {
      throw ToolError(where + ": shape " + shape_string(t.shape) + " has a negative dimension");
    }
  }
  uint64_t expected_bytes = 0;
  if (!checked_nbytes(t.shape, t.dtype, &expected_bytes)) {
    throw ToolError(where + ": shape " + shape_string(t.shape) +
                    " is too large (numel overflow)");
  }

  const auto &joff = entry["data_offsets"];
  if (!joff.is_array() || joff.size() != 2 || !joff[0].is_number_unsigned() ||
      !joff[1].is_number_unsigned()) {
    throw ToolError(where + ": \"data_offsets\" must be two non-negative integers, got " +
                    joff.dump());
  }
  const uint64_t begin = joff[0].get<uint64_t>();
  const uint64_t end = joff[1].get<uint64_t>();
  if (begin > end) {
    throw ToolError(where + ": data_offsets [" + std::to_string(begin) + ", " +
                    std::to_string(end) + "] begin after they end");
  }
  if (end - begin != expected_bytes) {
    throw ToolError(where + ": header says shape " + shape_string(t.shape) + " of " +
                    dtype_str + " = " + std::to_string(expected_bytes) +
                    " bytes but data_offsets span " + std::to_string(end - begin));
  }
  if (end > data_size) {
    throw ToolError(path + ": file is truncated: tensor " + name + " needs bytes up to " +
                    std::to_string(end) + " of the data section, the file has " +
                    std::to_string(data_size));
  }
  t.offset = begin;
  t.nbytes = end - begin;
  return t;
}

uint16_t load_u16(const uint8_t *p) {
  return static_cast<uint16_t>(p[0] | (p[1] << 8));
}

// Writes all of `size` bytes, retrying short writes and EINTR.
bool write_all(int fd, const uint8_t *p, size_t size) {
  while (size > 0) {
    const ssize_t n = ::write(fd, p, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

const char *dtype_name(TensorDType dtype) { return entry_of(dtype).name; }

size_t dtype_size(TensorDType dtype) { return entry_of(dtype).size; }

int64_t TensorInfo::numel() const {
  int64_t n = 0;
  if (!checked_numel(shape, &n)) {
    throw ToolError("tensor " + name + ": shape " + shape_string(shape) +
                    " has a negative dimension or too many elements");
  }
  return n;
}

std::string shape_string(const std::vector<int64_t> &shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

std::unique_ptr<SafetensorsFile> SafetensorsFile::open(const std::string &path) {
  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;

  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw ToolError(path + ": cannot open: " + std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    throw ToolError(path + ": cannot stat: " + std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw ToolError(path + ": not a regular file");
  }
  const uint64_t file_size = static_cast<uint64_t>(st.st_size);
  if (file_size < 8) {
    ::close(fd);
    throw ToolError(path + ": file is " + std::to_string(file_size) +
                    " bytes, shorter than the 8-byte header length of a safetensors file");
  }
  // MAP_PRIVATE + PROT_READ: the file is never written through the mapping,
  // and the kernel pages weights in only as tensors are read.
  void *map = ::mmap(nullptr, static_cast<size_t>(file_size), PROT_READ, MAP_PRIVATE, fd, 0);
  const int map_errno = errno;
  ::close(fd);  // the mapping keeps the file open
  if (map == MAP_FAILED) throw ToolError(path + ": cannot mmap: " + std::strerror(map_errno));
  file->map_ = map;
  file->map_size_ = static_cast<size_t>(file_size);
  const uint8_t *bytes = static_cast<const uint8_t *>(map);

  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[i];
  if (header_len > kMaxHeaderBytes) {
    throw ToolError(path + ": header length " + std::to_string(header_len) +
                    " bytes is absurd (over 100 MB); not a safetensors file or corrupt");
  }
  if (header_len > file_size - 8) {
    throw ToolError(path + ": header length " + std::to_string(header_len) +
                    " bytes is larger than the file (" + std::to_string(file_size) +
                    " bytes); truncated or not a safetensors file");
  }
  const char *header = reinterpret_cast<const char *>(bytes + 8);
  file->data_section_ = bytes + 8 + header_len;
  const uint64_t data_size = file_size - 8 - header_len;

  // ordered_json keeps the header's order, which tensors() promises.
  nlohmann::ordered_json root;
  try {
    root = nlohmann::ordered_json::parse(header, header + header_len);
  } catch (const nlohmann::json::exception &e) {
    throw ToolError(path + ": header is not valid JSON: " + e.what());
  }
  if (!root.is_object()) throw ToolError(path + ": header is not a JSON object");

  for (auto it = root.begin(); it != root.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it.value().is_object()) {
        throw ToolError(path + ": \"__metadata__\" is not a JSON object");
      }
      for (auto m = it.value().begin(); m != it.value().end(); ++m) {
        if (!m.value().is_string()) {
          throw ToolError(path + ": metadata \"" + m.key() + "\" is not a string");
        }
        file->metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    file->index_[it.key()] = file->tensors_.size();
    file->tensors_.push_back(parse_entry(path, it.key(), it.value(), data_size));
  }

  // Two tensors sharing bytes would alias silently; the format forbids it.
  std::vector<const TensorInfo *> by_offset;
  for (const auto &t : file->tensors_) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(), [](const TensorInfo *a, const TensorInfo *b) {
    return a->offset != b->offset ? a->offset < b->offset : a->nbytes < b->nbytes;
  });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const TensorInfo &prev = *by_offset[i - 1];
    const TensorInfo &cur = *by_offset[i];
    if (cur.offset < prev.offset + prev.nbytes) {
      throw ToolError(path + ": tensors " + prev.name + " (bytes " +
                      std::to_string(prev.offset) + ".." +
                      std::to_string(prev.offset + prev.nbytes) + ") and " + cur.name +
                      " (bytes " + std::to_string(cur.offset) + ".." +
                      std::to_string(cur.offset + cur.nbytes) + ") overlap");
    }
  }
  return file;
}

void SafetensorsFile::release_pages() const {
  // A private, read-only mapping that was never written: dropping its pages
  // loses nothing (MADV_DONTNEED refills them from the file).
  if (map_) ::madvise(map_, map_size_, MADV_DONTNEED);
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(map_, map_size_);
}

const TensorInfo *SafetensorsFile::find(const std::string &name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

const uint8_t *SafetensorsFile::data(const TensorInfo &t) const { return data_section_ + t.offset; }

std::vector<float> to_float32(const SafetensorsFile &f, const TensorInfo &t) {
  const uint8_t *p = f.data(t);
  const size_t n = static_cast<size_t>(t.numel());
  std::vector<float> out(n);
  switch (t.dtype) {
    case TensorDType::F32:
      if (n) std::memcpy(out.data(), p, n * sizeof(float));
      return out;
    case TensorDType::F64:
      for (size_t i = 0; i < n; ++i) {
        double d;
        std::memcpy(&d, p + 8 * i, sizeof d);
        // Converting a double beyond float's range is undefined in C++; from
        // FLT_MAX + half an ulp up, round to nearest gives infinity.
        if (std::fabs(d) >= kFloatOverflow) {
          out[i] = std::signbit(d) ? -std::numeric_limits<float>::infinity()
                                   : std::numeric_limits<float>::infinity();
        } else {
          out[i] = static_cast<float>(d);
        }
      }
      return out;
    case TensorDType::F16:
      for (size_t i = 0; i < n; ++i) out[i] = f16_to_float(load_u16(p + 2 * i));
      return out;
    case TensorDType::BF16:
      for (size_t i = 0; i < n; ++i) out[i] = bf16_to_float(load_u16(p + 2 * i));
      return out;
    default:
      throw ToolError(f.path() + ": tensor " + t.name + " has dtype " + dtype_name(t.dtype) +
                      "; expected a float dtype (F64, F32, F16 or BF16)");
  }
}

void SafetensorsWriter::set_metadata(const std::string &key, const std::string &value) {
  metadata_[key] = value;
}

void SafetensorsWriter::add(const std::string &name, TensorDType dtype, std::vector<int64_t> shape,
                            std::vector<uint8_t> bytes) {
  if (name.empty()) throw ToolError("safetensors writer: a tensor name may not be empty");
  if (name == "__metadata__") {
    throw ToolError("safetensors writer: \"__metadata__\" is reserved, not a tensor name");
  }
  if (index_.count(name)) {
    throw ToolError("safetensors writer: tensor " + name + " added twice");
  }
  uint64_t expected = 0;
  if (!checked_nbytes(shape, dtype, &expected)) {
    throw ToolError("safetensors writer: tensor " + name + ": shape " + shape_string(shape) +
                    " has a negative dimension or too many elements");
  }
  if (bytes.size() != expected) {
    throw ToolError("safetensors writer: tensor " + name + ": shape " + shape_string(shape) +
                    " of " + dtype_name(dtype) + " needs " + std::to_string(expected) +
                    " bytes, got " + std::to_string(bytes.size()));
  }
  index_[name] = tensors_.size();
  data_bytes_ += bytes.size();
  tensors_.push_back(Pending{name, dtype, std::move(shape), std::move(bytes)});
}

std::vector<std::string> SafetensorsWriter::names() const {
  std::vector<std::string> out;
  out.reserve(tensors_.size());
  for (const auto &t : tensors_) out.push_back(t.name);
  return out;
}

void SafetensorsWriter::write(const std::string &path) const {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata_.empty()) header["__metadata__"] = metadata_;
  uint64_t offset = 0;
  for (const auto &t : tensors_) {
    nlohmann::ordered_json entry;
    entry["dtype"] = dtype_name(t.dtype);
    entry["shape"] = t.shape;
    entry["data_offsets"] = {offset, offset + t.bytes.size()};
    header[t.name] = std::move(entry);
    offset += t.bytes.size();
  }
  std::string text = header.dump();
  // Padding keeps the data section 8-byte aligned for readers that map it
  // and cast; the format allows trailing spaces in the header.
  text.append((8 - text.size() % 8) % 8, ' ');
  uint8_t len_bytes[8];
  uint64_t len = text.size();
  for (int i = 0; i < 8; ++i) len_bytes[i] = static_cast<uint8_t>(len >> (8 * i));

  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) throw ToolError(path + ": cannot create: " + std::strerror(errno));
  // Only a regular file is ours to remove on failure (or to fsync): an
  // output of /dev/null must not unlink /dev/null.
  struct stat st;
  const bool regular = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
  auto fail = [&](const char *what, int err, bool close_fd) {
    if (close_fd) ::close(fd);
    if (regular) ::unlink(path.c_str());
    throw ToolError(path + ": " + what + ": " + std::strerror(err));
  };
  if (!write_all(fd, len_bytes, 8) ||
      !write_all(fd, reinterpret_cast<const uint8_t *>(text.data()), text.size())) {
    fail("write failed", errno, true);
  }
  for (const auto &t : tensors_) {
    if (interrupt_requested()) {  // a model's file takes a while; stop between tensors
      ::close(fd);
      if (regular) ::unlink(path.c_str());
      throw ToolError("interrupted");
    }
    if (!write_all(fd, t.bytes.data(), t.bytes.size())) fail("write failed", errno, true);
  }
  // A quantized model that is reported written must survive a crash.
  if (regular && ::fsync(fd) != 0) fail("fsync failed", errno, true);
  if (::close(fd) != 0) fail("close failed", errno, false);
}

}  // namespace gptqtool
