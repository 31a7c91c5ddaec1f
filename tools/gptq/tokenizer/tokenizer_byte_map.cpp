// GPT-2's byte-to-unicode map; see tokenizer_byte_map.h.
#include "tokenizer/tokenizer_byte_map.h"

#include "tokenizer/tokenizer_utf8.h"

namespace gptqtool {
namespace tok {

ByteMap::ByteMap() {
  uint32_t next = 256;
  for (uint32_t b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    const uint32_t cp = printable ? b : next++;
    append_utf8(cp, &byte_to_utf8[b]);
    cp_to_byte[cp] = static_cast<uint8_t>(b);
  }
}

const ByteMap &byte_map() {
  static const ByteMap map;
  return map;
}

}  // namespace tok
}  // namespace gptqtool
