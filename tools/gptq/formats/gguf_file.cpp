#include "formats/gguf_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "common/tool_error.h"
#include "formats/file_util.h"

namespace gptqtool {

namespace {

constexpr uint64_t kAlignment = 32;  // GGUF's default general.alignment

// GGUF metadata value types.
constexpr uint32_t kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7, kString = 8, kArray = 9;

template <typename T>
void put(std::string &out, T value) {  // little-endian, as GGUF is (x86, ARM)
  char bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));
  out.append(bytes, sizeof(T));
}

void put_string(std::string &out, const std::string &s) {
  put<uint64_t>(out, s.size());
  out += s;
}

uint64_t padded(uint64_t n) { return (n + kAlignment - 1) / kAlignment * kAlignment; }

std::string errno_text() { return std::strerror(errno); }

// An open temporary file beside the target; removed unless committed.
class TempFile {
 public:
  explicit TempFile(const std::string &target) : target_(target) {
    namespace fs = std::filesystem;
    fs::path t(target);
    fs::path parent = t.parent_path();
    if (parent.empty()) parent = ".";
    std::string templ = (parent / ("." + t.filename().string() + ".tmp-XXXXXX")).string();
    std::vector<char> buf(templ.begin(), templ.end());
    buf.push_back('\0');
    fd_ = ::mkstemp(buf.data());
    if (fd_ < 0) throw ToolError("cannot create a temporary file beside " + target + ": " + errno_text());
    path_ = buf.data();
    if (::fchmod(fd_, static_cast<mode_t>(0666 & ~current_umask())) != 0)
      fail("cannot set the permissions of " + path_);
  }
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(path_.c_str());
  }

  void write(const char *data, size_t size) {
    while (size > 0) {
      const ssize_t n = ::write(fd_, data, size);
      if (n < 0) {
        if (errno == EINTR) continue;
        fail("cannot write " + target_);
      }
      data += n;
      size -= static_cast<size_t>(n);
    }
  }
  void write(const std::string &s) { write(s.data(), s.size()); }

  void commit() {
    if (::fsync(fd_) != 0) fail("cannot sync " + target_);
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) fail("cannot close " + target_);
    if (::rename(path_.c_str(), target_.c_str()) != 0)
      fail("cannot rename " + path_ + " to " + target_);
    committed_ = true;
    namespace fs = std::filesystem;
    fs::path parent = fs::path(target_).parent_path();
    fsync_directory(parent.empty() ? "." : parent.string());
  }

 private:
  [[noreturn]] void fail(const std::string &what) { throw ToolError(what + ": " + errno_text()); }

  std::string target_, path_;
  int fd_ = -1;
  bool committed_ = false;
};

}  // namespace

void GgufFile::add_key(const std::string &key, uint32_t value_type) {
  put_string(kv_, key);
  put<uint32_t>(kv_, value_type);
  ++kv_count_;
}

void GgufFile::add_string(const std::string &key, const std::string &value) {
  add_key(key, kString);
  put_string(kv_, value);
}
void GgufFile::add_u32(const std::string &key, uint32_t value) {
  add_key(key, kU32);
  put<uint32_t>(kv_, value);
}
void GgufFile::add_i32(const std::string &key, int32_t value) {
  add_key(key, kI32);
  put<int32_t>(kv_, value);
}
void GgufFile::add_f32(const std::string &key, float value) {
  add_key(key, kF32);
  put<float>(kv_, value);
}
void GgufFile::add_bool(const std::string &key, bool value) {
  add_key(key, kBool);
  put<uint8_t>(kv_, value ? 1 : 0);
}
void GgufFile::add_string_array(const std::string &key, const std::vector<std::string> &values) {
  add_key(key, kArray);
  put<uint32_t>(kv_, kString);
  put<uint64_t>(kv_, values.size());
  for (const std::string &v : values) put_string(kv_, v);
}
void GgufFile::add_i32_array(const std::string &key, const std::vector<int32_t> &values) {
  add_key(key, kArray);
  put<uint32_t>(kv_, kI32);
  put<uint64_t>(kv_, values.size());
  for (int32_t v : values) put<int32_t>(kv_, v);
}

void GgufFile::add_tensor(const std::string &name, const std::vector<int64_t> &ne, GgmlType type,
                          uint64_t bytes, std::function<std::string()> produce) {
  tensors_.push_back({name, ne, type, bytes, std::move(produce)});
}

void GgufFile::write(const std::string &path, const std::atomic<bool> *interrupted) const {
  std::string head;
  head += "GGUF";
  put<uint32_t>(head, 3);
  put<uint64_t>(head, tensors_.size());
  put<uint64_t>(head, kv_count_);
  head += kv_;
  uint64_t offset = 0;
  for (const Tensor &t : tensors_) {
    put_string(head, t.name);
    put<uint32_t>(head, static_cast<uint32_t>(t.ne.size()));
    for (int64_t n : t.ne) put<uint64_t>(head, static_cast<uint64_t>(n));
    put<uint32_t>(head, static_cast<uint32_t>(t.type));
    put<uint64_t>(head, offset);
    offset += padded(t.bytes);
  }
  head.resize(padded(head.size()), '\0');

  TempFile file(path);
  file.write(head);
  for (const Tensor &t : tensors_) {
    if (interrupted != nullptr && interrupted->load()) throw ToolError("interrupted");
    const std::string bytes = t.produce();
    if (bytes.size() != t.bytes)
      throw ToolError("internal error: tensor " + t.name + " came out " +
                      std::to_string(bytes.size()) + " bytes long, not " + std::to_string(t.bytes));
    file.write(bytes);
    file.write(std::string(padded(t.bytes) - t.bytes, '\0'));
  }
  file.commit();
}

}  // namespace gptqtool
