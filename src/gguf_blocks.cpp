#include "gguf_blocks.h"

#include <cstring>
#include <string>

#include "error.h"
#include "gguf_grid.h"
#include "half.h"

namespace gptq {

namespace {

// Largest dimension accepted, as for contexts: BLAS and LAPACK take ints.
constexpr int64_t kMaxDim = INT32_MAX;

void put_half(uint8_t *&p, uint16_t h) {
  p[0] = static_cast<uint8_t>(h & 0xffu);
  p[1] = static_cast<uint8_t>(h >> 8);
  p += 2;
}

// qs[16]: the low nibbles of codes 0..15 in the low halves of the bytes,
// those of codes 16..31 in the high halves.
void put_nibbles(uint8_t *&p, const uint8_t *codes) {
  for (int j = 0; j < 16; ++j)
    p[j] = static_cast<uint8_t>((codes[j] & 0x0fu) | (codes[j + 16] & 0x0fu) << 4);
  p += 16;
}

// qh[4]: bit 4 of code j as bit j of a little-endian 32-bit word.
void put_high_bits(uint8_t *&p, const uint8_t *codes) {
  uint32_t qh = 0;
  for (int j = 0; j < 32; ++j) qh |= static_cast<uint32_t>((codes[j] >> 4) & 1u) << j;
  for (int b = 0; b < 4; ++b) p[b] = static_cast<uint8_t>(qh >> (8 * b));
  p += 4;
}

// Q4_K and Q5_K's scales[12]: eight 6-bit scales sc and mins m. Sub-blocks
// 0..3 keep theirs in the low 6 bits of bytes j (sc) and j + 4 (m);
// sub-blocks 4..7 keep their low 4 bits in byte j + 4 (sc low nibble, m
// high nibble) and their top 2 bits in the top bits of bytes j − 4 (sc) and
// j (m).
void put_super_scales(uint8_t *p, const int16_t *sc, const int16_t *m) {
  for (int j = 0; j < 12; ++j) p[j] = 0;
  for (int j = 0; j < 8; ++j) {
    const uint8_t s = static_cast<uint8_t>(sc[j]), n = static_cast<uint8_t>(m[j]);
    if (j < 4) {
      p[j] = static_cast<uint8_t>(p[j] | s);
      p[j + 4] = static_cast<uint8_t>(p[j + 4] | n);
    } else {
      p[j + 4] = static_cast<uint8_t>((s & 0x0fu) | (n & 0x0fu) << 4);
      p[j - 4] = static_cast<uint8_t>(p[j - 4] | (s >> 4) << 6);
      p[j] = static_cast<uint8_t>(p[j] | (n >> 4) << 6);
    }
  }
}

void get_super_scales(const uint8_t *p, int *sc, int *m) {
  for (int j = 0; j < 8; ++j) {
    if (j < 4) {
      sc[j] = p[j] & 63;
      m[j] = p[j + 4] & 63;
    } else {
      sc[j] = (p[j + 4] & 0x0f) | (p[j - 4] >> 6) << 4;
      m[j] = (p[j + 4] >> 4) | (p[j] >> 6) << 4;
    }
  }
}

// One K-quant super-block of 256 codes (0..2^bits − 1) with its super and
// sub-block parameters, as ggml-common.h's block_q4_K / q5_K / q6_K:
//   Q4_K: d, dmin fp16; scales[12]; qs[128]: each 64 columns as 32 bytes,
//         byte l = code l | code (l + 32) << 4
//   Q5_K: d, dmin; scales[12]; qh[32]: bit i of byte l = bit 4 of code
//         32·i + l; qs[128] as Q4_K (the low 4 bits)
//   Q6_K: ql[128], qh[64], scales[16] int8, d fp16: each 128 columns as
//         64 ql bytes (byte l = low nibbles of codes l | l + 64 << 4, byte
//         l + 32 = those of l + 32 | l + 96 << 4, l < 32) and 32 qh bytes
//         (byte l = bits 4..5 of codes l, l + 32, l + 64, l + 96 at bit 0,
//         2, 4, 6)
void put_super_block(const GgufGrid &f, uint16_t d, uint16_t dmin, const int16_t *sc,
                     const int16_t *m, const uint8_t *codes, uint8_t *p) {
  if (f.grid == GPTQ_GRID_Q6_K) {
    uint8_t *ql = p, *qh = p + 128;
    for (int half = 0; half < 2; ++half) {
      const uint8_t *c = codes + 128 * half;
      for (int l = 0; l < 32; ++l) {
        ql[64 * half + l] = static_cast<uint8_t>((c[l] & 0x0fu) | (c[l + 64] & 0x0fu) << 4);
        ql[64 * half + l + 32] = static_cast<uint8_t>((c[l + 32] & 0x0fu) | (c[l + 96] & 0x0fu) << 4);
        qh[32 * half + l] = static_cast<uint8_t>((c[l] >> 4) | (c[l + 32] >> 4) << 2 |
                                                 (c[l + 64] >> 4) << 4 | (c[l + 96] >> 4) << 6);
      }
    }
    for (int j = 0; j < 16; ++j) p[192 + j] = static_cast<uint8_t>(static_cast<int8_t>(sc[j]));
    uint8_t *q = p + 208;
    put_half(q, d);
    return;
  }
  put_half(p, d);
  put_half(p, dmin);
  put_super_scales(p, sc, m);
  p += 12;
  if (f.grid == GPTQ_GRID_Q5_K) {
    for (int l = 0; l < 32; ++l) {
      uint8_t bits = 0;
      for (int i = 0; i < 8; ++i) bits = static_cast<uint8_t>(bits | ((codes[32 * i + l] >> 4) & 1u) << i);
      p[l] = bits;
    }
    p += 32;
  }
  for (int chunk = 0; chunk < 4; ++chunk)
    for (int l = 0; l < 32; ++l)
      p[32 * chunk + l] = static_cast<uint8_t>((codes[64 * chunk + l] & 0x0fu) |
                                               (codes[64 * chunk + l + 32] & 0x0fu) << 4);
}

void put_block(const GgufGrid &f, uint16_t d, uint16_t m, const uint8_t *codes, uint8_t *p) {
  put_half(p, d);
  switch (f.grid) {
    case GPTQ_GRID_Q4_0: put_nibbles(p, codes); break;
    case GPTQ_GRID_Q4_1: put_half(p, m); put_nibbles(p, codes); break;
    case GPTQ_GRID_Q5_0: put_high_bits(p, codes); put_nibbles(p, codes); break;
    case GPTQ_GRID_Q5_1:
      put_half(p, m);
      put_high_bits(p, codes);
      put_nibbles(p, codes);
      break;
    case GPTQ_GRID_Q8_0:
      for (int j = 0; j < 32; ++j) p[j] = static_cast<uint8_t>(static_cast<int>(codes[j]) - 128);
      break;
    default: throw Error(GPTQ_ERR_INTERNAL, std::string("no block writer for ") + f.name);
  }
}

uint16_t get_half(const uint8_t *&p) {
  const uint16_t h = static_cast<uint16_t>(p[0] | p[1] << 8);
  p += 2;
  return h;
}

// One super-block's 256 values, as llama.cpp's dequantize_row_q*_K
// computes them (and dequantize_rows, qtensor.cpp): d1 = d·sc, m1 = dmin·m,
// then d1·code − m1, or d1·(code − 32), in float.
void decode_super_block(const GgufGrid &f, const uint8_t *p, float *out) {
  int codes[256], sc[16], m[16] = {};
  float d = 0.0f, dmin = 0.0f;
  if (f.grid == GPTQ_GRID_Q6_K) {
    const uint8_t *ql = p, *qh = p + 128;
    for (int half = 0; half < 2; ++half)
      for (int l = 0; l < 32; ++l) {
        const uint8_t lo0 = ql[64 * half + l], lo1 = ql[64 * half + l + 32], hi = qh[32 * half + l];
        int *c = codes + 128 * half;
        c[l] = (lo0 & 0x0f) | (hi & 3) << 4;
        c[l + 32] = (lo1 & 0x0f) | ((hi >> 2) & 3) << 4;
        c[l + 64] = (lo0 >> 4) | ((hi >> 4) & 3) << 4;
        c[l + 96] = (lo1 >> 4) | ((hi >> 6) & 3) << 4;
      }
    for (int j = 0; j < 16; ++j) sc[j] = static_cast<int8_t>(p[192 + j]);
    const uint8_t *q = p + 208;
    d = half_to_float(get_half(q));
  } else {
    d = half_to_float(get_half(p));
    dmin = half_to_float(get_half(p));
    get_super_scales(p, sc, m);
    p += 12;
    const uint8_t *qh = nullptr;
    if (f.grid == GPTQ_GRID_Q5_K) {
      qh = p;
      p += 32;
    }
    for (int chunk = 0; chunk < 4; ++chunk)
      for (int l = 0; l < 32; ++l) {
        codes[64 * chunk + l] = p[32 * chunk + l] & 0x0f;
        codes[64 * chunk + l + 32] = p[32 * chunk + l] >> 4;
      }
    if (qh != nullptr)
      for (int j = 0; j < 256; ++j) codes[j] |= ((qh[j % 32] >> (j / 32)) & 1) << 4;
  }
  for (int j = 0; j < 256; ++j) {
    const int g = j / f.group;
    const float d1 = d * static_cast<float>(sc[g]);
    out[j] = f.has_min() ? d1 * static_cast<float>(codes[j]) - dmin * static_cast<float>(m[g])
                         : d1 * static_cast<float>(codes[j] - f.zero);
  }
}

// One block's 32 values, as llama.cpp's dequantize_row_* computes them:
// (q − zero)·d, or q·d + m, in float.
void decode_block(const GgufGrid &f, const uint8_t *p, float *out) {
  if (f.super_blocks()) return decode_super_block(f, p, out);
  const float d = half_to_float(get_half(p));
  const bool min = f.has_min();
  const float m = min ? half_to_float(get_half(p)) : 0.0f;
  int codes[32];
  if (f.grid == GPTQ_GRID_Q8_0) {
    for (int j = 0; j < 32; ++j) codes[j] = static_cast<int8_t>(p[j]) + 128;
  } else {
    uint32_t qh = 0;
    if (f.bits == 5) {
      for (int b = 0; b < 4; ++b) qh |= static_cast<uint32_t>(p[b]) << (8 * b);
      p += 4;
    }
    for (int j = 0; j < 16; ++j) {
      codes[j] = (p[j] & 0x0f) | static_cast<int>((qh >> j) & 1u) << 4;
      codes[j + 16] = (p[j] >> 4) | static_cast<int>((qh >> (j + 16)) & 1u) << 4;
    }
  }
  for (int j = 0; j < 32; ++j)
    out[j] = min ? d * static_cast<float>(codes[j]) + m
                 : d * static_cast<float>(codes[j] - f.zero);
}

}  // namespace

void dequantize_gguf(int32_t grid, const void *bytes, int64_t rows, int64_t cols, float *out) {
  const GgufGrid &f = *gguf_grid(grid);
  const uint8_t *p = static_cast<const uint8_t *>(bytes);
  const int64_t blocks = rows * (cols / f.block);
  for (int64_t b = 0; b < blocks; ++b) decode_block(f, p + b * f.block_bytes, out + b * f.block);
}

int64_t gguf_tensor_bytes(int32_t grid, int64_t rows, int64_t cols, const char *where) {
  const GgufGrid *f = gguf_grid(grid);
  if (f == nullptr)
    throw Error(GPTQ_ERR_INVALID_CONFIG, std::string(where) + ": grid " + std::to_string(grid) +
                                             " is not a GGUF block format");
  if (rows < 1 || rows > kMaxDim || cols < 1 || cols > kMaxDim)
    throw Error(GPTQ_ERR_INVALID_SIZE, std::string(where) + ": the tensor is [" +
                                           std::to_string(rows) + ", " + std::to_string(cols) +
                                           "]; both dimensions must be in 1.." +
                                           std::to_string(kMaxDim));
  if (cols % f->block != 0)
    throw Error(GPTQ_ERR_INVALID_SIZE, std::string(where) + ": " + std::to_string(cols) +
                                           " columns are not a multiple of the " + f->name +
                                           " block of " + std::to_string(f->block));
  return rows * (cols / f->block) * f->block_bytes;
}

void export_gguf(const QTensorData &q, void *out, int64_t out_len, const char *where) {
  const GgufGrid *f = gguf_grid(q.grid);
  if (f == nullptr)
    throw Error(GPTQ_ERR_UNSUPPORTED, std::string(where) +
                                          ": the tensor is on GPTQ's own grid, which has no GGUF "
                                          "block format; quantize with a GGUF gptq_config.grid");
  const int64_t need = gguf_tensor_bytes(q.grid, q.out_features, q.in_features, where);
  if (out_len < need)
    throw Error(GPTQ_ERR_SIZE_MISMATCH, std::string(where) + ": out_len is " +
                                            std::to_string(out_len) + "; the " + f->name +
                                            " blocks need " + std::to_string(need) + " bytes");
  if (q.act_order)
    throw Error(GPTQ_ERR_INTERNAL, std::string(where) + ": a GGUF tensor's blocks are out of order");
  const int64_t n = q.out_features, blocks = q.in_features / f->block;
  const CodeRows codes(q, 0, n);
  uint8_t *p = static_cast<uint8_t *>(out);
  if (f->super_blocks()) {
    const int64_t subs = f->block / f->group;
    for (int64_t r = 0; r < n; ++r)
      for (int64_t b = 0; b < blocks; ++b, p += f->block_bytes) {
        int16_t sc[16], m[16] = {};
        for (int64_t j = 0; j < subs; ++j) {
          sc[j] = q.sub_scales[(b * subs + j) * n + r];
          if (f->has_min()) m[j] = q.sub_mins[(b * subs + j) * n + r];
        }
        put_super_block(*f, q.super_scales[b * n + r], f->has_min() ? q.super_mins[b * n + r] : 0,
                        sc, m, codes.row(r) + b * f->block, p);
      }
    return;
  }
  for (int64_t r = 0; r < n; ++r)
    for (int64_t b = 0; b < blocks; ++b, p += f->block_bytes) {
      const size_t at = static_cast<size_t>(b * n + r);
      put_block(*f, q.scales[at], q.mins.empty() ? 0 : q.mins[at], codes.row(r) + b * f->block,
                p);
    }
}

}  // namespace gptq
