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

// One block's 32 values, as llama.cpp's dequantize_row_* computes them:
// (q − zero)·d, or q·d + m, in float.
void decode_block(const GgufGrid &f, const uint8_t *p, float *out) {
  const float d = half_to_float(get_half(p));
  const bool min = f.rule == BlockRule::kMinMax;
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
  uint8_t *p = static_cast<uint8_t *>(out);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t b = 0; b < blocks; ++b, p += f->block_bytes) {
      const size_t at = static_cast<size_t>(b * n + r);
      put_block(*f, q.scales[at], q.mins.empty() ? 0 : q.mins[at], &q.codes[r * q.in_features + b * f->block],
                p);
    }
}

}  // namespace gptq
