// Rounding is done on the bit patterns, so the result does not depend on the
// host's floating-point mode or on compiler support for _Float16.
#include "formats/float_formats.h"

#include <cmath>
#include <cstring>

#include "common/tool_error.h"

namespace gptqtool {
namespace {

uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

}  // namespace

float f16_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu;
  const uint32_t mantissa = h & 0x3ffu;
  if (exponent == 0x1f) return bits_float(sign | 0x7f800000u | (mantissa << 13));
  if (exponent == 0) {
    // Zero or subnormal: mantissa * 2^-24, exact in float.
    const float magnitude = static_cast<float>(mantissa) * 5.9604644775390625e-8f;
    return sign ? -magnitude : magnitude;
  }
  return bits_float(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

// bfloat16 is the top half of a float32.
float bf16_to_float(uint16_t h) { return bits_float(uint32_t{h} << 16); }

uint16_t float_to_f16(float f, bool *overflow) {
  const uint32_t u = float_bits(f);
  const auto sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t magnitude = u & 0x7fffffffu;
  if (magnitude >= 0x7f800000u) {  // inf or NaN; a NaN keeps its top payload bits and is quiet
    if (magnitude == 0x7f800000u) return sign | 0x7c00u;
    return static_cast<uint16_t>(sign | 0x7e00u | ((magnitude >> 13) & 0x3ffu));
  }
  // 65520 and above round to infinity (65504 is the largest half; the tie
  // at 65520 goes to the even neighbour, which is infinity).
  if (magnitude >= 0x477ff000u) {
    *overflow = true;
    return sign | 0x7c00u;
  }
  if (magnitude < 0x38800000u) {
    // Below 2^-14: a subnormal half, a multiple of 2^-24. The product is
    // exact in double; nearbyint rounds half to even in the default mode,
    // and 1024 (the smallest normal) encodes correctly as it is.
    const double units = std::nearbyint(std::fabs(static_cast<double>(f)) * 16777216.0);
    return static_cast<uint16_t>(sign | static_cast<uint16_t>(units));
  }
  const uint32_t exponent = (magnitude >> 23) - 127 + 15;
  const uint32_t mantissa = magnitude & 0x7fffffu;
  uint32_t h = (exponent << 10) | (mantissa >> 13);
  const uint32_t rest = mantissa & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;  // a carry moves into the exponent
  return static_cast<uint16_t>(sign | h);
}

uint16_t float_to_bf16(float f, bool *overflow) {
  const uint32_t u = float_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);  // NaN
  const uint32_t rounded = u + 0x7fffu + ((u >> 16) & 1u);
  const auto b = static_cast<uint16_t>(rounded >> 16);
  if ((b & 0x7fffu) == 0x7f80u && (u & 0x7fffffffu) != 0x7f800000u) *overflow = true;
  return b;
}

std::vector<uint8_t> convert_float_tensor(const SafetensorsFile &file, const TensorInfo &t,
                                          TensorDType to) {
  if (to != TensorDType::F32 && to != TensorDType::F16 && to != TensorDType::BF16) {
    throw ToolError(std::string("internal: cannot write float tensors as ") + dtype_name(to));
  }
  const uint8_t *src = file.data(t);
  if (t.dtype == to) return std::vector<uint8_t>(src, src + t.nbytes);
  const std::vector<float> values = to_float32(file, t);  // refuses a non-float dtype by name
  std::vector<uint8_t> out(values.size() * dtype_size(to));
  if (to == TensorDType::F32) {
    if (!values.empty()) std::memcpy(out.data(), values.data(), out.size());
    return out;
  }
  bool overflow = false;
  float largest = 0;
  for (size_t i = 0; i < values.size(); ++i) {
    bool this_one = false;
    const uint16_t h = to == TensorDType::F16 ? float_to_f16(values[i], &this_one)
                                              : float_to_bf16(values[i], &this_one);
    if (this_one) {
      overflow = true;
      largest = std::fmax(largest, std::fabs(values[i]));
    }
    out[2 * i] = static_cast<uint8_t>(h & 0xff);
    out[2 * i + 1] = static_cast<uint8_t>(h >> 8);
  }
  if (overflow) {
    throw ToolError(file.path() + ": tensor " + t.name + " holds " + std::to_string(largest) +
                    ", too large for " + dtype_name(to) + " (it would become infinity); " +
                    "write the checkpoint with --dtype " +
                    (to == TensorDType::F16 ? "bf16 or f32" : "f32"));
  }
  return out;
}

}  // namespace gptqtool
