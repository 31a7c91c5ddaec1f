#include "formats/file_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "common/interrupt.h"
#include "common/tool_error.h"

namespace gptqtool {

namespace fs = std::filesystem;

namespace {

std::string errno_text() { return std::strerror(errno); }

void write_all(int fd, const char *data, size_t size, const std::string &path) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw ToolError("cannot write " + path + ": " + errno_text());
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
}

}  // namespace

void write_file_synced(const std::string &path, const std::string &content) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) throw ToolError("cannot create " + path + ": " + errno_text());
  try {
    write_all(fd, content.data(), content.size(), path);
    if (::fsync(fd) != 0) throw ToolError("cannot sync " + path + ": " + errno_text());
  } catch (...) {
    ::close(fd);
    throw;
  }
  if (::close(fd) != 0) throw ToolError("cannot close " + path + ": " + errno_text());
}

unsigned current_umask() {
  // /proc says it without changing it; umask() can only read by setting.
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("Umask:", 0) == 0) return static_cast<unsigned>(std::stoul(line.substr(6), nullptr, 8));
  }
  const mode_t m = ::umask(022);
  ::umask(m);
  return static_cast<unsigned>(m);
}

void write_file_replacing(const std::string &path, const std::string &content) {
  struct stat st;
  if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
    if (S_ISDIR(st.st_mode)) throw ToolError("cannot write " + path + ": it is a directory");
    write_file_synced(path, content);
    return;
  }
  fs::path target(path);
  fs::path parent = target.parent_path();
  if (parent.empty()) parent = ".";
  std::string templ = (parent / ("." + target.filename().string() + ".tmp-XXXXXX")).string();
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  const int fd = ::mkstemp(buf.data());
  if (fd < 0) throw ToolError("cannot create a temporary file beside " + path + ": " + errno_text());
  const std::string temp(buf.data());
  try {
    // mkstemp makes the file 0600; the finished file gets what a plain
    // open() would have given it.
    if (::fchmod(fd, static_cast<mode_t>(0666 & ~current_umask())) != 0) {
      throw ToolError("cannot set the permissions of " + temp + ": " + errno_text());
    }
    write_all(fd, content.data(), content.size(), path);
    if (::fsync(fd) != 0) throw ToolError("cannot sync " + path + ": " + errno_text());
  } catch (...) {
    ::close(fd);
    ::unlink(temp.c_str());
    throw;
  }
  if (::close(fd) != 0) {
    const std::string why = errno_text();
    ::unlink(temp.c_str());
    throw ToolError("cannot close " + path + ": " + why);
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    const std::string why = errno_text();
    ::unlink(temp.c_str());
    throw ToolError("cannot rename " + temp + " to " + path + ": " + why);
  }
}

void copy_file_synced(const std::string &src, const std::string &dst) {
  const int in = ::open(src.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) throw ToolError("cannot open " + src + ": " + errno_text());
  const int out = ::open(dst.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (out < 0) {
    ::close(in);
    throw ToolError("cannot create " + dst + ": " + errno_text());
  }
  try {
    std::vector<char> buf(1 << 20);
    for (;;) {
      const ssize_t n = ::read(in, buf.data(), buf.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        throw ToolError("cannot read " + src + ": " + errno_text());
      }
      if (n == 0) break;
      throw_if_interrupted();
      write_all(out, buf.data(), static_cast<size_t>(n), dst);
    }
    if (::fsync(out) != 0) throw ToolError("cannot sync " + dst + ": " + errno_text());
  } catch (...) {
    ::close(in);
    ::close(out);
    throw;
  }
  ::close(in);
  if (::close(out) != 0) throw ToolError("cannot close " + dst + ": " + errno_text());
}

void fsync_directory(const std::string &dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw ToolError("cannot open directory " + dir + ": " + errno_text());
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) throw ToolError("cannot sync directory " + dir + ": " + errno_text());
}

std::string read_text_file(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ToolError("cannot read " + path + ": " + errno_text());
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw ToolError("cannot read " + path);
  return ss.str();
}

bool path_exists(const std::string &path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

void remove_tree_quietly(const std::string &path) {
  std::error_code ec;
  fs::remove_all(path, ec);
}

std::string make_sibling_temp_dir(const std::string &target) {
  fs::path t = fs::path(target);
  if (t.filename().empty()) t = t.parent_path();  // "out/" → "out"
  fs::path parent = t.parent_path();
  if (parent.empty()) parent = ".";
  std::string templ = (parent / ("." + t.filename().string() + ".tmp-XXXXXX")).string();
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr) {
    throw ToolError("cannot create a temporary directory in " + parent.string() + ": " +
                    errno_text());
  }
  // mkdtemp makes it 0700; renamed into place it becomes the user's
  // directory, so it gets what mkdir would have given it.
  if (::chmod(buf.data(), static_cast<mode_t>(0777 & ~current_umask())) != 0) {
    const std::string why = errno_text();
    ::rmdir(buf.data());
    throw ToolError("cannot set the permissions of " + std::string(buf.data()) + ": " + why);
  }
  return std::string(buf.data());
}

}  // namespace gptqtool
