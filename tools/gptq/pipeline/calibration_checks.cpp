#include "pipeline/calibration_checks.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <unordered_set>

#include "model/model_config.h"
#include "pipeline/quantize_model.h"

namespace gptqtool {
namespace {

// A Hessian of a layer with K inputs is K×K; from fewer tokens than a few
// times K it is far from full rank and the solve leans on damping alone.
// The widest input of a block is the down projection's (intermediate size).
constexpr int64_t kTokensPerInputColumn = 4;
// Natural text repeats few 4-token spans (well under 20% over a few
// hundred thousand tokens of prose or code); half is a repeated text.
constexpr double kRepetitionWarn = 0.5;
// Fewer distinct tokens than this is not text in any tokenizer's sense.
constexpr int64_t kMinUniqueTokens = 256;

std::string format(const char *fmt, double a, double b = 0, double c = 0) {
  char buf[512];
  std::snprintf(buf, sizeof buf, fmt, a, b, c);
  return buf;
}

}  // namespace

CalibrationStats calibration_stats(const std::vector<std::vector<int32_t>> &windows,
                                   int64_t vocab_size) {
  CalibrationStats s;
  std::unordered_set<int32_t> unique;
  std::unordered_set<uint64_t> spans;
  int64_t span_count = 0, repeated = 0;
  for (const auto &w : windows) {
    s.tokens += static_cast<int64_t>(w.size());
    unique.insert(w.begin(), w.end());
    for (size_t i = 0; i + 4 <= w.size(); ++i) {
      // Four ids hashed into 64 bits (ids are below 2^31; collisions are
      // rare enough not to matter for a rate).
      uint64_t h = 1469598103934665603ull;
      for (size_t j = i; j < i + 4; ++j) h = (h ^ static_cast<uint32_t>(w[j])) * 1099511628211ull;
      ++span_count;
      if (!spans.insert(h).second) ++repeated;
    }
  }
  s.unique_tokens = static_cast<int64_t>(unique.size());
  s.vocab_coverage = vocab_size > 0 ? static_cast<double>(s.unique_tokens) / vocab_size : 0;
  s.repetition_rate = span_count > 0 ? static_cast<double>(repeated) / span_count : 0;
  return s;
}

std::vector<std::string> calibration_warnings(const CalibrationStats &s, const LlamaConfig &c) {
  std::vector<std::string> out;
  const int64_t widest = std::max(c.hidden_size, c.intermediate_size);
  if (s.tokens < kTokensPerInputColumn * widest) {
    out.push_back(format("the calibration set is tiny: %.0f tokens for layers up to %.0f inputs "
                         "wide (fewer than %.0f tokens per input column); the Hessians are far "
                         "from full rank, so GPTQ leans on damping. Give more text, or more "
                         "--samples / a longer --seqlen",
                         static_cast<double>(s.tokens), static_cast<double>(widest),
                         static_cast<double>(kTokensPerInputColumn)));
  }
  if (s.repetition_rate > kRepetitionWarn) {
    out.push_back(format("the calibration set looks degenerate: %.0f%% of its 4-token spans "
                         "repeat earlier ones (natural text repeats few); is the same text given "
                         "again and again?",
                         100.0 * s.repetition_rate));
  }
  if (s.unique_tokens < kMinUniqueTokens && s.tokens >= kMinUniqueTokens) {
    out.push_back(format("the calibration set looks degenerate: only %.0f distinct tokens in "
                         "%.0f (%.3f%% of the vocabulary)",
                         static_cast<double>(s.unique_tokens), static_cast<double>(s.tokens),
                         100.0 * s.vocab_coverage));
  }
  return out;
}

std::vector<LossOutlier> loss_outliers(const std::vector<LayerResult> &layers, double factor) {
  // "model.layers.7.self_attn.q_proj" -> "self_attn.q_proj", an expert's
  // "model.layers.7.mlp.experts.5.up_proj" -> "mlp.experts.*.up_proj" (every
  // expert of every block); layers outside the blocks (lm_head) and experts
  // rounded to nearest for want of tokens (a loss of another kind) have no
  // peers.
  const std::string prefix = "model.layers.";
  std::map<std::string, std::vector<size_t>> by_projection;
  for (size_t i = 0; i < layers.size(); ++i) {
    const LayerResult &l = layers[i];
    if (l.spec.skip || l.under_calibrated || l.name.compare(0, prefix.size(), prefix) != 0) {
      continue;
    }
    const size_t dot = l.name.find('.', prefix.size());
    if (dot == std::string::npos) continue;
    std::string projection = l.name.substr(dot + 1);
    const size_t experts = projection.find("experts.");
    if (l.expert >= 0 && experts != std::string::npos) {
      const size_t index = experts + 8, end = projection.find('.', index);
      if (end != std::string::npos) projection.replace(index, end - index, "*");
    }
    by_projection[projection].push_back(i);
  }
  std::vector<LossOutlier> out;
  for (const auto &[projection, members] : by_projection) {
    if (members.size() < 3) continue;
    std::vector<double> losses;
    for (size_t i : members) losses.push_back(layers[i].stats.loss);
    std::vector<double> sorted = losses;
    std::sort(sorted.begin(), sorted.end());
    const size_t n = sorted.size();
    const double median = n % 2 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
    if (!(median > 0)) continue;
    for (size_t k = 0; k < members.size(); ++k) {
      if (losses[k] > factor * median) out.push_back({members[k], losses[k] / median});
    }
  }
  std::sort(out.begin(), out.end(),
            [](const LossOutlier &a, const LossOutlier &b) { return a.layer < b.layer; });
  return out;
}

}  // namespace gptqtool
