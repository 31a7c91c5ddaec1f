// GPT-2's byte-to-unicode map (internal to tokenizer*.cpp): every byte
// becomes a printable character, so that a byte-level vocabulary is made of
// ordinary strings. Printable Latin-1 bytes map to themselves, the other 68
// to U+0100 onwards in byte order. Shared by the ByteLevel pre-tokenizer,
// which applies it, and the ByteLevel decoder, which undoes it.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <unordered_map>

namespace gptqtool {
namespace tok {

struct ByteMap {
  std::array<std::string, 256> byte_to_utf8;
  std::unordered_map<uint32_t, uint8_t> cp_to_byte;
  ByteMap();
};

// The one map, built on first use.
const ByteMap &byte_map();

}  // namespace tok
}  // namespace gptqtool
