#include "packing.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "error.h"

namespace gptq {

namespace {

// Rows handled together: their codes for one unit are a few KiB, and a row
// of words is read 64 words (one 256-byte stretch) at a time.
constexpr int64_t kRowBlock = 64;

template <int kBits>
struct Unit {
  static constexpr int kWords = kBits == 3 ? 3 : 1;
  static constexpr int kCodes = 32 * kWords / kBits;
  static constexpr uint32_t kMask = (1u << kBits) - 1u;
};

// Codes of 2 and 4 bits, 8 at a time: the fields of `packed` (8 of kBits
// bits) moved to the bytes of the result, field i to byte i, by halving the
// distance between them; gather_fields undoes it. Byte i is byte i in
// memory on the little-endian hosts the checkpoint layout assumes.
template <int kBits>
struct FieldSpread {
  // The three halvings: fields 4..7 to bit 32, then every other pair of
  // fields and every other field one lane up, as masks of where they land.
  static constexpr int kShift[3] = {32 - 4 * kBits, 16 - 2 * kBits, 8 - kBits};
  static constexpr uint64_t kMask[3] = {
      kBits == 4 ? 0x0000FFFF0000FFFFull : 0x000000FF000000FFull,
      kBits == 4 ? 0x00FF00FF00FF00FFull : 0x000F000F000F000Full,
      kBits == 4 ? 0x0F0F0F0F0F0F0F0Full : 0x0303030303030303ull};
};

template <int kBits>
uint64_t spread_fields(uint64_t packed) {
  using S = FieldSpread<kBits>;
  uint64_t v = packed;
  for (int step = 0; step < 3; ++step) v = (v | v << S::kShift[step]) & S::kMask[step];
  return v;
}

template <int kBits>
uint64_t gather_fields(uint64_t bytes) {
  using S = FieldSpread<kBits>;
  uint64_t v = bytes & S::kMask[2];
  for (int step = 2; step > 0; --step) v = (v | v >> S::kShift[step]) & S::kMask[step - 1];
  return (v | v >> S::kShift[0]) & ((uint64_t{1} << (8 * kBits)) - 1);
}

template <int kBits>
void unpack_block(const uint32_t *qweight, int64_t n, int64_t k, int64_t r0, int64_t r1,
                  uint8_t *codes) {  // codes: row r0's
  using U = Unit<kBits>;
  for (int64_t u = 0; u < k / U::kCodes; ++u) {
    const uint32_t *words = qweight + u * U::kWords * n;
    for (int64_t r = r0; r < r1; ++r) {
      uint32_t w[U::kWords];
      for (int i = 0; i < U::kWords; ++i) w[i] = words[i * n + r];
      uint8_t *out = codes + (r - r0) * k + u * U::kCodes;
      if constexpr (kBits == 2 || kBits == 4) {
        for (int half = 0; half < U::kCodes / 8; ++half) {
          const uint64_t bytes = spread_fields<kBits>(w[0] >> (8 * kBits * half));
          std::memcpy(out + 8 * half, &bytes, 8);
        }
        continue;
      }
      for (int i = 0; i < U::kCodes; ++i) {
        const int bit = i * kBits, at = bit / 32, shift = bit % 32;
        uint32_t v = w[at] >> shift;
        if (shift + kBits > 32) v |= w[at + 1] << (32 - shift);
        out[i] = static_cast<uint8_t>(v & U::kMask);
      }
    }
  }
}

template <int kBits>
void pack_block(const uint8_t *codes, int64_t n, int64_t k, int64_t r0, int64_t r1,
                uint32_t *qweight) {
  using U = Unit<kBits>;
  for (int64_t u = 0; u < k / U::kCodes; ++u) {
    uint32_t *words = qweight + u * U::kWords * n;
    for (int64_t r = r0; r < r1; ++r) {
      const uint8_t *in = codes + r * k + u * U::kCodes;
      uint32_t w[U::kWords] = {};
      if constexpr (kBits == 2 || kBits == 4) {
        for (int half = 0; half < U::kCodes / 8; ++half) {
          uint64_t bytes;
          std::memcpy(&bytes, in + 8 * half, 8);
          w[0] |= static_cast<uint32_t>(gather_fields<kBits>(bytes) << (8 * kBits * half));
        }
        words[r] = w[0];
        continue;
      }
      for (int i = 0; i < U::kCodes; ++i) {
        const uint32_t v = in[i] & U::kMask;
        const int bit = i * kBits, at = bit / 32, shift = bit % 32;
        w[at] |= v << shift;
        if (shift + kBits > 32) w[at + 1] |= v >> (32 - shift);
      }
      for (int i = 0; i < U::kWords; ++i) words[i * n + r] = w[i];
    }
  }
}

[[noreturn]] void unsupported_width(int bits) {
  throw Error(GPTQ_ERR_INTERNAL, "qweight packing of " + std::to_string(bits) +
                                     "-bit codes was asked for; checkpoint_sizes admits 2, 3, 4, 8");
}

template <typename Block>
void by_row_blocks(int64_t n, int bits, Block block) {
  if (bits != 2 && bits != 3 && bits != 4 && bits != 8) unsupported_width(bits);
  for (int64_t r0 = 0; r0 < n; r0 += kRowBlock) block(r0, std::min(n, r0 + kRowBlock));
}

}  // namespace

void unpack_qweight(const uint32_t *qweight, int64_t n, int64_t k, int bits, uint8_t *codes) {
  unpack_qweight_rows(qweight, n, k, bits, 0, n, codes);
}

void unpack_qweight_rows(const uint32_t *qweight, int64_t n, int64_t k, int bits, int64_t begin,
                         int64_t end, uint8_t *codes) {
  by_row_blocks(end - begin, bits, [&](int64_t b0, int64_t b1) {
    const int64_t r0 = begin + b0, r1 = begin + b1;
    uint8_t *out = codes + b0 * k;
    switch (bits) {
      case 2: unpack_block<2>(qweight, n, k, r0, r1, out); break;
      case 3: unpack_block<3>(qweight, n, k, r0, r1, out); break;
      case 4: unpack_block<4>(qweight, n, k, r0, r1, out); break;
      case 8: unpack_block<8>(qweight, n, k, r0, r1, out); break;
    }
  });
}

void pack_qweight(const uint8_t *codes, int64_t n, int64_t k, int bits, uint32_t *qweight) {
  by_row_blocks(n, bits, [&](int64_t r0, int64_t r1) {
    switch (bits) {
      case 2: pack_block<2>(codes, n, k, r0, r1, qweight); break;
      case 3: pack_block<3>(codes, n, k, r0, r1, qweight); break;
      case 4: pack_block<4>(codes, n, k, r0, r1, qweight); break;
      case 8: pack_block<8>(codes, n, k, r0, r1, qweight); break;
    }
  });
}

}  // namespace gptq
