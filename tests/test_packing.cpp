// The GPTQ checkpoint layout, checked against words worked out by hand.
//
// Packing is a little-endian bit stream over 32-bit words: value i of a run of
// b-bit values sits at bits [b·i, b·i + b) counted from the least significant
// bit of the run's first word. qweight int32 [K·b/32, N] holds, for output n,
// the codes of row n along K in words qweight[w·N + n]; qzeros int32
// [G, N·b/32] holds one run per group along N, storing zero − 1 (v1) or the
// zero itself (v2); scales fp16 [G, N]; g_idx int32 [K].
//
// Every expected word below is a literal derived by hand in the comment next
// to it (hex digits are 4-bit values; 3-bit streams via octal, where one octal
// digit is one 3-bit value, regrouped into hex), never by running a packer.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <algorithm>
#include <cstring>
#include <utility>
#include <fstream>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "gptq.h"
#include "packing.h"
#include "test_util.h"

namespace {

using gptq_test::QTensor;

int32_t w32(uint32_t u) { return static_cast<int32_t>(u); }

// The four checkpoint tensors of one layer, owned.
struct Ckpt {
  std::vector<int32_t> qweight, qzeros, g_idx;
  std::vector<uint16_t> scales;

  gptq_checkpoint_tensors view(bool with_g_idx = true) {
    gptq_checkpoint_tensors t{};
    t.qweight = qweight.data();
    t.qweight_len = static_cast<int64_t>(qweight.size());
    t.qzeros = qzeros.data();
    t.qzeros_len = static_cast<int64_t>(qzeros.size());
    t.scales = scales.data();
    t.scales_len = static_cast<int64_t>(scales.size());
    t.g_idx = with_g_idx ? g_idx.data() : nullptr;
    t.g_idx_len = with_g_idx ? static_cast<int64_t>(g_idx.size()) : 0;
    return t;
  }
};

gptq_checkpoint_sizes sizes_of(int64_t n, int64_t k, int bits, int gs) {
  gptq_checkpoint_sizes s{};
  EXPECT_EQ(gptq_checkpoint_sizes_for(n, k, bits, gs, &s), GPTQ_OK) << gptq_last_error();
  return s;
}

// Buffers of the right size for [n, k], filled with `fill`.
Ckpt alloc_ckpt(int64_t n, int64_t k, int bits, int gs, int32_t fill = 0x5A5A5A5A) {
  const gptq_checkpoint_sizes s = sizes_of(n, k, bits, gs);
  Ckpt c;
  c.qweight.assign(static_cast<size_t>(s.qweight_rows * s.qweight_cols), fill);
  c.qzeros.assign(static_cast<size_t>(s.qzeros_rows * s.qzeros_cols), fill);
  c.scales.assign(static_cast<size_t>(s.scales_rows * s.scales_cols), static_cast<uint16_t>(fill));
  c.g_idx.assign(static_cast<size_t>(s.g_idx_len), fill);
  return c;
}

QTensor import_ckpt(int64_t n, int64_t k, int bits, int gs, gptq_checkpoint_format fmt, Ckpt &c,
                    bool with_g_idx = true) {
  gptq_qtensor *q = nullptr;
  const gptq_checkpoint_tensors t = c.view(with_g_idx);
  EXPECT_EQ(gptq_qtensor_import(n, k, bits, gs, fmt, &t, &q), GPTQ_OK) << gptq_last_error();
  return QTensor(q);
}

Ckpt export_ckpt(const gptq_qtensor *q, int64_t n, int64_t k, int bits, int gs,
                 gptq_checkpoint_format fmt) {
  Ckpt c = alloc_ckpt(n, k, bits, gs);
  const gptq_checkpoint_tensors t = c.view();
  EXPECT_EQ(gptq_qtensor_export(q, fmt, &t), GPTQ_OK) << gptq_last_error();
  return c;
}

void expect_same_ckpt(const Ckpt &a, const Ckpt &b, bool compare_g_idx = true) {
  EXPECT_EQ(a.qweight, b.qweight);
  EXPECT_EQ(a.qzeros, b.qzeros);
  EXPECT_EQ(a.scales, b.scales);
  if (compare_g_idx) {
    EXPECT_EQ(a.g_idx, b.g_idx);
  }
}

// An export that must be refused with UNSUPPORTED and must leave every
// caller buffer untouched.
void expect_export_refused(const gptq_qtensor *q, int64_t n, int64_t k, int bits, int gs,
                           gptq_checkpoint_format fmt) {
  Ckpt c = alloc_ckpt(n, k, bits, gs, 0x13579BDF);
  const Ckpt before = c;
  const gptq_checkpoint_tensors t = c.view();
  EXPECT_EQ(gptq_qtensor_export(q, fmt, &t), GPTQ_ERR_UNSUPPORTED);
  EXPECT_NE(std::string(gptq_last_error()).find("gptq_qtensor_export"), std::string::npos)
      << gptq_last_error();
  EXPECT_NE(std::string(gptq_last_error()).find("zero"), std::string::npos) << gptq_last_error();
  expect_same_ckpt(c, before);
}

// Bit-level reading of a packed stream, independent of unpack_run: bit t of
// value i is bit (b·i + t) mod 32 of word (b·i + t) / 32.
uint32_t bit_read(const uint32_t *words, int64_t stride, int64_t i, int b) {
  uint32_t v = 0;
  for (int t = 0; t < b; ++t) {
    const int64_t bit = static_cast<int64_t>(b) * i + t;
    v |= ((words[(bit / 32) * stride] >> (bit % 32)) & 1u) << t;
  }
  return v;
}

// ---------------------------------------------------------------------------
// gptq::pack_run / gptq::unpack_run against hand vectors.
// ---------------------------------------------------------------------------

void expect_pack(const std::vector<uint32_t> &values, int bits,
                 const std::vector<uint32_t> &words) {
  std::vector<uint32_t> out(words.size(), 0xA5A5A5A5u);  // stale bits must be cleared
  gptq::pack_run(values.data(), static_cast<int64_t>(values.size()), bits, out.data(), 1);
  EXPECT_EQ(out, words) << bits << "-bit";
  std::vector<uint32_t> back(values.size(), 0xEEu);
  gptq::unpack_run(words.data(), 1, static_cast<int64_t>(values.size()), bits, back.data());
  EXPECT_EQ(back, values) << bits << "-bit";
}

std::vector<uint32_t> one_hot(int count, int at, uint32_t value) {
  std::vector<uint32_t> v(static_cast<size_t>(count), 0);
  v[static_cast<size_t>(at)] = value;
  return v;
}

TEST(PackRun, FourBitCodesZeroToSevenIs0x76543210) {
  // Nibble i holds value i: hex digits read from the right are 0,1,...,7.
  expect_pack({0, 1, 2, 3, 4, 5, 6, 7}, 4, {0x76543210u});
  // 16 values, two words: 8..15 → 0xFEDCBA98.
  expect_pack({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, 4,
              {0x76543210u, 0xFEDCBA98u});
  expect_pack({15, 14, 13, 12, 11, 10, 9, 8}, 4, {0x89ABCDEFu});
}

TEST(PackRun, EightBitBytesLittleEndian) {
  // Byte i of the word is value i, least significant byte first.
  expect_pack({0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF}, 8, {0x67452301u, 0xEFCDAB89u});
  // FF,80,7F,00 → 0x007F80FF; 10,20,30,40 → 0x40302010.
  expect_pack({0xFF, 0x80, 0x7F, 0x00, 0x10, 0x20, 0x30, 0x40}, 8, {0x007F80FFu, 0x40302010u});
}

TEST(PackRun, TwoBit) {
  // 0,1,2,3 in bits 0-1,2-3,4-5,6-7: 0b11'10'01'00 = 0xE4 per byte.
  expect_pack({0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3}, 2, {0xE4E4E4E4u});
  // 3,2,1,0 then zeros: 0b00'01'10'11 = 0x1B.
  expect_pack({3, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 2, {0x0000001Bu});
  // value 0 = 1 → bit 0; value 15 = 2 (0b10) → bit 31.
  expect_pack({1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2}, 2, {0x80000001u});
  expect_pack(std::vector<uint32_t>(16, 3), 2, {0xFFFFFFFFu});
}

TEST(PackRun, ThreeBitSpansWordBoundaries) {
  // Value 10 occupies bits 30,31,32: its low two bits end word 0, its high
  // bit is bit 0 of word 1. 7 = 0b111 → word0 bits 30,31 = 0xC0000000,
  // word1 bit 0 = 0x1.
  expect_pack(one_hot(32, 10, 7), 3, {0xC0000000u, 0x00000001u, 0x00000000u});
  // 5 = 0b101: bit 30 = 1, bit 31 = 0, bit 32 = 1.
  expect_pack(one_hot(32, 10, 5), 3, {0x40000000u, 0x00000001u, 0x00000000u});
  // Value 21 occupies bits 63,64,65: bit 31 of word 1, bits 0,1 of word 2.
  // 7 → word1 0x80000000, word2 0x3.
  expect_pack(one_hot(32, 21, 7), 3, {0x00000000u, 0x80000000u, 0x00000003u});
  // 6 = 0b110: bit 63 = 0, bits 64,65 = 1 → word2 0x3 only.
  expect_pack(one_hot(32, 21, 6), 3, {0x00000000u, 0x00000000u, 0x00000003u});
  // 3 = 0b011: bit 63 = 1, bit 64 = 1, bit 65 = 0.
  expect_pack(one_hot(32, 21, 3), 3, {0x00000000u, 0x80000000u, 0x00000001u});
  // Value 31 = 7 at bits 93..95 (top of word 2), value 0 = 1 at bit 0.
  std::vector<uint32_t> ends = one_hot(32, 31, 7);
  ends[0] = 1;
  expect_pack(ends, 3, {0x00000001u, 0x00000000u, 0xE0000000u});
  // i mod 8 for i < 32: eight values are the octal number 0o76543210 =
  // 111 110 101 100 011 010 001 000 = 0xFAC688 (24 bits). The 96-bit
  // stream is that four times: FAC688 FAC688 FAC688 FAC688; the low word is
  // the last 8 hex digits 88FAC688, then C688FAC6, then FAC688FA.
  std::vector<uint32_t> ramp(32);
  for (int i = 0; i < 32; ++i) ramp[i] = static_cast<uint32_t>(i % 8);
  expect_pack(ramp, 3, {0x88FAC688u, 0xC688FAC6u, 0xFAC688FAu});
  // All 4 (0b100): 0o44444444 = 100100...100 = 0x924924, stream "924" x 8
  // → words 24924924, 49249249, 92492492.
  expect_pack(std::vector<uint32_t>(32, 4), 3, {0x24924924u, 0x49249249u, 0x92492492u});
  // All 3 (0b011): 0o33333333 = 011011...011 = 0x6DB6DB, stream "6DB" x 8
  // → words DB6DB6DB, B6DB6DB6, 6DB6DB6D.
  expect_pack(std::vector<uint32_t>(32, 3), 3, {0xDB6DB6DBu, 0xB6DB6DB6u, 0x6DB6DB6Du});
  expect_pack(std::vector<uint32_t>(32, 7), 3, {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu});
}

TEST(PackRun, FiveSixSevenBitCrossings) {
  // 5-bit value 6 at bits 30..34: 31 → word0 bits 30,31 and word1 bits 0..2.
  expect_pack(one_hot(32, 6, 31), 5, {0xC0000000u, 0x7u, 0u, 0u, 0u});
  // 5-bit value 12 at bits 60..64: 31 → word1 bits 28..31, word2 bit 0.
  expect_pack(one_hot(32, 12, 31), 5, {0u, 0xF0000000u, 0x1u, 0u, 0u});
  // 6-bit value 5 at bits 30..35: 63 → word0 bits 30,31, word1 bits 0..3.
  expect_pack(one_hot(16, 5, 63), 6, {0xC0000000u, 0xFu, 0u});
  // 6-bit value 10 at bits 60..65: 33 = 0b100001 → bit 60 and bit 65.
  expect_pack(one_hot(16, 10, 33), 6, {0u, 0x10000000u, 0x2u});
  // 7-bit value 4 at bits 28..34: 127 → word0 bits 28..31, word1 bits 0..2.
  expect_pack(one_hot(32, 4, 127), 7, {0xF0000000u, 0x7u, 0u, 0u, 0u, 0u, 0u});
}

TEST(PackRun, PackedWordCounts) {
  EXPECT_EQ(gptq::packed_words(8, 4), 1);
  EXPECT_EQ(gptq::packed_words(9, 4), 2);
  EXPECT_EQ(gptq::packed_words(32, 3), 3);
  EXPECT_EQ(gptq::packed_words(16, 2), 1);
  EXPECT_EQ(gptq::packed_words(4, 8), 1);
  EXPECT_EQ(gptq::packed_words(7, 5), 2);
  EXPECT_EQ(gptq::packed_words(1, 2), 1);
}

TEST(PackRun, StrideTouchesOnlyItsOwnColumn) {
  // Three interleaved runs (stride 3), as qweight interleaves N columns.
  std::vector<uint32_t> buf(9, 0xDEADBEEFu);
  const std::vector<uint8_t> ramp = [] {
    std::vector<uint8_t> v(32);
    for (int i = 0; i < 32; ++i) v[i] = static_cast<uint8_t>(i % 8);
    return v;
  }();
  gptq::pack_run(ramp.data(), 32, 3, buf.data() + 1, 3);
  EXPECT_EQ(buf, (std::vector<uint32_t>{0xDEADBEEFu, 0x88FAC688u, 0xDEADBEEFu, 0xDEADBEEFu,
                                        0xC688FAC6u, 0xDEADBEEFu, 0xDEADBEEFu, 0xFAC688FAu,
                                        0xDEADBEEFu}));
  std::vector<uint8_t> back(32, 99);
  gptq::unpack_run(buf.data() + 1, 3, 32, 3, back.data());
  EXPECT_EQ(back, ramp);
}

TEST(PackRun, ValuesAreMaskedToTheirWidth) {
  // Bits above `bits` in the input must not leak into the neighbours.
  std::vector<uint32_t> dirty = {0xF8, 0xFFFFFFF9, 0x0A, 0x1B};  // low 3 bits: 0,1,2,3
  std::vector<uint32_t> out(1, 0);
  gptq::pack_run(dirty.data(), 4, 3, out.data(), 1);
  // 0 | 1<<3 | 2<<6 | 3<<9 = 0x000 | 0x008 | 0x080 | 0x600 = 0x688.
  EXPECT_EQ(out[0], 0x00000688u);
}

TEST(PackRun, RandomRoundTripEveryWidth) {
  std::mt19937 rng(12345);
  for (int bits = 2; bits <= 8; ++bits) {
    for (int64_t count : {1, 7, 16, 32, 33, 64, 96, 257}) {
      const uint32_t mask = (1u << bits) - 1u;
      std::vector<uint8_t> values(static_cast<size_t>(count));
      for (auto &v : values) v = static_cast<uint8_t>(rng() & mask);
      const int64_t words = gptq::packed_words(count, bits);
      ASSERT_EQ(words, (count * bits + 31) / 32);
      // Interleave with stride 2 so both the stride and the untouched
      // neighbours are exercised.
      std::vector<uint32_t> packed(static_cast<size_t>(words * 2), 0xCAFEF00Du);
      gptq::pack_run(values.data(), count, bits, packed.data(), 2);
      for (int64_t w = 0; w < words; ++w) ASSERT_EQ(packed[w * 2 + 1], 0xCAFEF00Du);
      for (int64_t i = 0; i < count; ++i)
        ASSERT_EQ(bit_read(packed.data(), 2, i, bits), values[i])
            << bits << "-bit, count " << count << ", value " << i;
      // Bits past the last value are zero.
      const int64_t used = count * bits;
      for (int64_t bit = used; bit < words * 32; ++bit)
        ASSERT_EQ((packed[(bit / 32) * 2] >> (bit % 32)) & 1u, 0u) << bits << "-bit bit " << bit;
      std::vector<uint8_t> back(static_cast<size_t>(count), 0xEE);
      gptq::unpack_run(packed.data(), 2, count, bits, back.data());
      ASSERT_EQ(back, values) << bits << "-bit, count " << count;
      // And unpack of random words matches the bit-level reading.
      std::vector<uint32_t> noise(static_cast<size_t>(words));
      for (auto &w : noise) w = rng();
      std::vector<int32_t> decoded(static_cast<size_t>(count));
      gptq::unpack_run(noise.data(), 1, count, bits, decoded.data());
      for (int64_t i = 0; i < count; ++i)
        ASSERT_EQ(static_cast<uint32_t>(decoded[i]), bit_read(noise.data(), 1, i, bits));
    }
  }
}

// ---------------------------------------------------------------------------
// gptq::unpack_qweight / gptq::pack_qweight: whole [K·b/32, N] tensors, by
// blocks of rows, against the bit-level reading of each column's run.
// ---------------------------------------------------------------------------

TEST(PackQweight, EveryWidthMatchesTheColumnRuns) {
  std::mt19937 rng(271828);
  for (int bits : {2, 3, 4, 8}) {
    const int64_t unit = bits == 3 ? 32 : 32 / bits;  // codes in whole words
    // Row counts below, at and across the 64-row blocks; K of one unit up.
    for (int64_t n : {1, 5, 63, 64, 65, 130})
      for (int64_t k : {unit, 3 * unit, int64_t{96}}) {
        SCOPED_TRACE(std::to_string(bits) + "-bit, N " + std::to_string(n) + ", K " +
                     std::to_string(k));
        const int64_t rows = k * bits / 32;
        std::vector<uint32_t> qweight(static_cast<size_t>(rows * n));
        for (auto &w : qweight) w = rng();
        std::vector<uint8_t> codes(static_cast<size_t>(n * k), 0xEE);
        gptq::unpack_qweight(qweight.data(), n, k, bits, codes.data());
        for (int64_t r = 0; r < n; ++r)
          for (int64_t j = 0; j < k; ++j)
            ASSERT_EQ(codes[r * k + j], bit_read(qweight.data() + r, n, j, bits))
                << "row " << r << " column " << j;
        std::vector<uint32_t> packed(qweight.size(), 0xA5A5A5A5u);  // stale bits must go
        gptq::pack_qweight(codes.data(), n, k, bits, packed.data());
        ASSERT_EQ(packed, qweight);
        // Any range of rows alone (what an import's layout reads, a tile at
        // a time) is the same rows of the whole, and writes nothing past them.
        for (const auto &[begin, end] : std::vector<std::pair<int64_t, int64_t>>{
                 {0, n}, {0, std::min<int64_t>(n, 16)}, {n / 3, n}, {n / 2, n / 2 + 1}, {n, n}}) {
          std::vector<uint8_t> part(static_cast<size_t>((end - begin + 1) * k), 0xEE);
          gptq::unpack_qweight_rows(qweight.data(), n, k, bits, begin, end, part.data());
          ASSERT_TRUE(std::equal(part.begin(), part.begin() + (end - begin) * k,
                                 codes.begin() + begin * k))
              << "rows " << begin << ".." << end;
          ASSERT_TRUE(std::all_of(part.begin() + (end - begin) * k, part.end(),
                                  [](uint8_t b) { return b == 0xEE; }));
        }
      }
  }
}

TEST(PackQweight, OtherWidthsAreAnInternalError) {
  std::vector<uint32_t> qweight(5, 0);
  std::vector<uint8_t> codes(32, 0);
  EXPECT_THROW(gptq::unpack_qweight(qweight.data(), 1, 32, 5, codes.data()), std::exception);
  EXPECT_THROW(gptq::pack_qweight(codes.data(), 1, 32, 5, qweight.data()), std::exception);
}

// ---------------------------------------------------------------------------
// gptq_checkpoint_sizes_for
// ---------------------------------------------------------------------------

void expect_sizes(int64_t n, int64_t k, int bits, int gs, int64_t qw_rows, int64_t qz_rows,
                  int64_t qz_cols) {
  SCOPED_TRACE("N " + std::to_string(n) + " K " + std::to_string(k) + " bits " +
               std::to_string(bits) + " gs " + std::to_string(gs));
  gptq_checkpoint_sizes s;
  std::memset(&s, 0xAB, sizeof s);
  ASSERT_EQ(gptq_checkpoint_sizes_for(n, k, bits, gs, &s), GPTQ_OK) << gptq_last_error();
  EXPECT_EQ(s.qweight_rows, qw_rows);
  EXPECT_EQ(s.qweight_cols, n);
  EXPECT_EQ(s.qzeros_rows, qz_rows);
  EXPECT_EQ(s.qzeros_cols, qz_cols);
  EXPECT_EQ(s.scales_rows, qz_rows);
  EXPECT_EQ(s.scales_cols, n);
  EXPECT_EQ(s.g_idx_len, k);
}

TEST(CheckpointSizes, Llama7bMlpEveryBitWidth) {
  // K = 4096, N = 11008, gs 128 → G = 32.
  expect_sizes(11008, 4096, 2, 128, 256, 32, 688);    // 4096·2/32, 11008·2/32
  expect_sizes(11008, 4096, 3, 128, 384, 32, 1032);   // 4096·3/32, 11008·3/32
  expect_sizes(11008, 4096, 4, 128, 512, 32, 1376);   // 4096/8, 11008/8
  expect_sizes(11008, 4096, 8, 128, 1024, 32, 2752);  // 4096/4, 11008/4
  // The transposed layer (down_proj): K = 11008, N = 4096, G = 86.
  expect_sizes(4096, 11008, 4, 128, 1376, 86, 512);
  expect_sizes(4096, 11008, 3, 128, 1032, 86, 384);
}

TEST(CheckpointSizes, GroupCounts) {
  expect_sizes(64, 96, 4, -1, 12, 1, 8);   // one group
  expect_sizes(64, 96, 4, 40, 12, 3, 8);   // 40 + 40 + 16
  expect_sizes(64, 96, 3, 40, 9, 3, 6);
  expect_sizes(64, 96, 4, 96, 12, 1, 8);
  expect_sizes(64, 96, 4, 97, 12, 1, 8);   // group larger than K
  expect_sizes(64, 96, 4, 1, 12, 96, 8);   // one column per group
  expect_sizes(64, 96, 8, 32, 24, 3, 16);
  expect_sizes(64, 96, 2, 32, 6, 3, 4);
}

TEST(CheckpointSizes, SmallestPackableShapes) {
  // 32/b values per word, 32 for 3 bits (32 values in 3 words).
  expect_sizes(16, 16, 2, -1, 1, 1, 1);
  expect_sizes(32, 32, 3, -1, 3, 1, 3);
  expect_sizes(8, 8, 4, -1, 1, 1, 1);
  expect_sizes(4, 4, 8, -1, 1, 1, 1);
  gptq_checkpoint_sizes s{};
  EXPECT_EQ(gptq_checkpoint_sizes_for(8, 8, 2, -1, &s), GPTQ_ERR_UNSUPPORTED);
  EXPECT_EQ(gptq_checkpoint_sizes_for(16, 16, 3, -1, &s), GPTQ_ERR_UNSUPPORTED);
  EXPECT_EQ(gptq_checkpoint_sizes_for(4, 4, 4, -1, &s), GPTQ_ERR_UNSUPPORTED);
  EXPECT_EQ(gptq_checkpoint_sizes_for(2, 2, 8, -1, &s), GPTQ_ERR_UNSUPPORTED);
}

// ---------------------------------------------------------------------------
// Import of hand-made buffers: unpacking through the public API.
// ---------------------------------------------------------------------------

void expect_codes(const gptq_qtensor *q, int64_t n, int64_t k, const std::vector<uint8_t> &want) {
  EXPECT_EQ(gptq_test::codes_of(q, n, k), want);
}

// dequantized[r, j] must equal scale(g_idx[j], r) · (code − zero(g_idx[j], r))
// bit for bit; the scale values are given as floats worked out by hand.
void expect_dequant(const gptq_qtensor *q, int64_t n, int64_t k, const std::vector<uint8_t> &codes,
                    const std::vector<float> &scale, const std::vector<int> &zero,
                    const std::vector<int> &g_idx) {
  const std::vector<float> d = gptq_test::dequantized(q, n, k);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = 0; j < k; ++j) {
      const int g = g_idx[j];
      const float want = scale[g * n + r] * static_cast<float>(codes[r * k + j] - zero[g * n + r]);
      ASSERT_EQ(std::memcmp(&d[r * k + j], &want, sizeof want), 0)
          << "row " << r << " col " << j << ": got " << d[r * k + j] << " want " << want;
    }
}

TEST(CheckpointImport, FourBitHandWordsV2) {
  const int64_t n = 8, k = 16;
  Ckpt c = alloc_ckpt(n, k, 4, 8);  // G = 2, qweight [2, 8], qzeros [2, 1]
  // Word 0 of each column (qweight[0·8 + n]):
  //   n=0: codes 0..7            → 0x76543210
  //   n=1: codes 15,14,...,8     → 0x89ABCDEF
  //   n=2..7: all codes equal n  → 0x22222222 ... 0x77777777
  // Word 1 (qweight[1·8 + n]):
  //   n=0: codes 8..15           → 0xFEDCBA98
  //   n=1: codes 7,6,...,0       → 0x01234567
  //   n=2..7: code 15 at j=8 (nibble 0) and j=15 (nibble 7), else 0 → 0xF000000F
  c.qweight = {w32(0x76543210), w32(0x89ABCDEF), w32(0x22222222), w32(0x33333333),
               w32(0x44444444), w32(0x55555555), w32(0x66666666), w32(0x77777777),
               w32(0xFEDCBA98), w32(0x01234567), w32(0xF000000F), w32(0xF000000F),
               w32(0xF000000F), w32(0xF000000F), w32(0xF000000F), w32(0xF000000F)};
  // qzeros: group 0 zeros 1..8 along N → 0x87654321; group 1: n=0 zero 15,
  // every other zero 0 → 0x0000000F.
  c.qzeros = {w32(0x87654321), w32(0x0000000F)};
  // scales: group 0 all 1.0 (0x3C00); group 1 all 0.5 (0x3800) but n=1 2.0 (0x4000).
  c.scales = {0x3C00, 0x3C00, 0x3C00, 0x3C00, 0x3C00, 0x3C00, 0x3C00, 0x3C00,
              0x3800, 0x4000, 0x3800, 0x3800, 0x3800, 0x3800, 0x3800, 0x3800};
  QTensor q = import_ckpt(n, k, 4, 8, GPTQ_FORMAT_V2, c, /*with_g_idx=*/false);
  ASSERT_TRUE(q);

  std::vector<uint8_t> codes(static_cast<size_t>(n * k));
  for (int j = 0; j < 16; ++j) codes[0 * k + j] = static_cast<uint8_t>(j);
  for (int j = 0; j < 16; ++j) codes[1 * k + j] = static_cast<uint8_t>(15 - j);
  for (int r = 2; r < 8; ++r) {
    for (int j = 0; j < 8; ++j) codes[r * k + j] = static_cast<uint8_t>(r);
    codes[r * k + 8] = 15;
    codes[r * k + 15] = 15;
  }
  expect_codes(q.get(), n, k, codes);
  const std::vector<int> zero = {1, 2, 3, 4, 5, 6, 7, 8, 15, 0, 0, 0, 0, 0, 0, 0};
  const std::vector<float> scale = {1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f,
                                    0.5f, 2.0f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f};
  std::vector<int> g_idx(k);
  for (int j = 0; j < k; ++j) g_idx[j] = j / 8;
  expect_dequant(q.get(), n, k, codes, scale, zero, g_idx);
  // Spot checks written out: row 0 col 0 = 1·(0−1) = −1; row 1 col 9 =
  // 2·(6−0) = 12; row 0 col 8 = 0.5·(8−15) = −3.5.
  const std::vector<float> d = gptq_test::dequantized(q.get(), n, k);
  EXPECT_EQ(d[0 * k + 0], -1.0f);
  EXPECT_EQ(d[1 * k + 9], 12.0f);
  EXPECT_EQ(d[0 * k + 8], -3.5f);

  gptq_qtensor_info info{};
  ASSERT_EQ(gptq_qtensor_get_info(q.get(), &info), GPTQ_OK);
  EXPECT_EQ(info.out_features, n);
  EXPECT_EQ(info.in_features, k);
  EXPECT_EQ(info.bits, 4);
  EXPECT_EQ(info.group_size, 8);
  EXPECT_EQ(info.groups, 2);
  EXPECT_EQ(info.act_order, 0);

  // Export v2 gives the very same words back, and g_idx = j / 8.
  const Ckpt out = export_ckpt(q.get(), n, k, 4, 8, GPTQ_FORMAT_V2);
  expect_same_ckpt(out, c, /*compare_g_idx=*/false);
  EXPECT_EQ(out.g_idx, (std::vector<int32_t>{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1}));
  // Zeros of 0 in group 1: v1 (stores zero − 1) cannot hold them.
  expect_export_refused(q.get(), n, k, 4, 8, GPTQ_FORMAT_V1);
}

TEST(CheckpointImport, FourBitV1ZerosAreStoredPlusOne) {
  const int64_t n = 8, k = 8;
  Ckpt c = alloc_ckpt(n, k, 4, -1);  // qweight [1, 8], qzeros [1, 1], scales [1, 8]
  // Every column holds codes 0..7 → 0x76543210.
  c.qweight.assign(8, w32(0x76543210));
  // v1 stored 15 for every n → zero 16 (= 2^4, which only v1 can express).
  c.qzeros = {w32(0xFFFFFFFF)};
  c.scales.assign(8, 0x3C00);  // 1.0
  QTensor q = import_ckpt(n, k, 4, -1, GPTQ_FORMAT_V1, c, false);
  ASSERT_TRUE(q);
  const std::vector<float> d = gptq_test::dequantized(q.get(), n, k);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = 0; j < k; ++j)
      ASSERT_EQ(d[r * k + j], static_cast<float>(j) - 16.0f) << r << "," << j;  // 1·(code−16)
  // v1 export writes stored 15 again; v2 cannot hold a zero of 16 in 4 bits.
  const Ckpt out = export_ckpt(q.get(), n, k, 4, -1, GPTQ_FORMAT_V1);
  expect_same_ckpt(out, c, false);
  EXPECT_EQ(out.g_idx, std::vector<int32_t>(8, 0));
  expect_export_refused(q.get(), n, k, 4, -1, GPTQ_FORMAT_V2);

  // Stored 0x76543210 in v1 means zeros 1..8; written as v2 that is
  // 0x87654321, and back as v1 0x76543210.
  c.qzeros = {w32(0x76543210)};
  QTensor q1 = import_ckpt(n, k, 4, -1, GPTQ_FORMAT_V1, c, false);
  ASSERT_TRUE(q1);
  const std::vector<float> d1 = gptq_test::dequantized(q1.get(), n, k);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = 0; j < k; ++j)
      ASSERT_EQ(d1[r * k + j], static_cast<float>(j - (r + 1))) << r << "," << j;
  EXPECT_EQ(export_ckpt(q1.get(), n, k, 4, -1, GPTQ_FORMAT_V2).qzeros,
            std::vector<int32_t>{w32(0x87654321)});
  EXPECT_EQ(export_ckpt(q1.get(), n, k, 4, -1, GPTQ_FORMAT_V1).qzeros,
            std::vector<int32_t>{w32(0x76543210)});
  // And the same words read as v2 are zeros 0..7, so v2 keeps the zero 0 of
  // column 0 while v1 refuses it.
  QTensor q2 = import_ckpt(n, k, 4, -1, GPTQ_FORMAT_V2, c, false);
  ASSERT_TRUE(q2);
  const std::vector<float> d2 = gptq_test::dequantized(q2.get(), n, k);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = 0; j < k; ++j)
      ASSERT_EQ(d2[r * k + j], static_cast<float>(j - r)) << r << "," << j;
  expect_same_ckpt(export_ckpt(q2.get(), n, k, 4, -1, GPTQ_FORMAT_V2), c, false);
  expect_export_refused(q2.get(), n, k, 4, -1, GPTQ_FORMAT_V1);
}

TEST(CheckpointImport, EightBitHandWordsBothFormats) {
  const int64_t n = 4, k = 8;
  Ckpt c = alloc_ckpt(n, k, 8, 4);  // G = 2; qweight [2, 4]; qzeros [2, 1]
  // Column n's word w is qweight[w·4 + n]; byte i of a word is code 4w + i.
  //   n=0: codes 01..08          → 0x04030201, 0x08070605
  //   n=1: FF,80,7F,00,10,20,30,40 → 0x007F80FF, 0x40302010
  //   n=2: all FF                → 0xFFFFFFFF, 0xFFFFFFFF
  //   n=3: all 00                → 0x00000000, 0x00000000
  c.qweight = {w32(0x04030201), w32(0x007F80FF), w32(0xFFFFFFFF), w32(0x00000000),
               w32(0x08070605), w32(0x40302010), w32(0xFFFFFFFF), w32(0x00000000)};
  // qzeros group 0: bytes 80,01,FF,00 (n=0..3) → 0x00FF0180; group 1: all 80.
  c.qzeros = {w32(0x00FF0180), w32(0x80808080)};
  // scales, by hand: 0x3C00 = 1.0, 0x3400 = 0.25, 0xBC00 = −1.0,
  // 0x0001 = 2^−24 (smallest subnormal); 0x7BFF = 65504 (largest finite),
  // 0x8000 = −0.0, 0x3555 = 2^−2·(1 + 341/1024) = 0.333251953125,
  // 0x0400 = 2^−14 (smallest normal).
  c.scales = {0x3C00, 0x3400, 0xBC00, 0x0001, 0x7BFF, 0x8000, 0x3555, 0x0400};
  const std::vector<float> scale = {1.0f, 0.25f, -1.0f, 5.9604644775390625e-8f,
                                    65504.0f, -0.0f, 0.333251953125f, 6.103515625e-05f};
  // Columns alternate between the groups (an act-order g_idx).
  c.g_idx = {1, 0, 1, 0, 1, 0, 1, 0};
  const std::vector<int> g_idx = {1, 0, 1, 0, 1, 0, 1, 0};
  const std::vector<uint8_t> codes = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
                                      0xFF, 0x80, 0x7F, 0x00, 0x10, 0x20, 0x30, 0x40,
                                      0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
                                      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};

  // v2: zeros as stored.
  QTensor q2 = import_ckpt(n, k, 8, 4, GPTQ_FORMAT_V2, c);
  ASSERT_TRUE(q2);
  expect_codes(q2.get(), n, k, codes);
  expect_dequant(q2.get(), n, k, codes, scale, {128, 1, 255, 0, 128, 128, 128, 128}, g_idx);
  gptq_qtensor_info info{};
  ASSERT_EQ(gptq_qtensor_get_info(q2.get(), &info), GPTQ_OK);
  EXPECT_EQ(info.act_order, 1);
  EXPECT_EQ(info.groups, 2);
  expect_same_ckpt(export_ckpt(q2.get(), n, k, 8, 4, GPTQ_FORMAT_V2), c);
  expect_export_refused(q2.get(), n, k, 8, 4, GPTQ_FORMAT_V1);  // zero 0 at n=3

  // v1: zero = stored + 1, so FF is a zero of 256.
  QTensor q1 = import_ckpt(n, k, 8, 4, GPTQ_FORMAT_V1, c);
  ASSERT_TRUE(q1);
  expect_codes(q1.get(), n, k, codes);
  expect_dequant(q1.get(), n, k, codes, scale, {129, 2, 256, 1, 129, 129, 129, 129}, g_idx);
  expect_same_ckpt(export_ckpt(q1.get(), n, k, 8, 4, GPTQ_FORMAT_V1), c);
  expect_export_refused(q1.get(), n, k, 8, 4, GPTQ_FORMAT_V2);  // zero 256 at n=2

  // A row with zeros that both formats can hold: v2 all 0x80 ↔ v1 all 0x7F.
  c.qzeros = {w32(0x80808080), w32(0x80808080)};
  QTensor q3 = import_ckpt(n, k, 8, 4, GPTQ_FORMAT_V2, c);
  ASSERT_TRUE(q3);
  EXPECT_EQ(export_ckpt(q3.get(), n, k, 8, 4, GPTQ_FORMAT_V1).qzeros,
            (std::vector<int32_t>{w32(0x7F7F7F7F), w32(0x7F7F7F7F)}));
}

TEST(CheckpointImport, TwoBitHandWordsBothFormats) {
  const int64_t n = 16, k = 16;
  Ckpt c = alloc_ckpt(n, k, 2, -1);  // qweight [1, 16], qzeros [1, 1], scales [1, 16]
  std::fill(c.qweight.begin(), c.qweight.end(), 0);
  c.qweight[0] = w32(0xE4E4E4E4);  // codes 0,1,2,3 repeating
  c.qweight[1] = w32(0xFFFFFFFF);  // all 3
  c.qweight[2] = w32(0x80000001);  // code 1 at j=0, code 2 at j=15
  c.qweight[3] = w32(0x0000001B);  // 3,2,1,0 then zeros
  // qzeros: zero of column n is n mod 4 → 0xE4E4E4E4 (as stored).
  c.qzeros = {w32(0xE4E4E4E4)};
  c.scales.assign(16, 0x3C00);
  std::vector<uint8_t> codes(static_cast<size_t>(n * k), 0);
  for (int j = 0; j < 16; ++j) codes[0 * k + j] = static_cast<uint8_t>(j % 4);
  for (int j = 0; j < 16; ++j) codes[1 * k + j] = 3;
  codes[2 * k + 0] = 1;
  codes[2 * k + 15] = 2;
  codes[3 * k + 0] = 3;
  codes[3 * k + 1] = 2;
  codes[3 * k + 2] = 1;
  const std::vector<float> scale(16, 1.0f);
  const std::vector<int> g_idx(16, 0);

  QTensor q2 = import_ckpt(n, k, 2, -1, GPTQ_FORMAT_V2, c, false);
  ASSERT_TRUE(q2);
  expect_codes(q2.get(), n, k, codes);
  std::vector<int> zero2(16), zero1(16);
  for (int r = 0; r < 16; ++r) {
    zero2[r] = r % 4;
    zero1[r] = r % 4 + 1;
  }
  expect_dequant(q2.get(), n, k, codes, scale, zero2, g_idx);
  expect_same_ckpt(export_ckpt(q2.get(), n, k, 2, -1, GPTQ_FORMAT_V2), c, false);
  expect_export_refused(q2.get(), n, k, 2, -1, GPTQ_FORMAT_V1);

  QTensor q1 = import_ckpt(n, k, 2, -1, GPTQ_FORMAT_V1, c, false);
  ASSERT_TRUE(q1);
  expect_codes(q1.get(), n, k, codes);
  expect_dequant(q1.get(), n, k, codes, scale, zero1, g_idx);
  expect_same_ckpt(export_ckpt(q1.get(), n, k, 2, -1, GPTQ_FORMAT_V1), c, false);
  expect_export_refused(q1.get(), n, k, 2, -1, GPTQ_FORMAT_V2);  // zero 4 = 2^2

  // Symmetric 2-bit zeros are all 2 (0b10): v2 0xAAAAAAAA, v1 stores 1 → 0x55555555.
  c.qzeros = {w32(0xAAAAAAAA)};
  QTensor q3 = import_ckpt(n, k, 2, -1, GPTQ_FORMAT_V2, c, false);
  ASSERT_TRUE(q3);
  EXPECT_EQ(export_ckpt(q3.get(), n, k, 2, -1, GPTQ_FORMAT_V1).qzeros,
            std::vector<int32_t>{w32(0x55555555)});
}

TEST(CheckpointImport, ThreeBitHandWordsSpanBoundaries) {
  const int64_t n = 32, k = 32;
  Ckpt c = alloc_ckpt(n, k, 3, 32);  // qweight [3, 32], qzeros [1, 3], scales [1, 32]
  std::fill(c.qweight.begin(), c.qweight.end(), 0);
  auto set_col = [&](int col, uint32_t a, uint32_t b, uint32_t d) {
    c.qweight[0 * 32 + col] = w32(a);
    c.qweight[1 * 32 + col] = w32(b);
    c.qweight[2 * 32 + col] = w32(d);
  };
  // n=0: codes j mod 8 → 0o76543210 = 0xFAC688 repeated (see PackRun above).
  set_col(0, 0x88FAC688, 0xC688FAC6, 0xFAC688FA);
  // n=1: code 7 at j=10 (bits 30,31 | 32)           → 0xC0000000, 0x1, 0
  set_col(1, 0xC0000000, 0x00000001, 0x00000000);
  // n=2: code 7 at j=21 (bit 63 | bits 64,65)       → 0, 0x80000000, 0x3
  set_col(2, 0x00000000, 0x80000000, 0x00000003);
  // n=3: code 5 = 0b101 at j=10: bit 30, bit 32     → 0x40000000, 0x1, 0
  set_col(3, 0x40000000, 0x00000001, 0x00000000);
  // n=4: code 6 = 0b110 at j=21: bits 64,65         → 0, 0, 0x3
  set_col(4, 0x00000000, 0x00000000, 0x00000003);
  // n=5: code 3 = 0b011 at j=21: bits 63,64         → 0, 0x80000000, 0x1
  set_col(5, 0x00000000, 0x80000000, 0x00000001);
  // n=6: all 7                                      → all ones
  set_col(6, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF);
  // n=7: code 1 at j=0 (bit 0), code 7 at j=31 (bits 93..95) → 0x1, 0, 0xE0000000
  set_col(7, 0x00000001, 0x00000000, 0xE0000000);
  // qzeros: 32 zeros along N, zero of column n = n mod 8: the same ramp.
  c.qzeros = {w32(0x88FAC688), w32(0xC688FAC6), w32(0xFAC688FA)};
  c.scales.assign(32, 0x3800);  // 0.5

  std::vector<uint8_t> codes(static_cast<size_t>(n * k), 0);
  for (int j = 0; j < 32; ++j) codes[0 * k + j] = static_cast<uint8_t>(j % 8);
  codes[1 * k + 10] = 7;
  codes[2 * k + 21] = 7;
  codes[3 * k + 10] = 5;
  codes[4 * k + 21] = 6;
  codes[5 * k + 21] = 3;
  for (int j = 0; j < 32; ++j) codes[6 * k + j] = 7;
  codes[7 * k + 0] = 1;
  codes[7 * k + 31] = 7;
  const std::vector<float> scale(32, 0.5f);
  const std::vector<int> g_idx(32, 0);
  std::vector<int> zero2(32), zero1(32);
  for (int r = 0; r < 32; ++r) {
    zero2[r] = r % 8;
    zero1[r] = r % 8 + 1;
  }

  for (gptq_checkpoint_format fmt : {GPTQ_FORMAT_V2, GPTQ_FORMAT_V1}) {
    SCOPED_TRACE(fmt == GPTQ_FORMAT_V1 ? "v1" : "v2");
    QTensor q = import_ckpt(n, k, 3, 32, fmt, c, false);
    ASSERT_TRUE(q);
    expect_codes(q.get(), n, k, codes);
    expect_dequant(q.get(), n, k, codes, scale, fmt == GPTQ_FORMAT_V1 ? zero1 : zero2, g_idx);
    expect_same_ckpt(export_ckpt(q.get(), n, k, 3, 32, fmt), c, false);
    // v2 has zeros 0 (v1 cannot hold them); v1 has zeros 8 (v2 cannot).
    expect_export_refused(q.get(), n, k, 3, 32,
                          fmt == GPTQ_FORMAT_V1 ? GPTQ_FORMAT_V2 : GPTQ_FORMAT_V1);
  }

  // Symmetric 3-bit zeros are all 4: v2 stores 4 = 0o44444444 → 0x924924
  // repeated → 0x24924924, 0x49249249, 0x92492492; v1 stores 3 =
  // 0o33333333 → 0x6DB6DB repeated → 0xDB6DB6DB, 0xB6DB6DB6, 0x6DB6DB6D.
  c.qzeros = {w32(0x24924924), w32(0x49249249), w32(0x92492492)};
  QTensor q4 = import_ckpt(n, k, 3, 32, GPTQ_FORMAT_V2, c, false);
  ASSERT_TRUE(q4);
  const Ckpt v1 = export_ckpt(q4.get(), n, k, 3, 32, GPTQ_FORMAT_V1);
  EXPECT_EQ(v1.qzeros, (std::vector<int32_t>{w32(0xDB6DB6DB), w32(0xB6DB6DB6), w32(0x6DB6DB6D)}));
  Ckpt back = v1;
  QTensor q5 = import_ckpt(n, k, 3, 32, GPTQ_FORMAT_V1, back);
  ASSERT_TRUE(q5);
  EXPECT_EQ(gptq_test::dequantized(q5.get(), n, k), gptq_test::dequantized(q4.get(), n, k));
  EXPECT_EQ(export_ckpt(q5.get(), n, k, 3, 32, GPTQ_FORMAT_V2).qzeros, c.qzeros);
}

TEST(CheckpointImport, ScalesPassThroughBitForBit) {
  const int64_t n = 8, k = 64;
  std::mt19937 rng(7);
  Ckpt c = alloc_ckpt(n, k, 4, 16);  // G = 4, scales [4, 8]
  for (auto &w : c.qweight) w = static_cast<int32_t>(rng());
  for (auto &w : c.qzeros) w = static_cast<int32_t>(rng());
  // Awkward but finite fp16 patterns: ±0, subnormals, largest finite,
  // negative values, and random finite patterns (exponent != 0x1F).
  const uint16_t fixed[] = {0x0000, 0x8000, 0x0001, 0x83FF, 0x03FF, 0x7BFF, 0xFBFF, 0x0400,
                            0xC000, 0x3555, 0x1234, 0xABCD};
  for (size_t i = 0; i < c.scales.size(); ++i) {
    if (i < sizeof fixed / sizeof fixed[0]) {
      c.scales[i] = fixed[i];
    } else {
      uint16_t h;
      do {
        h = static_cast<uint16_t>(rng());
      } while ((h & 0x7C00) == 0x7C00);
      c.scales[i] = h;
    }
  }
  for (gptq_checkpoint_format fmt : {GPTQ_FORMAT_V1, GPTQ_FORMAT_V2}) {
    QTensor q = import_ckpt(n, k, 4, 16, fmt, c, false);
    ASSERT_TRUE(q);
    const Ckpt out = export_ckpt(q.get(), n, k, 4, 16, fmt);
    EXPECT_EQ(out.scales, c.scales);
    // The scale dequantize uses is exactly the fp16 value of those bits:
    // check one entry per (group, row) against an independent decode.
    const std::vector<float> d = gptq_test::dequantized(q.get(), n, k);
    const std::vector<uint8_t> codes = gptq_test::codes_of(q.get(), n, k);
    for (int64_t g = 0; g < 4; ++g)
      for (int64_t r = 0; r < n; ++r) {
        const uint16_t h = c.scales[g * n + r];
        // Independent decode: sign · (mantissa [+ 1024 if normal]) · 2^(e − 25).
        const int e = (h >> 10) & 0x1F;
        const int m = h & 0x3FF;
        const double mag = e == 0 ? std::ldexp(static_cast<double>(m), -24)
                                  : std::ldexp(static_cast<double>(m + 1024), e - 25);
        const float s = static_cast<float>((h & 0x8000) ? -mag : mag);
        // Zero of row r in group g from the packed qzeros (bit-level).
        const uint32_t stored =
            bit_read(reinterpret_cast<const uint32_t *>(&c.qzeros[g]), 1, r, 4);
        const int zero = static_cast<int>(stored) + (fmt == GPTQ_FORMAT_V1 ? 1 : 0);
        const int64_t j = g * 16;  // first column of the group
        const float want = s * static_cast<float>(codes[r * k + j] - zero);
        EXPECT_EQ(std::memcmp(&d[r * k + j], &want, sizeof want), 0)
            << "scale 0x" << std::hex << h << std::dec << ": got " << d[r * k + j]
            << " want " << want;
      }
  }
}

TEST(CheckpointImport, NullGIdxMeansColumnOverGroupSize) {
  // K = 96, group_size 40 → G = 3 with groups of 40, 40, 16 columns.
  const int64_t n = 8, k = 96;
  Ckpt c = alloc_ckpt(n, k, 4, 40);
  ASSERT_EQ(c.scales.size(), 3u * 8u);
  // All codes 9 (0x99999999), zeros 1 (0x11111111): code − zero = 8.
  std::fill(c.qweight.begin(), c.qweight.end(), w32(0x99999999));
  std::fill(c.qzeros.begin(), c.qzeros.end(), w32(0x11111111));
  // Group g has scale 2^g: 1.0, 2.0, 4.0 (0x3C00, 0x4000, 0x4400).
  for (int r = 0; r < 8; ++r) {
    c.scales[0 * 8 + r] = 0x3C00;
    c.scales[1 * 8 + r] = 0x4000;
    c.scales[2 * 8 + r] = 0x4400;
  }
  QTensor q = import_ckpt(n, k, 4, 40, GPTQ_FORMAT_V2, c, /*with_g_idx=*/false);
  ASSERT_TRUE(q);
  gptq_qtensor_info info{};
  ASSERT_EQ(gptq_qtensor_get_info(q.get(), &info), GPTQ_OK);
  EXPECT_EQ(info.groups, 3);
  EXPECT_EQ(info.group_size, 40);
  EXPECT_EQ(info.act_order, 0);
  const std::vector<float> d = gptq_test::dequantized(q.get(), n, k);
  for (int64_t r = 0; r < n; ++r) {
    EXPECT_EQ(d[r * k + 0], 8.0f);
    EXPECT_EQ(d[r * k + 39], 8.0f);
    EXPECT_EQ(d[r * k + 40], 16.0f);
    EXPECT_EQ(d[r * k + 79], 16.0f);
    EXPECT_EQ(d[r * k + 80], 32.0f);
    EXPECT_EQ(d[r * k + 95], 32.0f);
  }
  const Ckpt out = export_ckpt(q.get(), n, k, 4, 40, GPTQ_FORMAT_V2);
  for (int j = 0; j < 96; ++j) EXPECT_EQ(out.g_idx[j], j < 40 ? 0 : j < 80 ? 1 : 2) << j;
  expect_same_ckpt(out, c, false);
  // Passing that natural g_idx explicitly is the same tensor.
  Ckpt explicit_g = c;
  explicit_g.g_idx = out.g_idx;
  QTensor q2 = import_ckpt(n, k, 4, 40, GPTQ_FORMAT_V2, explicit_g);
  ASSERT_TRUE(q2);
  ASSERT_EQ(gptq_qtensor_get_info(q2.get(), &info), GPTQ_OK);
  EXPECT_EQ(info.act_order, 0);
  EXPECT_EQ(gptq_test::dequantized(q2.get(), n, k), d);
}

TEST(CheckpointImport, GroupSizeMinusOneIsOneGroup) {
  const int64_t n = 8, k = 64;
  Ckpt c = alloc_ckpt(n, k, 4, -1);
  ASSERT_EQ(c.qzeros.size(), 1u);
  ASSERT_EQ(c.scales.size(), 8u);
  std::fill(c.qweight.begin(), c.qweight.end(), w32(0xFEDCBA98));  // codes 8..15 per word
  c.qzeros = {w32(0x88888888)};                                    // zero 8 everywhere
  for (int r = 0; r < 8; ++r) c.scales[r] = 0x3C00;
  QTensor q = import_ckpt(n, k, 4, -1, GPTQ_FORMAT_V2, c, false);
  ASSERT_TRUE(q);
  gptq_qtensor_info info{};
  ASSERT_EQ(gptq_qtensor_get_info(q.get(), &info), GPTQ_OK);
  EXPECT_EQ(info.groups, 1);
  EXPECT_EQ(info.group_size, -1);
  EXPECT_EQ(info.act_order, 0);
  const std::vector<float> d = gptq_test::dequantized(q.get(), n, k);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = 0; j < k; ++j) ASSERT_EQ(d[r * k + j], static_cast<float>(j % 8));
  const Ckpt out = export_ckpt(q.get(), n, k, 4, -1, GPTQ_FORMAT_V2);
  EXPECT_EQ(out.g_idx, std::vector<int32_t>(64, 0));
  // v1 stores 7 = 0x77777777.
  EXPECT_EQ(export_ckpt(q.get(), n, k, 4, -1, GPTQ_FORMAT_V1).qzeros,
            std::vector<int32_t>{w32(0x77777777)});
}

// export(import(buffers)) == buffers, bit for bit, for random buffers of
// every bit width and both formats; codes checked bit-level against qweight.
TEST(CheckpointRoundTrip, RandomBuffersEveryWidthBothFormats) {
  std::mt19937 rng(2024);
  const int64_t n = 64, k = 96;
  for (int bits : {2, 3, 4, 8}) {
    for (gptq_checkpoint_format fmt : {GPTQ_FORMAT_V1, GPTQ_FORMAT_V2}) {
      for (int gs : {32, 40, -1, 1}) {
        for (bool with_g : {false, true}) {
          SCOPED_TRACE("bits " + std::to_string(bits) + " v" + std::to_string(fmt) + " gs " +
                       std::to_string(gs) + (with_g ? " g_idx" : " no g_idx"));
          Ckpt c = alloc_ckpt(n, k, bits, gs);
          const int64_t groups = static_cast<int64_t>(c.scales.size()) / n;
          for (auto &w : c.qweight) w = static_cast<int32_t>(rng());
          for (auto &w : c.qzeros) w = static_cast<int32_t>(rng());
          for (auto &h : c.scales) {
            do {
              h = static_cast<uint16_t>(rng());
            } while ((h & 0x7C00) == 0x7C00);
          }
          for (int64_t j = 0; j < k; ++j)
            c.g_idx[j] = with_g ? static_cast<int32_t>(rng() % groups)
                                : static_cast<int32_t>(gs < 0 ? 0 : j / gs);
          QTensor q = import_ckpt(n, k, bits, gs, fmt, c, with_g);
          ASSERT_TRUE(q);
          const Ckpt out = export_ckpt(q.get(), n, k, bits, gs, fmt);
          expect_same_ckpt(out, c);
          // Unpacking: code (r, j) is value j of column r's run in qweight.
          const std::vector<uint8_t> codes = gptq_test::codes_of(q.get(), n, k);
          const uint32_t *qw = reinterpret_cast<const uint32_t *>(c.qweight.data());
          for (int64_t r = 0; r < n; ++r)
            for (int64_t j = 0; j < k; ++j)
              ASSERT_EQ(codes[r * k + j], bit_read(qw + r, n, j, bits)) << r << "," << j;
        }
      }
    }
  }
}

// A tensor imported onto the CPU keeps its codes once, in the matmul layout
// at their bit width (half a byte each at 4 bits), not also as a byte each,
// and its scales and zeros once, beside them in that layout: what an engine
// holds for a model is about the checkpoint's size.
TEST(CheckpointImport, CpuTensorHoldsItsCodesAndGroupParamsOnce) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33)
  const auto heap_in_use = [] {
    const struct mallinfo2 m = mallinfo2();
    return static_cast<double>(m.uordblks + m.hblkhd);
  };
  {  // Sanitizer runtimes replace malloc, and glibc's counts then miss.
    const double before = heap_in_use();
    std::vector<uint8_t> probe(size_t{16} << 20, 1);
    if (heap_in_use() - before < static_cast<double>(probe.size()))
      GTEST_SKIP() << "malloc's statistics do not see this process's allocations";
  }
  const int64_t n = 4096, k = 4096;
  Ckpt c = alloc_ckpt(n, k, 4, 32, 0x12345678);
  for (auto &h : c.scales) h = 0x3C00;
  const double before = heap_in_use();
  QTensor q = import_ckpt(n, k, 4, 32, GPTQ_FORMAT_V2, c, /*with_g_idx=*/false);
  ASSERT_TRUE(q);
  const double per_weight = (heap_in_use() - before) / static_cast<double>(n * k);
  std::cout << "imported 4-bit g32 tensor: " << per_weight << " heap bytes a weight\n";
  // The layout's 0.5 bytes of codes and its 0.125 of scales and zeros (two
  // 16-bit values a group of 32); the tensor's own [G, N] scales and int32
  // zeros besides would be 0.19 more, codes kept as bytes a whole byte.
  EXPECT_GT(per_weight, 0.6);
  EXPECT_LT(per_weight, 0.7);
  // And the codes are all there: every nibble of 0x12345678, in order.
  const std::vector<uint8_t> codes = gptq_test::codes_of(q.get(), n, k);
  for (int64_t j = 0; j < 8; ++j) EXPECT_EQ(codes[(n - 1) * k + k - 8 + j], 8 - j);
  // A symmetric tensor (every zero 8) keeps its one zero, not a 16-bit one
  // a group and row: 0.0625 bytes a weight less.
  for (int32_t &v : c.qzeros) v = static_cast<int32_t>(0x88888888u);
  const double before_symmetric = heap_in_use();
  QTensor symmetric = import_ckpt(n, k, 4, 32, GPTQ_FORMAT_V2, c, /*with_g_idx=*/false);
  ASSERT_TRUE(symmetric);
  const double symmetric_per_weight =
      (heap_in_use() - before_symmetric) / static_cast<double>(n * k);
  std::cout << "imported symmetric 4-bit g32 tensor: " << symmetric_per_weight
            << " heap bytes a weight\n";
  EXPECT_GT(symmetric_per_weight, 0.55);
  EXPECT_LT(symmetric_per_weight, 0.6);
#else
  GTEST_SKIP() << "needs glibc's mallinfo2";
#endif
}

// Importing a checkpoint onto the CPU lays its codes out straight from the
// packed qweight: at no moment does it hold a byte a code (the codes
// unpacked, a whole tensor at once, were the largest transient of loading a
// model). The resident peak over the import is measured on Linux, where
// writing 5 to /proc/self/clear_refs resets it.
// AddressSanitizer keeps freed memory in quarantine instead of reusing it,
// so under it the resident peak counts every allocation the import made,
// freed or not, and says nothing of what it held at once.
#if defined(__SANITIZE_ADDRESS__)
#define GPTQ_TEST_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GPTQ_TEST_UNDER_ASAN 1
#endif
#endif

TEST(CheckpointImport, ImportNeverHoldsAByteACode) {
#if defined(GPTQ_TEST_UNDER_ASAN)
  GTEST_SKIP() << "AddressSanitizer's quarantine keeps freed memory resident";
#elif defined(__linux__)
  const auto peak_kb = [] {
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line))
      if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
    return -1L;
  };
  const auto reset_peak = [] {
    std::ofstream clear("/proc/self/clear_refs");
    clear << "5";
    clear.flush();
    return clear.good();
  };
  const int64_t n = 8192, k = 8192;  // 32 MiB of 4-bit qweight, 64 MiB as bytes
  Ckpt c = alloc_ckpt(n, k, 4, 128, 0x12345678);
  for (auto &h : c.scales) h = 0x3C00;
  if (!reset_peak()) GTEST_SKIP() << "/proc/self/clear_refs cannot be written here";
  const long before = peak_kb();
  // Touching fresh memory must raise the peak, or it is not what we read.
  std::vector<uint8_t> probe(size_t{16} << 20, 1);
  if (before < 0 || peak_kb() - before < 12 * 1024)
    GTEST_SKIP() << "the resident peak does not follow this process's pages here";
  std::vector<uint8_t>().swap(probe);
  ASSERT_TRUE(reset_peak());
  const long start = peak_kb();
  QTensor q = import_ckpt(n, k, 4, 128, GPTQ_FORMAT_V2, c, /*with_g_idx=*/false);
  ASSERT_TRUE(q);
  const double rise_mib = static_cast<double>(peak_kb() - start) / 1024.0;
  std::cout << "import of 8192 x 8192 4-bit: resident peak rose " << rise_mib << " MiB\n";
  // The layout's 32 MiB of codes and about 2 of scales, zeros and bookkeeping;
  // the codes as bytes besides would be 64 MiB more.
  EXPECT_LT(rise_mib, 56.0);
  EXPECT_EQ(gptq_test::codes_of(q.get(), n, k)[0], 8);
#else
  GTEST_SKIP() << "measures the resident peak through Linux's /proc";
#endif
}

// Random checkpoints imported onto the CPU, whose layout then holds the
// scales and zeros: exporting gives back the buffers imported, and
// dequantizing gives scale·(code − zero) with each column's group. Also with
// act-order g_idx, and with a g_idx that leaves a group without columns,
// whose scales and zeros the layout has no slot for (the tensor keeps them).
TEST(CheckpointImport, LayoutHeldScalesAndZerosExportAndDequantizeAsImported) {
  std::mt19937 rng(21);
  for (const int bits : {2, 3, 4, 8}) {
    for (const int gs : {32, 64, -1}) {
      // j / gs, shuffled, one group empty; then j / gs with every zero 2^bits − 1
      // (one zero for all, which the layout keeps once: uniform_zero).
      for (const int g_idx_kind : {0, 1, 2, 3}) {
        if (gs < 0 && (g_idx_kind == 1 || g_idx_kind == 2)) continue;
        SCOPED_TRACE("bits " + std::to_string(bits) + ", group " + std::to_string(gs) +
                     ", g_idx kind " + std::to_string(g_idx_kind));
        // qzeros pack whole words of rows; 4 and 8 bits leave a last tile
        // of 8 rows.
        const int64_t n = bits == 4 || bits == 8 ? 40 : 96, k = 128;
        const gptq_checkpoint_sizes sz = sizes_of(n, k, bits, gs);
        Ckpt c = alloc_ckpt(n, k, bits, gs);
        for (int32_t &v : c.qweight) v = static_cast<int32_t>(rng());
        // v2 zeros in 0 .. 2^bits − 1: any packed word.
        for (int32_t &v : c.qzeros) v = g_idx_kind == 3 ? -1 : static_cast<int32_t>(rng());
        for (uint16_t &h : c.scales) h = static_cast<uint16_t>(0x2000 + rng() % 0x3000);
        const int64_t groups = sz.scales_rows;
        for (int64_t j = 0; j < k; ++j) c.g_idx[j] = static_cast<int32_t>(gs < 0 ? 0 : j / gs);
        if (g_idx_kind == 1) std::shuffle(c.g_idx.begin(), c.g_idx.end(), rng);
        if (g_idx_kind == 2)  // group 1's columns go to group 0
          for (int32_t &g : c.g_idx) g = g == 1 ? 0 : g;
        QTensor q = import_ckpt(n, k, bits, gs, GPTQ_FORMAT_V2, c);
        ASSERT_TRUE(q);
        expect_same_ckpt(export_ckpt(q.get(), n, k, bits, gs, GPTQ_FORMAT_V2), c);
        // Dequantized, against the buffers themselves.
        const std::vector<float> d = gptq_test::dequantized(q.get(), n, k);
        const std::vector<uint8_t> codes = gptq_test::codes_of(q.get(), n, k);
        const uint32_t *qzeros = reinterpret_cast<const uint32_t *>(c.qzeros.data());
        for (int64_t r = 0; r < n; ++r)
          for (int64_t j = 0; j < k; ++j) {
            const int64_t g = c.g_idx[j];
            ASSERT_LT(g, groups);
            const uint32_t zero = bit_read(qzeros + g * sz.qzeros_cols, 1, r, bits);
            const uint16_t h = c.scales[g * n + r];  // positive normal: (1024 + m)·2^(e − 25)
            const auto scale = static_cast<float>(
                std::ldexp(static_cast<double>((h & 0x3FF) + 1024), ((h >> 10) & 0x1F) - 25));
            ASSERT_EQ(d[r * k + j], scale * (static_cast<float>(codes[r * k + j]) -
                                             static_cast<float>(zero)))
                << r << "," << j;
          }
      }
    }
  }
}

// ---------------------------------------------------------------------------
// quantize → export → import → dequantize is the identity, bit for bit.
// ---------------------------------------------------------------------------

TEST(CheckpointRoundTrip, QuantizedTensorSurvivesExportImport) {
  const int64_t n = 32, k = 64, tokens = 128;
  const std::vector<float> x = gptq_test::correlated_activations(tokens, k, 11);
  const std::vector<float> w = gptq_test::layer_weights(n, k, 12);
  std::vector<float> xm(static_cast<size_t>(3 * k));
  for (size_t i = 0; i < xm.size(); ++i) xm[i] = x[i];
  for (int bits : {2, 3, 4, 8}) {
    for (int sym : {1, 0}) {
      for (int act_order : {0, 1}) {
        for (int gs : {32, -1}) {
          SCOPED_TRACE("bits " + std::to_string(bits) + " sym " + std::to_string(sym) +
                       " act_order " + std::to_string(act_order) + " gs " + std::to_string(gs));
          gptq_config cfg = gptq_test::default_config();
          cfg.bits = bits;
          cfg.sym = sym;
          cfg.act_order = act_order;
          cfg.group_size = gs;
          cfg.block_size = 16;
          QTensor q = gptq_test::quantize_layer(cfg, x, w, tokens, n, k);
          ASSERT_TRUE(q);
          gptq_qtensor_info info{};
          ASSERT_EQ(gptq_qtensor_get_info(q.get(), &info), GPTQ_OK);
          const std::vector<float> d = gptq_test::dequantized(q.get(), n, k);
          const std::vector<uint8_t> codes = gptq_test::codes_of(q.get(), n, k);

          std::vector<gptq_checkpoint_format> formats = {GPTQ_FORMAT_V2};
          if (sym) formats.push_back(GPTQ_FORMAT_V1);  // symmetric zeros are 2^(b−1) >= 2
          for (gptq_checkpoint_format fmt : formats) {
            Ckpt c = export_ckpt(q.get(), n, k, bits, gs, fmt);
            // The exported qweight holds code (r, j) as value j of column r's
            // run: words qweight[w·N + r].
            const uint32_t *qw = reinterpret_cast<const uint32_t *>(c.qweight.data());
            for (int64_t r = 0; r < n; ++r)
              for (int64_t j = 0; j < k; ++j)
                ASSERT_EQ(codes[r * k + j], bit_read(qw + r, n, j, bits)) << r << "," << j;
            QTensor back = import_ckpt(n, k, bits, gs, fmt, c);
            ASSERT_TRUE(back);
            const std::vector<float> d2 = gptq_test::dequantized(back.get(), n, k);
            ASSERT_EQ(std::memcmp(d.data(), d2.data(), d.size() * sizeof(float)), 0);
            EXPECT_EQ(gptq_test::codes_of(back.get(), n, k), codes);
            gptq_qtensor_info info2{};
            ASSERT_EQ(gptq_qtensor_get_info(back.get(), &info2), GPTQ_OK);
            EXPECT_EQ(info2.out_features, info.out_features);
            EXPECT_EQ(info2.in_features, info.in_features);
            EXPECT_EQ(info2.bits, info.bits);
            EXPECT_EQ(info2.group_size, info.group_size);
            EXPECT_EQ(info2.groups, info.groups);
            EXPECT_EQ(info2.act_order, info.act_order);
            // Exporting the imported tensor gives the same buffers again.
            expect_same_ckpt(export_ckpt(back.get(), n, k, bits, gs, fmt), c);
            // And both multiply identically.
            std::vector<float> y1(static_cast<size_t>(3 * n)), y2(y1.size());
            ASSERT_EQ(
                gptq_matmul(q.get(), xm.data(), GPTQ_DTYPE_F32, 3, k, nullptr, y1.data(), 3 * n),
                GPTQ_OK);
            ASSERT_EQ(
                gptq_matmul(back.get(), xm.data(), GPTQ_DTYPE_F32, 3, k, nullptr, y2.data(), 3 * n),
                GPTQ_OK);
            EXPECT_EQ(std::memcmp(y1.data(), y2.data(), y1.size() * sizeof(float)), 0);
          }
          if (act_order && gs > 0) {
            // With these outlier channels act-order reorders columns, so g_idx
            // is not j / 32 and the flag must say so.
            EXPECT_EQ(info.act_order, 1);
          }
        }
      }
    }
  }
}

// An asymmetric layer with an all-positive row has a zero of 0 there: v2
// keeps it, v1 refuses and writes nothing.
TEST(CheckpointRoundTrip, AsymmetricZeroOfZeroNeedsV2) {
  const int64_t n = 8, k = 32, tokens = 64;
  const std::vector<float> x = gptq_test::correlated_activations(tokens, k, 5);
  std::vector<float> w = gptq_test::layer_weights(n, k, 6);
  for (int64_t j = 0; j < k; ++j) w[j] = 0.01f + 0.001f * static_cast<float>(j);  // row 0 > 0
  gptq_config cfg = gptq_test::default_config();
  cfg.sym = 0;
  cfg.group_size = -1;  // parameters from the original weights: min 0 → zero 0
  QTensor q = gptq_test::quantize_layer(cfg, x, w, tokens, n, k);
  ASSERT_TRUE(q);
  expect_export_refused(q.get(), n, k, 4, -1, GPTQ_FORMAT_V1);
  Ckpt c = export_ckpt(q.get(), n, k, 4, -1, GPTQ_FORMAT_V2);
  EXPECT_EQ(c.qzeros[0] & 0xF, 0);  // column 0's zero, the low nibble
  QTensor back = import_ckpt(n, k, 4, -1, GPTQ_FORMAT_V2, c);
  ASSERT_TRUE(back);
  EXPECT_EQ(gptq_test::dequantized(back.get(), n, k), gptq_test::dequantized(q.get(), n, k));
}

}  // namespace
