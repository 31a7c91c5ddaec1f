// Calibration sanity, the most common way a quantized model goes bad in
// production: a calibration set that is tiny, or degenerate (one sentence
// repeated, a handful of distinct tokens, a misread file), gives Hessians
// that do not describe the model's real inputs. The statistics go into the
// report; the warnings are printed before the long work starts. After it,
// layers whose loss stands out against the same projection in the other
// blocks are flagged.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace gptqtool {

struct LlamaConfig;
struct LayerResult;

struct CalibrationStats {
  int64_t tokens = 0;         // over all windows
  int64_t unique_tokens = 0;  // distinct ids among them
  double vocab_coverage = 0;  // unique_tokens / vocab_size
  // The share of the windows' 4-token spans that repeat one seen before (in
  // any window): near 0 for natural text, near 1 for text repeated over and
  // over.
  double repetition_rate = 0;
};

CalibrationStats calibration_stats(const std::vector<std::vector<int32_t>> &windows,
                                   int64_t vocab_size);

// The thresholds below which a calibration set is called tiny or
// degenerate (documented where they are defined).
std::vector<std::string> calibration_warnings(const CalibrationStats &stats,
                                              const LlamaConfig &config);

// Layers whose loss is more than `factor` times the median loss of the same
// projection (the layer name with its block number taken out) across the
// blocks that have it; needs at least 3 blocks with that projection. Returns
// indices into `layers` with the ratio to the median.
constexpr double kLossOutlierFactor = 10;  // the report's and the tool's threshold
struct LossOutlier {
  size_t layer;
  double ratio;
};
std::vector<LossOutlier> loss_outliers(const std::vector<LayerResult> &layers, double factor);

}  // namespace gptqtool
