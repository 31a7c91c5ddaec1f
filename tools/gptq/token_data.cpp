#include "token_data.h"

#include <zlib.h>

#include <cerrno>
#include <cstring>

#include "file_util.h"
#include "tokenizer.h"
#include "tool_error.h"

namespace gptqtool {

std::vector<int32_t> read_id_file(const std::string &path, int64_t vocab_size) {
  const std::string text = read_text_file(path);
  std::vector<int32_t> ids;
  int64_t line = 1;
  size_t i = 0;
  while (i < text.size()) {
    const char ch = text[i];
    if (ch == '\n') {
      ++line;
      ++i;
    } else if (ch == ' ' || ch == '\t' || ch == '\r' || ch == ',') {
      ++i;
    } else if (ch == '#') {
      while (i < text.size() && text[i] != '\n') ++i;
    } else if (ch >= '0' && ch <= '9') {
      int64_t v = 0;
      const size_t start = i;
      while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
        v = v * 10 + (text[i] - '0');
        if (v > 0x7fffffff) break;
        ++i;
      }
      if (v >= vocab_size || (i < text.size() && text[i] >= '0' && text[i] <= '9')) {
        throw ToolError(path + ":" + std::to_string(line) + ": token id " +
                        text.substr(start, std::min<size_t>(i - start + 1, 20)) +
                        " is outside the vocabulary of " + std::to_string(vocab_size));
      }
      ids.push_back(static_cast<int32_t>(v));
    } else {
      const size_t end = text.find_first_of(" \t\r\n,", i);
      throw ToolError(path + ":" + std::to_string(line) + ": '" +
                      text.substr(i, std::min<size_t>(end - i, 20)) +
                      "' is not a token id (expected non-negative integers)");
    }
  }
  if (ids.empty()) throw ToolError(path + " holds no token ids");
  return ids;
}

namespace {

std::string read_maybe_gzip(const std::string &path) {
  if (path.size() < 3 || path.compare(path.size() - 3, 3, ".gz") != 0) return read_text_file(path);
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) throw ToolError("cannot open " + path + ": " + std::strerror(errno));
  std::string out;
  char buf[1 << 16];
  for (;;) {
    const int n = gzread(f, buf, sizeof buf);
    if (n < 0) {
      int err = 0;
      const std::string why = gzerror(f, &err);
      gzclose(f);
      throw ToolError("cannot decompress " + path + ": " + why);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  gzclose(f);
  return out;
}

}  // namespace

std::vector<int32_t> tokenize_text_file(const Tokenizer &tokenizer, const std::string &path) {
  const std::string text = read_maybe_gzip(path);
  std::vector<int32_t> ids = tokenizer.encode(text);
  if (ids.empty()) throw ToolError(path + " holds no text");
  return ids;
}

std::vector<std::vector<int32_t>> cut_windows(const std::vector<int32_t> &stream, int64_t count,
                                              int64_t length) {
  const auto n = static_cast<int64_t>(stream.size());
  std::vector<std::vector<int32_t>> out;
  if (n == 0 || count < 1 || length < 1) return out;
  if (n <= length) {
    out.emplace_back(stream.begin(), stream.end());
    return out;
  }
  const int64_t fit = n / length;
  const int64_t windows = std::min(count, fit);
  // Spread the windows over the whole stream: window w starts at
  // floor(w · n / windows), which never overlaps the next one since
  // n / windows >= length.
  for (int64_t w = 0; w < windows; ++w) {
    const int64_t start = w * n / windows;
    out.emplace_back(stream.begin() + start, stream.begin() + start + length);
  }
  return out;
}

}  // namespace gptqtool
