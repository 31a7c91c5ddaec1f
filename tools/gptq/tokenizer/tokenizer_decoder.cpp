// The decoders; see tokenizer_decoder.h.
#include "tokenizer/tokenizer_decoder.h"

#include <algorithm>
#include <cctype>
#include <utility>

#include "tokenizer/tokenizer_byte_map.h"
#include "tokenizer/tokenizer_chars.h"
#include "tokenizer/tokenizer_split.h"
#include "tokenizer/tokenizer_utf8.h"

namespace gptqtool {
namespace tok {

std::vector<std::string> DecoderStep::apply(std::vector<std::string> tokens) const {
  switch (kind) {
    case kByteLevel: {
      // A token whose characters are all in the byte map becomes those
      // bytes; any other token (an added token with a space, say) is kept.
      const ByteMap &map = byte_map();
      std::string bytes;
      for (const std::string &t : tokens) {
        std::string mine;
        bool all = true;
        for (size_t i = 0; i < t.size() && all;) {
          const Decoded d = decode_utf8(t.data(), t.size(), i);
          auto it = d.valid ? map.cp_to_byte.find(d.cp) : map.cp_to_byte.end();
          all = it != map.cp_to_byte.end();
          if (all) mine.push_back(static_cast<char>(it->second));
          i += d.len;
        }
        bytes += all ? mine : t;
      }
      return {utf8_lossy(bytes)};
    }
    case kMetaspace: {
      for (size_t i = 0; i < tokens.size(); ++i) {
        const bool drop = i == 0 && prepend != PrependScheme::kNever;
        tokens[i] = replace_all(tokens[i], a, drop ? "" : " ");
      }
      return tokens;
    }
    case kReplace:
      for (std::string &t : tokens) t = replace_all(t, a, b);
      return tokens;
    case kByteFallback: {
      std::vector<std::string> out;
      std::string pending;
      auto flush = [&] {
        if (pending.empty()) return;
        if (is_valid_utf8(pending)) {
          out.push_back(pending);
        } else {
          for (size_t k = 0; k < pending.size(); ++k) out.push_back(kReplacementChar);
        }
        pending.clear();
      };
      for (std::string &t : tokens) {
        int byte = -1;
        if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' &&
            std::isxdigit(static_cast<unsigned char>(t[3])) &&
            std::isxdigit(static_cast<unsigned char>(t[4]))) {
          byte = std::stoi(t.substr(3, 2), nullptr, 16);
        }
        if (byte >= 0) {
          pending.push_back(static_cast<char>(byte));
        } else {
          flush();
          out.push_back(std::move(t));
        }
      }
      flush();
      return out;
    }
    case kFuse: {
      std::string all;
      for (const std::string &t : tokens) all += t;
      return {all};
    }
    case kStrip: {
      for (std::string &t : tokens) {
        std::vector<Char> c = split_chars(t);
        size_t lo = 0, hi = c.size();
        auto is_content = [&](const Char &ch) { return t.compare(ch.off, ch.len, a) == 0; };
        while (lo < std::min(start, c.size()) && is_content(c[lo])) ++lo;
        for (size_t k = 0; k < stop && hi > lo && is_content(c[hi - 1]); ++k) --hi;
        const size_t b0 = lo < c.size() ? c[lo].off : t.size();
        const size_t b1 = hi < c.size() ? c[hi].off : t.size();
        t = t.substr(b0, b1 - b0);
      }
      return tokens;
    }
  }
  return tokens;
}

}  // namespace tok
}  // namespace gptqtool
