// libFuzzer harness: tokenizer.json load, then encode and decode
// (tools/gptq/tokenizer). The input is the JSON, optionally followed by a NUL
// byte and a text to encode (otherwise a fixed mixed-script text is used).
// For a tokenizer that loads: every id encode returns is in the vocabulary,
// decode takes them back without failing, and decode of arbitrary ids (taken
// from the text's bytes, some out of range) either works or refuses cleanly.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "common/tool_error.h"
#include "tokenizer/tokenizer.h"

using namespace gptqtool;

namespace {

const char kDefaultText[] =
    "Hello, world! It's 2026 -- naïve café, ÅÄÖ, 東京, 🙂\t\n  spaces  and\r\nnew lines 12345 "
    "<|endoftext|> <s></s> don't we'll I'M";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *begin = reinterpret_cast<const char *>(data);
  const void *nul = std::memchr(begin, 0, size);
  const size_t json_len = nul ? static_cast<size_t>(static_cast<const char *>(nul) - begin) : size;
  const std::string json_text(begin, json_len);
  const std::string text = nul ? std::string(begin + json_len + 1, size - json_len - 1) : kDefaultText;
  try {
    const auto tok = Tokenizer::from_json_text(json_text, "fuzz/tokenizer.json");
    const int64_t vocab = tok->vocab_size();
    if (vocab < 0) std::abort();
    const std::vector<int32_t> ids = tok->encode(text);
    for (int32_t id : ids) {
      if (id < 0 || id >= vocab) std::abort();
      (void)tok->id_to_token(id);
    }
    (void)tok->decode(ids);
    std::vector<int32_t> arbitrary;
    for (size_t i = 0; i + 1 < text.size() && arbitrary.size() < 64; i += 2) {
      arbitrary.push_back(static_cast<int32_t>(static_cast<uint8_t>(text[i]) << 8 |
                                               static_cast<uint8_t>(text[i + 1])) -
                          512);
    }
    try {
      (void)tok->decode(arbitrary);
    } catch (const ToolError &) {
    }
    (void)tok->token_id(text.substr(0, 16));
  } catch (const ToolError &) {
  }
  return 0;
}
