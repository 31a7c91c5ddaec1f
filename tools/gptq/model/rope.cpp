// The formulas are those of transformers' modeling_rope_utils (checked
// against its own functions in tests/tool/test_model_config.cpp), computed
// in double and rounded to float once, where transformers computes in
// float32 throughout; the two agree to a float32 rounding.
#include "model/rope.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "common/checked_size.h"
#include "common/tool_error.h"

namespace gptqtool {

namespace {

// theta^(-2i/dim) for i < dim/2: the default frequencies.
std::vector<double> base_frequencies(double theta, int64_t dim) {
  std::vector<double> f(static_cast<size_t>(dim / 2));
  for (int64_t i = 0; i < dim / 2; ++i) {
    f[static_cast<size_t>(i)] =
        1.0 / std::pow(theta, static_cast<double>(2 * i) / static_cast<double>(dim));
  }
  return f;
}

// llama3: long wavelengths are slowed by `factor`, short ones kept, and the
// band between blended smoothly (as the Llama 3.1 release defines it).
void llama3(const LlamaConfig &c, std::vector<double> *inv_freq) {
  const double old_len = static_cast<double>(c.rope_original_max_pos);
  const double low_wavelen = old_len / c.rope_low_freq_factor;
  const double high_wavelen = old_len / c.rope_high_freq_factor;
  for (double &f : *inv_freq) {
    const double wavelen = 2.0 * M_PI / f;
    if (wavelen > low_wavelen) {
      f /= c.rope_factor;
    } else if (wavelen >= high_wavelen) {
      const double smooth = (old_len / wavelen - c.rope_low_freq_factor) /
                            (c.rope_high_freq_factor - c.rope_low_freq_factor);
      f = (1.0 - smooth) * f / c.rope_factor + smooth * f;
    }
  }
}

// yarn: dimensions that turn fewer than beta_slow times over the
// pretraining length are interpolated (divided by factor), those that turn
// more than beta_fast times kept, and a linear ramp blends the ones between.
void yarn(const LlamaConfig &c, int64_t dim, std::vector<double> *inv_freq) {
  const double d = static_cast<double>(dim);
  const double original = static_cast<double>(c.rope_original_max_pos);
  // The dimension index at which a frequency turns `rotations` times.
  auto correction_dim = [&](double rotations) {
    return d * std::log(original / (rotations * 2.0 * M_PI)) / (2.0 * std::log(c.rope_theta));
  };
  double low = correction_dim(c.rope_beta_fast), high = correction_dim(c.rope_beta_slow);
  if (c.rope_truncate) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = std::max(low, 0.0);
  high = std::min(high, d - 1.0);
  if (low == high) high += 0.001;  // no division by zero
  for (size_t i = 0; i < inv_freq->size(); ++i) {
    const double ramp = std::clamp((static_cast<double>(i) - low) / (high - low), 0.0, 1.0);
    const double keep = 1.0 - ramp;  // the share left unscaled (extrapolated)
    const double f = (*inv_freq)[i];
    (*inv_freq)[i] = f / c.rope_factor * (1.0 - keep) + f * keep;
  }
}

}  // namespace

RopeFrequencies rope_frequencies(const LlamaConfig &c, int64_t seq_len) {
  const int64_t dim = c.head_dim;
  RopeFrequencies r;
  double theta = c.rope_theta;
  if (c.rope_type == "dynamic") {
    // NTK-aware scaling grows the base only for sequences longer than
    // max_position_embeddings; shorter ones use the default frequencies.
    const int64_t len = std::max(seq_len, c.max_position_embeddings);
    if (len > c.max_position_embeddings && dim > 2) {
      const double max_pos = static_cast<double>(c.max_position_embeddings);
      theta *= std::pow(c.rope_factor * static_cast<double>(len) / max_pos - (c.rope_factor - 1.0),
                        static_cast<double>(dim) / static_cast<double>(dim - 2));
    }
  }
  r.inv_freq = base_frequencies(theta, dim);
  if (c.rope_type == "linear") {
    for (double &f : r.inv_freq) f /= c.rope_factor;
  } else if (c.rope_type == "llama3") {
    llama3(c, &r.inv_freq);
  } else if (c.rope_type == "yarn") {
    yarn(c, dim, &r.inv_freq);
    r.attention_scaling = c.rope_attention_factor;
  } else if (c.rope_type != "default" && c.rope_type != "dynamic") {
    throw ToolError("internal: RoPE type \"" + c.rope_type + "\" reached the forward pass");
  }
  return r;
}

Rope::Rope(const LlamaConfig &config, int64_t max_positions)
    : head_dim_(config.head_dim), max_positions_(max_positions) {
  const int64_t half = head_dim_ / 2;
  const RopeFrequencies freq = rope_frequencies(config, max_positions);
  const auto scaling = static_cast<float>(freq.attention_scaling);
  cos_.resize(checked_elements({max_positions, half}, "RoPE table"));
  sin_.resize(cos_.size());
  for (int64_t p = 0; p < max_positions; ++p) {
    for (int64_t i = 0; i < half; ++i) {
      // The angle is formed in float32, as the checkpoints' own code does,
      // so long positions round the same way.
      const float angle = static_cast<float>(p) * static_cast<float>(freq.inv_freq[i]);
      cos_[p * half + i] = std::cos(angle) * scaling;
      sin_[p * half + i] = std::sin(angle) * scaling;
    }
  }
  if (config.rope_local_theta > 0) {
    LlamaConfig local = config;  // the default type at the local base
    local.rope_type = "default";
    local.rope_theta = config.rope_local_theta;
    local.rope_local_theta = 0;
    local_ = std::make_shared<const Rope>(local, max_positions);
  }
}

void Rope::apply(float *x, int64_t seq, int64_t heads, int64_t first) const {
  if (first + seq > max_positions_) {
    throw ToolError("sequence of " + std::to_string(first + seq) +
                    " tokens is longer than the " + std::to_string(max_positions_) +
                    " positions prepared");
  }
  const int64_t half = head_dim_ / 2;
  for (int64_t p = 0; p < seq; ++p) {
    const float *c = &cos_[(first + p) * half];
    const float *s = &sin_[(first + p) * half];
    for (int64_t h = 0; h < heads; ++h) {
      float *v = x + (p * heads + h) * head_dim_;
      for (int64_t i = 0; i < half; ++i) {
        const float a = v[i], b = v[i + half];
        v[i] = a * c[i] - b * s[i];
        v[i + half] = b * c[i] + a * s[i];
      }
    }
  }
}

}  // namespace gptqtool
