// 16-bit weights multiplied as they are stored (model/half_matrix.h): every
// float16 and bfloat16 value widens exactly in every vector width, products
// equal a double-precision reference of the widened weights, and a value
// does not depend on the vector width, the range of output features or how
// many rows of x go together. A 16-bit Linear gives what a float32 Linear of
// the widened weights gives, on the row-by-row path and on the sgemm path.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "common/tool_error.h"
#include "formats/float_formats.h"
#include "model/half_matrix.h"
#include "model/linear.h"
#include "model/parallel.h"
#include "model/vector_width.h"

namespace gptqtool {
namespace {

// The vector widths this CPU runs: 4, and 8 and 16 where present.
std::vector<int> widths() {
  std::vector<int> w;
  for (int lanes : {4, 8, 16}) {
    cap_vector_lanes(lanes);
    if (vector_lanes() == lanes) w.push_back(lanes);
  }
  cap_vector_lanes(16);
  return w;
}

HalfMatrix random_matrix(int64_t rows, int64_t cols, TensorDType dtype, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.5f);
  HalfMatrix m;
  m.rows = rows;
  m.cols = cols;
  m.dtype = dtype;
  m.bits.resize(static_cast<size_t>(rows * cols));
  for (auto &b : m.bits) {
    bool beyond = false;
    const float v = normal(rng);
    b = dtype == TensorDType::F16 ? float_to_f16(v, &beyond) : float_to_bf16(v, &beyond);
  }
  return m;
}

float widened(const HalfMatrix &m, int64_t r, int64_t c) {
  const uint16_t b = m.bits[static_cast<size_t>(r * m.cols + c)];
  return m.dtype == TensorDType::F16 ? f16_to_float(b) : bf16_to_float(b);
}

std::vector<float> random_x(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(rows * cols));
  for (float &v : x) v = normal(rng);
  return x;
}

bool same_bits(const std::vector<float> &a, const std::vector<float> &b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Every finite float16 value, and every bfloat16 one, comes out of the
// vector widening exactly: a row per value times a one-hot x, and the rows
// widened on their own.
TEST(HalfMatrix, EveryFiniteValueWidensExactlyInEveryWidth) {
  for (const TensorDType dtype : {TensorDType::F16, TensorDType::BF16}) {
    HalfMatrix m;
    m.dtype = dtype;
    m.cols = 32;  // two whole 16-value spans
    std::vector<uint16_t> values;
    for (uint32_t b = 0; b < 65536; ++b) {
      const uint16_t exponent = dtype == TensorDType::F16 ? (b >> 10) & 0x1f : (b >> 7) & 0xff;
      const uint16_t all_ones = dtype == TensorDType::F16 ? 0x1f : 0xff;
      if (exponent != all_ones) values.push_back(static_cast<uint16_t>(b));
    }
    m.rows = static_cast<int64_t>(values.size());
    m.bits.assign(static_cast<size_t>(m.rows * m.cols), 0);
    const int64_t at = 21;  // in the second span, lane 5
    for (int64_t r = 0; r < m.rows; ++r) m.bits[static_cast<size_t>(r * m.cols + at)] = values[r];
    std::vector<float> x(static_cast<size_t>(m.cols), 0.0f);
    x[at] = 1.0f;
    for (int lanes : widths()) {
      cap_vector_lanes(lanes);
      std::vector<float> y(static_cast<size_t>(m.rows));
      half_matmul(m, x.data(), 1, 0, m.rows, y.data(), m.rows);
      int64_t wrong = 0;
      for (int64_t r = 0; r < m.rows; ++r) {
        const float want = widened(m, r, at);
        // +0 and −0 sum to +0 with the zero products of the other columns.
        if (!(y[r] == want)) ++wrong;
      }
      EXPECT_EQ(wrong, 0) << "dtype " << static_cast<int>(dtype) << ", " << lanes << " lanes";
      // widen_rows (the sgemm path's panels, embeddings) gives the same
      // bits, −0 included, for whole ranges and a range from inside.
      std::vector<float> rows(static_cast<size_t>(m.rows * m.cols));
      m.widen_rows(0, m.rows, rows.data());
      int64_t wrong_bits = 0;
      for (int64_t i = 0; i < m.rows * m.cols; ++i) {
        const float want = widened(m, i / m.cols, i % m.cols);
        if (std::memcmp(&rows[static_cast<size_t>(i)], &want, sizeof want) != 0) ++wrong_bits;
      }
      EXPECT_EQ(wrong_bits, 0) << "dtype " << static_cast<int>(dtype) << ", " << lanes << " lanes";
      std::vector<float> part(static_cast<size_t>(3 * m.cols));
      m.widen_rows(1000, 1003, part.data());
      EXPECT_EQ(std::memcmp(part.data(), rows.data() + 1000 * m.cols, part.size() * sizeof(float)),
                0)
          << lanes << " lanes";
    }
    cap_vector_lanes(16);
  }
}

TEST(HalfMatrix, InfinitiesAndNaNsStayWhatTheyAre) {
  const uint16_t f16_inf = 0x7c00, f16_ninf = 0xfc00, f16_nan = 0x7e00;
  HalfMatrix m;
  m.rows = 3;
  m.cols = 16;
  m.dtype = TensorDType::F16;
  m.bits.assign(48, 0x3c00);  // 1.0
  m.bits[3] = f16_inf;
  m.bits[16 + 7] = f16_ninf;
  m.bits[32 + 11] = f16_nan;
  const std::vector<float> x(16, 1.0f);
  for (int lanes : widths()) {
    cap_vector_lanes(lanes);
    float y[3];
    half_matmul(m, x.data(), 1, 0, 3, y, 3);
    EXPECT_TRUE(std::isinf(y[0]) && y[0] > 0) << lanes;
    EXPECT_TRUE(std::isinf(y[1]) && y[1] < 0) << lanes;
    EXPECT_TRUE(std::isnan(y[2])) << lanes;
  }
  cap_vector_lanes(16);
}

// Products against double precision, and the same bits whatever the width,
// the range of features and the rows taken together.
TEST(HalfMatrix, ProductIsTheSameInEveryWidthRangeAndRowCount) {
  for (const TensorDType dtype : {TensorDType::F16, TensorDType::BF16}) {
    for (const int64_t cols : {int64_t{16}, int64_t{70}, int64_t{5}}) {
      const int64_t n = 37, rows = 7;
      const HalfMatrix m = random_matrix(n, cols, dtype, 7);
      const std::vector<float> x = random_x(rows, cols, 11);
      std::vector<float> first;
      for (int lanes : widths()) {
        cap_vector_lanes(lanes);
        std::vector<float> whole(static_cast<size_t>(rows * n), -1.0f);
        half_matmul(m, x.data(), rows, 0, n, whole.data(), n);
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t o = 0; o < n; ++o) {
            double want = 0.0, scale = 0.0;
            for (int64_t k = 0; k < cols; ++k) {
              want += static_cast<double>(x[r * cols + k]) * widened(m, o, k);
              scale += std::fabs(static_cast<double>(x[r * cols + k]) * widened(m, o, k));
            }
            EXPECT_NEAR(whole[r * n + o], want, 1e-6 * scale + 1e-30) << r << "," << o;
          }
        if (first.empty()) first = whole;
        EXPECT_TRUE(same_bits(whole, first)) << lanes << " lanes differ from 4";
        // Three ranges of features, each row of x on its own.
        std::vector<float> pieces(static_cast<size_t>(rows * n), -1.0f);
        for (int64_t r = 0; r < rows; ++r) {
          const int64_t cuts[] = {0, 5, 21, n};
          for (int p = 0; p < 3; ++p)
            half_matmul(m, x.data() + r * cols, 1, cuts[p], cuts[p + 1],
                        pieces.data() + r * n, n);
        }
        EXPECT_TRUE(same_bits(pieces, whole)) << lanes << " lanes";
      }
      cap_vector_lanes(16);
    }
  }
}

// A range writes only its own features.
TEST(HalfMatrix, RangeLeavesTheOtherFeaturesAlone) {
  const HalfMatrix m = random_matrix(20, 24, TensorDType::BF16, 3);
  const std::vector<float> x = random_x(2, 24, 4);
  std::vector<float> y(40, 7.0f);
  half_matmul(m, x.data(), 2, 4, 9, y.data(), 20);
  for (int64_t r = 0; r < 2; ++r)
    for (int64_t o = 0; o < 20; ++o)
      if (o < 4 || o >= 9) {
        EXPECT_EQ(y[r * 20 + o], 7.0f);
      }
}

// A Linear of 16-bit weights against the Linear of the same weights widened
// to float32: few rows (split over the tool's threads where it has more than
// one), many rows (widened
// panels through sgemm, more than one panel), with a bias; and the ready
// callbacks cover every feature once.
TEST(HalfMatrix, LinearEqualsTheFloat32LinearOfTheWidenedWeights) {
  const int64_t out = 600, in = 72;
  auto half = std::make_shared<HalfMatrix>(random_matrix(out, in, TensorDType::F16, 5));
  std::vector<float> wide(static_cast<size_t>(out * in));
  for (int64_t o = 0; o < out; ++o) half->row(o, wide.data() + o * in);
  std::vector<float> bias = random_x(1, out, 9);
  const Linear h(half, bias), f(out, in, wide, bias);
  EXPECT_TRUE(h.half());
  EXPECT_FALSE(f.half());
  std::vector<float> scratch;
  EXPECT_TRUE(same_bits(h.weight_f32(&scratch), wide));
  EXPECT_THROW(h.weight(), ToolError);
  for (const int64_t rows : {int64_t{1}, int64_t{5}, int64_t{40}}) {
    const std::vector<float> x = random_x(rows, in, 13);
    std::vector<float> yh(static_cast<size_t>(rows * out)), yf(yh.size());
    std::vector<int> seen(static_cast<size_t>(out), 0);
    h.forward(x.data(), rows, yh.data(), [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) ++seen[static_cast<size_t>(c)];
    });
    f.forward(x.data(), rows, yf.data());
    for (size_t i = 0; i < yh.size(); ++i) EXPECT_NEAR(yh[i], yf[i], 1e-5f) << rows << " rows";
    for (int64_t c = 0; c < out; ++c) EXPECT_EQ(seen[static_cast<size_t>(c)], 1) << c;
  }
}

}  // namespace
}  // namespace gptqtool
