// Bit packing of the GPTQ checkpoint layout: a run of b-bit values is a
// little-endian bit stream over 32-bit words (value i at bits [b·i, b·i+b)),
// so 3-bit values straddle word boundaries. One routine serves qweight (runs
// down a column, word stride N) and qzeros (runs along a row, stride 1).
#pragma once

#include <cstdint>

namespace gptq {

// Words needed for `count` values of `bits` bits (count·bits must be a
// multiple of 32 in checkpoint tensors; callers check).
inline int64_t packed_words(int64_t count, int bits) { return (count * bits + 31) / 32; }

// out[w·stride] for w < packed_words(count, bits) is overwritten.
template <typename Value>
void pack_run(const Value *values, int64_t count, int bits, uint32_t *out, int64_t stride) {
  const int64_t words = packed_words(count, bits);
  for (int64_t w = 0; w < words; ++w) out[w * stride] = 0;
  const uint32_t mask = (bits == 32) ? 0xffffffffu : ((1u << bits) - 1u);
  for (int64_t i = 0; i < count; ++i) {
    const uint32_t v = static_cast<uint32_t>(values[i]) & mask;
    const int64_t bit = i * bits;
    const int64_t word = bit / 32;
    const int offset = static_cast<int>(bit % 32);
    out[word * stride] |= v << offset;
    if (offset + bits > 32) out[(word + 1) * stride] |= v >> (32 - offset);
  }
}

template <typename Value>
void unpack_run(const uint32_t *in, int64_t stride, int64_t count, int bits, Value *values) {
  const uint32_t mask = (1u << bits) - 1u;
  for (int64_t i = 0; i < count; ++i) {
    const int64_t bit = i * bits;
    const int64_t word = bit / 32;
    const int offset = static_cast<int>(bit % 32);
    uint32_t v = in[word * stride] >> offset;
    if (offset + bits > 32) v |= in[(word + 1) * stride] << (32 - offset);
    values[i] = static_cast<Value>(v & mask);
  }
}

// qweight [K·bits/32, N] holds row r's K codes as one run down column r.
// A run down one column touches a different cache line at every word, so
// these go a row of words at a time over a block of rows, in units of whole
// words that hold whole codes: one word (32/bits codes) for 2, 4 and 8 bits,
// three words (32 codes) for 3 bits. K must be a multiple of that unit's
// codes and bits one of 2, 3, 4, 8, as checkpoint_sizes checks before these
// are called. codes is [N, K], row-major.
void unpack_qweight(const uint32_t *qweight, int64_t n, int64_t k, int bits, uint8_t *codes);
// Rows [begin, end) only, into codes [end − begin, K].
void unpack_qweight_rows(const uint32_t *qweight, int64_t n, int64_t k, int bits, int64_t begin,
                         int64_t end, uint8_t *codes);
void pack_qweight(const uint8_t *codes, int64_t n, int64_t k, int bits, uint32_t *qweight);

}  // namespace gptq
