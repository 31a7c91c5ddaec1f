#include "formats/token_data.h"

#include <zlib.h>

#include <algorithm>
#include <random>
#include <vector>

#include "common/interrupt.h"
#include "common/tool_error.h"
#include "formats/file_util.h"
#include "tokenizer/tokenizer.h"

namespace gptqtool {

std::vector<int32_t> read_id_file(const std::string &path, int64_t vocab_size) {
  const std::string text = read_text_file(path);
  std::vector<int32_t> ids;
  int64_t line = 1;
  size_t i = 0;
  while (i < text.size()) {
    const char ch = text[i];
    if (ch == '\n') {
      if (++line % 65536 == 0) throw_if_interrupted();
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

bool has_gzip_magic(const std::string &data, size_t at) {
  return data.size() >= at + 2 && static_cast<unsigned char>(data[at]) == 0x1f &&
         static_cast<unsigned char>(data[at + 1]) == 0x8b;
}

// The whole of a gzip file, decompressed, or a ToolError: the stream must
// end where the file ends (a truncated download is refused, not read up to
// where it stops), every member's CRC and length must check, and nothing
// but further members may follow.
std::string gunzip(const std::string &path, const std::string &data) {
  z_stream zs{};
  if (inflateInit2(&zs, 15 + 16) != Z_OK) throw ToolError(path + ": cannot start zlib");
  struct End {
    z_stream *z;
    ~End() { inflateEnd(z); }
  } end{&zs};
  std::string out;
  std::vector<char> buf(1 << 16);
  size_t pos = 0;  // data handed to zlib so far
  for (;;) {       // one gzip member per pass (concatenated files have several)
    for (;;) {
      if (zs.avail_in == 0) {
        if (pos == data.size()) {
          throw ToolError(path + ": truncated gzip file (the data ends inside the compressed "
                                 "stream)");
        }
        const size_t n = std::min<size_t>(data.size() - pos, 1u << 30);
        zs.next_in = reinterpret_cast<Bytef *>(const_cast<char *>(data.data() + pos));
        zs.avail_in = static_cast<uInt>(n);
        pos += n;
      }
      zs.next_out = reinterpret_cast<Bytef *>(buf.data());
      zs.avail_out = static_cast<uInt>(buf.size());
      const int ret = inflate(&zs, Z_NO_FLUSH);
      out.append(buf.data(), buf.size() - zs.avail_out);
      if (ret == Z_STREAM_END) break;
      if (ret != Z_OK && ret != Z_BUF_ERROR) {
        throw ToolError(path + ": corrupt gzip data (" +
                        std::string(zs.msg != nullptr ? zs.msg : "zlib error " + std::to_string(ret)) +
                        ")");
      }
      throw_if_interrupted();
    }
    const size_t rest = zs.avail_in + (data.size() - pos);
    if (rest == 0) return out;
    const size_t at = data.size() - rest;
    if (!has_gzip_magic(data, at)) {
      throw ToolError(path + ": " + std::to_string(rest) +
                      " bytes of data that is not gzip follow the compressed stream");
    }
    inflateReset(&zs);
  }
}

}  // namespace

std::string read_text_maybe_gzip(const std::string &path) {
  const std::string data = read_text_file(path);
  const bool named_gz = path.size() >= 3 && path.compare(path.size() - 3, 3, ".gz") == 0;
  if (named_gz && !has_gzip_magic(data, 0)) {
    throw ToolError(path + ": not a gzip file (it does not start with the gzip bytes 1f 8b); "
                           "a plain text file must not be named .gz");
  }
  if (!named_gz && has_gzip_magic(data, 0)) {
    throw ToolError(path + ": starts like a gzip file (bytes 1f 8b) but is not named .gz; "
                           "name it .gz to have it decompressed");
  }
  return named_gz ? gunzip(path, data) : data;
}

std::vector<int32_t> tokenize_text_file(const Tokenizer &tokenizer, const std::string &path) {
  const std::string text = read_text_maybe_gzip(path);
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

namespace {

// Uniform in [0, n], by rejection (no modulo bias).
uint64_t uniform_up_to(std::mt19937_64 &gen, uint64_t n) {
  if (n == UINT64_MAX) return gen();
  const uint64_t range = n + 1;
  const uint64_t limit = UINT64_MAX - UINT64_MAX % range;
  uint64_t x = gen();
  while (x >= limit) x = gen();
  return x % range;
}

}  // namespace

std::vector<std::vector<int32_t>> random_windows(const std::vector<int32_t> &stream,
                                                 int64_t count, int64_t length, uint64_t seed) {
  const auto n = static_cast<int64_t>(stream.size());
  if (n <= length || count < 1 || length < 1) return cut_windows(stream, count, length);
  const int64_t windows = std::min(count, n / length);
  // k disjoint windows of length L in n tokens are k sorted offsets into the
  // n - k·L tokens no window covers: window i starts at offset_i + i·L, and
  // every start is possible for every window that can hold it.
  const int64_t slack = n - windows * length;
  std::mt19937_64 gen(seed);
  std::vector<int64_t> offsets(static_cast<size_t>(windows));
  for (int64_t &o : offsets) o = static_cast<int64_t>(uniform_up_to(gen, static_cast<uint64_t>(slack)));
  std::sort(offsets.begin(), offsets.end());
  std::vector<std::vector<int32_t>> out;
  out.reserve(offsets.size());
  for (int64_t i = 0; i < windows; ++i) {
    const int64_t start = offsets[static_cast<size_t>(i)] + i * length;
    out.emplace_back(stream.begin() + start, stream.begin() + start + length);
  }
  return out;
}

}  // namespace gptqtool
