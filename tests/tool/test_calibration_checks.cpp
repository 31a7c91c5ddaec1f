// Calibration sanity: the statistics of a set of windows, the warnings for
// tiny and degenerate sets (and none for a healthy one), and the layers
// flagged as loss outliers against the same projection in other blocks.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "model/model_config.h"
#include "pipeline/calibration_checks.h"
#include "pipeline/quantize_model.h"

namespace gptqtool {
namespace {

LlamaConfig config(int64_t hidden, int64_t intermediate) {
  LlamaConfig c;
  c.hidden_size = hidden;
  c.intermediate_size = intermediate;
  c.vocab_size = 50000;
  return c;
}

bool any_contains(const std::vector<std::string> &v, const std::string &text) {
  for (const std::string &s : v) {
    if (s.find(text) != std::string::npos) return true;
  }
  return false;
}

TEST(CalibrationStats, CountsDistinctTokensCoverageAndRepeats) {
  // Two windows: 0..99 and 0..99 again. 97 spans each; the second window's
  // all repeat the first's.
  std::vector<int32_t> w(100);
  for (int i = 0; i < 100; ++i) w[i] = i;
  const CalibrationStats s = calibration_stats({w, w}, 1000);
  EXPECT_EQ(s.tokens, 200);
  EXPECT_EQ(s.unique_tokens, 100);
  EXPECT_DOUBLE_EQ(s.vocab_coverage, 0.1);
  EXPECT_DOUBLE_EQ(s.repetition_rate, 0.5);
  const CalibrationStats one = calibration_stats({w}, 1000);
  EXPECT_DOUBLE_EQ(one.repetition_rate, 0.0);
  EXPECT_EQ(calibration_stats({}, 1000).tokens, 0);
}

TEST(CalibrationStats, WarnsForTinyAndDegenerateSetsOnly) {
  std::mt19937 rng(3);
  std::vector<std::vector<int32_t>> healthy(16, std::vector<int32_t>(512));
  for (auto &w : healthy)
    for (auto &t : w) t = static_cast<int32_t>(rng() % 20000);
  const LlamaConfig c = config(576, 1536);
  EXPECT_TRUE(calibration_warnings(calibration_stats(healthy, c.vocab_size), c).empty());

  // Too few tokens for a 1536-wide input: 4 per column is 6144.
  std::vector<std::vector<int32_t>> small(healthy.begin(), healthy.begin() + 8);
  auto w = calibration_warnings(calibration_stats(small, c.vocab_size), c);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_TRUE(any_contains(w, "tiny: 4096 tokens for layers up to 1536 inputs wide")) << w[0];

  // One sentence over and over: repeated spans and few distinct tokens.
  std::vector<std::vector<int32_t>> repeated(16, std::vector<int32_t>(512));
  for (auto &r : repeated)
    for (size_t i = 0; i < r.size(); ++i) r[i] = static_cast<int32_t>(i % 7);
  w = calibration_warnings(calibration_stats(repeated, c.vocab_size), c);
  EXPECT_TRUE(any_contains(w, "of its 4-token spans repeat earlier ones"));
  EXPECT_TRUE(any_contains(w, "only 7 distinct tokens in 8192"));
}

LayerResult layer(const std::string &name, double loss) {
  LayerResult l;
  l.name = name;
  l.stats.loss = loss;
  return l;
}

TEST(LossOutliers, AgainstTheSameProjectionInOtherBlocks) {
  std::vector<LayerResult> layers;
  const double q_loss[] = {1.0, 1.2, 0.9, 15.0, 1.1};
  const double down_loss[] = {50.0, 60.0, 55.0, 58.0, 52.0};  // large, but all alike
  for (int b = 0; b < 5; ++b) {
    const std::string p = "model.layers." + std::to_string(b) + ".";
    layers.push_back(layer(p + "self_attn.q_proj", q_loss[b]));
    layers.push_back(layer(p + "mlp.down_proj", down_loss[b]));
  }
  layers.push_back(layer("lm_head", 1e6));  // no peers: never an outlier
  const std::vector<LossOutlier> o = loss_outliers(layers, 10);
  ASSERT_EQ(o.size(), 1u);
  EXPECT_EQ(layers[o[0].layer].name, "model.layers.3.self_attn.q_proj");
  EXPECT_NEAR(o[0].ratio, 15.0 / 1.1, 1e-12);
  EXPECT_TRUE(loss_outliers(layers, 20).empty());
  // Skipped layers are not compared, and two blocks are too few to judge.
  layers[0].spec.skip = true;
  EXPECT_EQ(loss_outliers(layers, 10).size(), 1u);
  std::vector<LayerResult> two(layers.begin(), layers.begin() + 4);
  two[0].stats.loss = 1000;
  EXPECT_TRUE(loss_outliers(two, 10).empty());
}

// Experts are peers of the same projection of every expert of every block;
// an expert rounded to nearest for want of tokens has a loss of another
// kind and is left out.
TEST(LossOutliers, ExpertsAgainstEveryExpertsSameProjection) {
  std::vector<LayerResult> layers;
  for (int b = 0; b < 2; ++b) {
    for (int e = 0; e < 3; ++e) {
      LayerResult l = layer("model.layers." + std::to_string(b) + ".mlp.experts." +
                                std::to_string(e) + ".up_proj",
                            1.0 + 0.1 * e);
      l.expert = e;
      layers.push_back(l);
    }
  }
  layers[4].stats.loss = 40.0;  // block 1, expert 1
  std::vector<LossOutlier> o = loss_outliers(layers, 10);
  ASSERT_EQ(o.size(), 1u);
  EXPECT_EQ(layers[o[0].layer].name, "model.layers.1.mlp.experts.1.up_proj");
  layers[4].under_calibrated = true;
  EXPECT_TRUE(loss_outliers(layers, 10).empty());
}

}  // namespace
}  // namespace gptqtool
