// Narrowing float32 to float16 and bfloat16 (what a checkpoint's unquantized
// tensors are written in): every half round-trips, random floats round as
// the compiler's own _Float16 conversion does (round to nearest even,
// subnormals included), ties go to even, and a value too large is an error
// naming the tensor instead of an infinity in the checkpoint.
#include <gtest/gtest.h>

#include <stdlib.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "common/tool_error.h"
#include "formats/float_formats.h"
#include "formats/safetensors.h"
#include "model/vector_math.h"

namespace gptqtool {
namespace {

namespace fs = std::filesystem;

float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint32_t to_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// A one-tensor F32 file holding `values`, opened.
std::unique_ptr<SafetensorsFile> f32_file(const std::string &dir, const std::vector<float> &values) {
  SafetensorsWriter w;
  std::vector<uint8_t> bytes(values.size() * 4);
  std::memcpy(bytes.data(), values.data(), bytes.size());
  w.add("model.norm.weight", TensorDType::F32, {static_cast<int64_t>(values.size())}, bytes);
  w.write(dir + "/t.safetensors");
  return SafetensorsFile::open(dir + "/t.safetensors");
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "gptq_ff_XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() { fs::remove_all(path_); }
  const std::string &path() const { return path_; }

 private:
  std::string path_;
};

TEST(FloatFormats, EveryHalfRoundTripsThroughFloat) {
  TempDir dir;
  SafetensorsWriter w;
  std::vector<uint8_t> bytes;
  for (uint32_t h = 0; h < 65536; ++h) {
    bytes.push_back(static_cast<uint8_t>(h & 0xff));
    bytes.push_back(static_cast<uint8_t>(h >> 8));
  }
  w.add("all", TensorDType::F16, {65536}, bytes);
  w.write(dir.path() + "/h.safetensors");
  auto f = SafetensorsFile::open(dir.path() + "/h.safetensors");
  const std::vector<float> v = to_float32(*f, f->tensors()[0]);
  for (uint32_t h = 0; h < 65536; ++h) {
    bool overflow = false;
    const uint16_t back = float_to_f16(v[h], &overflow);
    EXPECT_FALSE(overflow) << h;
    const bool nan = (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu) != 0;
    if (nan) {
      EXPECT_TRUE(std::isnan(v[h]));
      EXPECT_EQ(back & 0x7e00u, 0x7e00u) << h;  // still a (quiet) NaN
    } else {
      ASSERT_EQ(back, h) << h;
    }
  }
}

TEST(FloatFormats, HalfRoundsToNearestEven) {
  bool overflow = false;
  // 1 + 2^-11 lies halfway between 1 and 1 + 2^-10: even (1) wins.
  EXPECT_EQ(float_to_f16(1.0f + 0x1p-11f, &overflow), 0x3c00u);
  // 1 + 3·2^-11 lies halfway between 1 + 2^-10 (odd) and 1 + 2^-9: even wins.
  EXPECT_EQ(float_to_f16(1.0f + 3 * 0x1p-11f, &overflow), 0x3c02u);
  EXPECT_EQ(float_to_f16(1.0f + 0x1p-11f + 0x1p-20f, &overflow), 0x3c01u);
  // Subnormals: 2^-25 ties to 0, anything above it to 2^-24.
  EXPECT_EQ(float_to_f16(0x1p-25f, &overflow), 0x0000u);
  EXPECT_EQ(float_to_f16(0x1.0002p-25f, &overflow), 0x0001u);
  EXPECT_EQ(float_to_f16(-3 * 0x1p-25f, &overflow), 0x8002u);
  // The largest subnormal rounds up into the smallest normal.
  EXPECT_EQ(float_to_f16(0x1p-14f - 0x1p-26f, &overflow), 0x0400u);
  EXPECT_EQ(float_to_f16(65504.0f, &overflow), 0x7bffu);
  EXPECT_EQ(float_to_f16(65519.0f, &overflow), 0x7bffu);
  EXPECT_FALSE(overflow);
  EXPECT_EQ(float_to_f16(65520.0f, &overflow), 0x7c00u);
  EXPECT_TRUE(overflow);
  overflow = false;
  EXPECT_EQ(float_to_f16(-std::numeric_limits<float>::infinity(), &overflow), 0xfc00u);
  EXPECT_FALSE(overflow);  // an infinity is not an overflow
}

#ifdef __FLT16_MAX__
TEST(FloatFormats, HalfMatchesTheCompilersConversion) {
  std::mt19937 rng(11);
  for (int i = 0; i < 2000000; ++i) {
    // Exponents over the half range and beyond, every mantissa pattern.
    const uint32_t exponent = 127 - 28 + rng() % 46;
    const uint32_t u = (rng() & 0x807fffffu) | (exponent << 23);
    const float f = from_bits(u);
    bool overflow = false;
    const uint16_t ours = float_to_f16(f, &overflow);
    const _Float16 ref = static_cast<_Float16>(f);
    uint16_t want;
    std::memcpy(&want, &ref, 2);
    ASSERT_EQ(ours, want) << std::hexfloat << f;
    EXPECT_EQ(overflow, std::isinf(static_cast<float>(ref))) << f;
  }
}
#endif

TEST(FloatFormats, Bfloat16RoundsToNearestEven) {
  std::mt19937 rng(5);
  for (int i = 0; i < 1000000; ++i) {
    const uint32_t u = rng();
    const float f = from_bits(u);
    if (std::isnan(f) || std::isinf(f)) continue;
    bool overflow = false;
    const uint16_t b = float_to_bf16(f, &overflow);
    // The two candidates are the truncation and the next value up in
    // magnitude; the nearer wins, the even one on a tie.
    const uint32_t low = u & 0xffff0000u, rest = u & 0xffffu;
    const uint16_t truncated = static_cast<uint16_t>(low >> 16);
    const uint16_t want =
        rest > 0x8000u || (rest == 0x8000u && (truncated & 1u)) ? truncated + 1 : truncated;
    ASSERT_EQ(b, want) << std::hexfloat << f;
    EXPECT_EQ(overflow, (want & 0x7fffu) == 0x7f80u) << f;
  }
  bool overflow = false;
  EXPECT_EQ(float_to_bf16(std::numeric_limits<float>::max(), &overflow), 0x7f80u);
  EXPECT_TRUE(overflow);
  overflow = false;
  const uint16_t nan = float_to_bf16(std::numeric_limits<float>::quiet_NaN(), &overflow);
  EXPECT_TRUE(std::isnan(from_bits(uint32_t{nan} << 16)));
  EXPECT_FALSE(overflow);
  // A signalling NaN whose payload lies only in the low bits stays a NaN.
  EXPECT_TRUE(std::isnan(from_bits(uint32_t{float_to_bf16(from_bits(0x7f800001u), &overflow)} << 16)));
  EXPECT_EQ(to_bits(from_bits(uint32_t{float_to_bf16(-2.5f, &overflow)} << 16)), to_bits(-2.5f));
}

// The KV cache's branch-free narrowing gives float_to_bf16's bits for every
// input, NaNs, infinities and values that round past the range included.
TEST(FloatFormats, CacheNarrowingToBfloat16MatchesTheFileConversion) {
  std::mt19937 rng(6);
  std::vector<uint32_t> inputs = {0x7f800000u, 0xff800000u, 0x7f800001u, 0xffc00000u, 0x7fffffffu,
                                  0x7f7fffffu, 0x7f7f8000u, 0x7f7f7fffu, 0x00000001u, 0x80008000u,
                                  0x3f808000u, 0x3f818000u, 0u, 0x80000000u};
  for (int i = 0; i < 1000000; ++i) inputs.push_back(rng());
  for (uint32_t u : inputs) {
    bool overflow = false;
    ASSERT_EQ(narrow_to_bf16(from_bits(u)), float_to_bf16(from_bits(u), &overflow)) << std::hex << u;
  }
}

TEST(FloatFormats, TensorsConvertOrNameTheValueThatDoesNotFit) {
  TempDir dir;
  auto f = f32_file(dir.path(), {1.0f, -0.5f, 3.0e-6f, 1000.0f});
  const TensorInfo &t = f->tensors()[0];
  const std::vector<uint8_t> same = convert_float_tensor(*f, t, TensorDType::F32);
  EXPECT_EQ(0, std::memcmp(same.data(), f->data(t), t.nbytes));
  const std::vector<uint8_t> h = convert_float_tensor(*f, t, TensorDType::F16);
  ASSERT_EQ(h.size(), 8u);
  EXPECT_EQ(h[0] | (h[1] << 8), 0x3c00);
  EXPECT_EQ(h[2] | (h[3] << 8), 0xb800);
  const std::vector<uint8_t> b = convert_float_tensor(*f, t, TensorDType::BF16);
  EXPECT_EQ(b[0] | (b[1] << 8), 0x3f80);

  auto big = f32_file(dir.path(), {1.0f, 70000.0f});
  try {
    convert_float_tensor(*big, big->tensors()[0], TensorDType::F16);
    FAIL() << "70000 fitted in float16";
  } catch (const ToolError &e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("model.norm.weight"), std::string::npos) << m;
    EXPECT_NE(m.find("70000"), std::string::npos) << m;
    EXPECT_NE(m.find("--dtype bf16 or f32"), std::string::npos) << m;
  }
  // bfloat16 holds it.
  EXPECT_EQ(convert_float_tensor(*big, big->tensors()[0], TensorDType::BF16).size(), 4u);
  EXPECT_THROW(convert_float_tensor(*big, big->tensors()[0], TensorDType::I32), ToolError);
}

}  // namespace
}  // namespace gptqtool
