// UTF-8 encoding and whole-string checks for the tokenizer; see
// tokenizer_utf8.h.
#include "tokenizer/tokenizer_utf8.h"

namespace gptqtool {
namespace tok {

void append_utf8(uint32_t cp, std::string *out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::string utf8_lossy(const std::string &bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (size_t i = 0; i < bytes.size();) {
    const Decoded d = decode_utf8(bytes.data(), bytes.size(), i);
    if (d.valid) {
      out.append(bytes, i, d.len);
    } else {
      out += kReplacementChar;
    }
    i += d.len;
  }
  return out;
}

bool is_valid_utf8(const std::string &bytes) {
  for (size_t i = 0; i < bytes.size();) {
    const Decoded d = decode_utf8(bytes.data(), bytes.size(), i);
    if (!d.valid) return false;
    i += d.len;
  }
  return true;
}

}  // namespace tok
}  // namespace gptqtool
