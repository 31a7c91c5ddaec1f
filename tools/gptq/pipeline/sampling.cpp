#include "pipeline/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <unordered_set>

#include "common/tool_error.h"
#include "model/vector_math.h"

namespace gptqtool {

void validate_sampling(const SamplingParams &p) {
  if (!(p.temperature >= 0.0) || !std::isfinite(p.temperature)) {
    throw ToolError("--temperature must be a finite number >= 0 (0 = greedy), not " +
                    std::to_string(p.temperature));
  }
  if (!(p.top_p > 0.0 && p.top_p <= 1.0)) {
    throw ToolError("--top-p must be in (0, 1], not " + std::to_string(p.top_p));
  }
  if (p.top_k < 0) throw ToolError("--top-k must be >= 0 (0 = no limit)");
  if (!(p.repetition_penalty > 0.0) || !std::isfinite(p.repetition_penalty)) {
    throw ToolError("--repetition-penalty must be a finite number > 0 (1 = none), not " +
                    std::to_string(p.repetition_penalty));
  }
}

void apply_repetition_penalty(float *logits, int64_t vocab, const std::vector<int32_t> &context,
                              double penalty) {
  if (penalty == 1.0) return;
  std::unordered_set<int32_t> seen;
  const auto pf = static_cast<float>(penalty);
  for (int32_t id : context) {
    if (id < 0 || id >= vocab || !seen.insert(id).second) continue;
    float &l = logits[id];
    l = l > 0 ? l / pf : l * pf;
  }
}

// Two vectorized passes, not one running comparison (a dependency chain
// over the whole vocabulary, which a batch's greedy step ran on the calling
// thread alone): the largest value, then the first chunk that holds it. The
// answer is the plain loop's: NaNs after index 0 are passed over, a NaN at 0
// is returned, and of equal values (−0 and +0 included) the first wins.
GPTQ_VECTOR_CLONES int32_t argmax(const float *logits, int64_t vocab) {
  if (vocab <= 1 || std::isnan(logits[0])) return 0;
  const float top = max_of(logits, vocab);
  int64_t i = 0;
  for (; i + kVectorLanes <= vocab; i += kVectorLanes) {
    bool found = false;
    for (int l = 0; l < kVectorLanes; ++l) found |= logits[i + l] == top;
    if (found) break;
  }
  while (logits[i] != top) ++i;  // top is one of the values, none of them NaN
  return static_cast<int32_t>(i);
}

std::vector<std::pair<int32_t, double>> candidate_tokens(const float *logits, int64_t vocab,
                                                          const SamplingParams &p) {
  std::vector<int32_t> order(static_cast<size_t>(vocab));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
  size_t keep = order.size();
  if (p.top_k > 0 && static_cast<size_t>(p.top_k) < keep) {
    const float kth = logits[order[static_cast<size_t>(p.top_k) - 1]];
    keep = static_cast<size_t>(p.top_k);
    while (keep < order.size() && logits[order[keep]] == kth) ++keep;
  }
  // Softmax of logits / T over the kept tokens, in double.
  const double inv_t = 1.0 / p.temperature;
  const double top = logits[order[0]] * inv_t;
  std::vector<std::pair<int32_t, double>> out;
  out.reserve(keep);
  double z = 0.0;
  for (size_t i = 0; i < keep; ++i) {
    const double e = std::exp(logits[order[i]] * inv_t - top);
    out.push_back({order[i], e});
    z += e;
  }
  for (auto &c : out) c.second /= z;
  if (p.top_p < 1.0) {
    // transformers drops the tokens whose ascending cumulative probability
    // stays <= 1 - p: what remains is the most probable set reaching p.
    double cumulative = 0.0;
    size_t n = 0;
    while (n < out.size()) {
      cumulative += out[n].second;
      ++n;
      if (cumulative >= p.top_p) break;
    }
    out.resize(std::max<size_t>(n, 1));
    double kept = 0.0;
    for (const auto &c : out) kept += c.second;
    for (auto &c : out) c.second /= kept;
  }
  return out;
}

Sampler::Sampler(const SamplingParams &params, uint64_t stream) : params_(params) {
  // splitmix64 of (seed, stream): independent generators per sequence.
  uint64_t z = params.seed + 0x9e3779b97f4a7c15ULL * (stream + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  rng_.seed(z ^ (z >> 31));
}

int32_t Sampler::next(float *logits, int64_t vocab, const std::vector<int32_t> &context) {
  apply_repetition_penalty(logits, vocab, context, params_.repetition_penalty);
  if (params_.temperature == 0.0) return argmax(logits, vocab);
  const auto candidates = candidate_tokens(logits, vocab, params_);
  const double u = static_cast<double>(rng_() >> 11) * 0x1.0p-53;
  double cumulative = 0.0;
  for (const auto &c : candidates) {
    cumulative += c.second;
    if (u < cumulative) return c.first;
  }
  return candidates.back().first;
}

}  // namespace gptqtool
