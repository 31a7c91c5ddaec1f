#include "llama_forward.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <string>

namespace gptqtool {

Rope::Rope(const LlamaConfig &config, int64_t max_positions)
    : head_dim_(config.head_dim), max_positions_(max_positions) {
  const int64_t half = head_dim_ / 2;
  std::vector<double> inv_freq(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) {
    inv_freq[i] = 1.0 / std::pow(config.rope_theta,
                                 static_cast<double>(2 * i) / static_cast<double>(head_dim_));
  }
  if (config.rope_scaling_type == "linear") {
    for (double &f : inv_freq) f /= config.rope_factor;
  } else if (config.rope_scaling_type == "llama3") {
    // Long wavelengths are slowed by `factor`, short ones kept, and the band
    // between blended smoothly (as the Llama 3.1 release defines it).
    const double old_len = static_cast<double>(config.rope_original_max_pos);
    const double low_wavelen = old_len / config.rope_low_freq_factor;
    const double high_wavelen = old_len / config.rope_high_freq_factor;
    for (double &f : inv_freq) {
      const double wavelen = 2.0 * M_PI / f;
      if (wavelen > low_wavelen) {
        f /= config.rope_factor;
      } else if (wavelen >= high_wavelen) {
        const double smooth = (old_len / wavelen - config.rope_low_freq_factor) /
                              (config.rope_high_freq_factor - config.rope_low_freq_factor);
        f = (1.0 - smooth) * f / config.rope_factor + smooth * f;
      }
    }
  }
  cos_.resize(static_cast<size_t>(max_positions * half));
  sin_.resize(cos_.size());
  for (int64_t p = 0; p < max_positions; ++p) {
    for (int64_t i = 0; i < half; ++i) {
      // The angle is formed in float32, as the checkpoints' own code does,
      // so long positions round the same way.
      const float angle = static_cast<float>(p) * static_cast<float>(inv_freq[i]);
      cos_[p * half + i] = std::cos(angle);
      sin_[p * half + i] = std::sin(angle);
    }
  }
}

void Rope::apply(float *x, int64_t seq, int64_t heads) const {
  if (seq > max_positions_) {
    throw ToolError("sequence of " + std::to_string(seq) + " tokens is longer than the " +
                    std::to_string(max_positions_) + " positions prepared");
  }
  const int64_t half = head_dim_ / 2;
  for (int64_t p = 0; p < seq; ++p) {
    const float *c = &cos_[p * half];
    const float *s = &sin_[p * half];
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

void rms_norm(const float *x, const std::vector<float> &weight, int64_t rows, int64_t dim,
              double eps, float *out) {
  for (int64_t r = 0; r < rows; ++r) {
    const float *xr = x + r * dim;
    double sum = 0.0;
    for (int64_t i = 0; i < dim; ++i) sum += static_cast<double>(xr[i]) * xr[i];
    const float inv = static_cast<float>(1.0 / std::sqrt(sum / static_cast<double>(dim) + eps));
    float *o = out + r * dim;
    for (int64_t i = 0; i < dim; ++i) o[i] = weight[i] * (xr[i] * inv);
  }
}

namespace {

// Causal softmax over row i of scores (only keys lo..i are visible).
void softmax_row(float *row, int64_t lo, int64_t hi, int64_t len) {
  float mx = row[lo];
  for (int64_t j = lo + 1; j <= hi; ++j) mx = std::max(mx, row[j]);
  double sum = 0.0;
  for (int64_t j = lo; j <= hi; ++j) {
    row[j] = std::exp(row[j] - mx);
    sum += row[j];
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t j = 0; j < len; ++j) row[j] = (j >= lo && j <= hi) ? row[j] * inv : 0.0f;
}

}  // namespace

void attention_core(const LlamaConfig &c, const Rope &rope, const LlamaBlock &block,
                    const float *x, const SequenceBatch &batch, float *out) {
  const int64_t tokens = batch.tokens();
  const int64_t hd = c.head_dim;
  const int64_t heads = c.num_attention_heads, kv_heads = c.num_key_value_heads;
  const int64_t q_dim = heads * hd, kv_dim = kv_heads * hd;
  std::vector<float> q(static_cast<size_t>(tokens * q_dim));
  std::vector<float> k(static_cast<size_t>(tokens * kv_dim));
  std::vector<float> v(static_cast<size_t>(tokens * kv_dim));
  block.q.forward(x, tokens, q.data());
  block.k.forward(x, tokens, k.data());
  block.v.forward(x, tokens, v.data());
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));
  const int64_t group = heads / kv_heads;
  std::vector<float> scores;
  for (int64_t s = 0; s < batch.sequences(); ++s) {
    const int64_t t0 = batch.starts[s];
    const int64_t len = batch.starts[s + 1] - t0;
    float *qs = q.data() + t0 * q_dim;
    float *ks = k.data() + t0 * kv_dim;
    const float *vs = v.data() + t0 * kv_dim;
    rope.apply(qs, len, heads);
    rope.apply(ks, len, kv_heads);
    scores.resize(static_cast<size_t>(len * len));
    for (int64_t h = 0; h < heads; ++h) {
      const int64_t g = h / group;
      // scores = scale · Q_h K_gᵀ, [len, len]
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(len),
                  static_cast<int>(len), static_cast<int>(hd), scale, qs + h * hd,
                  static_cast<int>(q_dim), ks + g * hd, static_cast<int>(kv_dim), 0.0f,
                  scores.data(), static_cast<int>(len));
      for (int64_t i = 0; i < len; ++i) {
        int64_t lo = 0;
        if (c.sliding_window > 0 && i - c.sliding_window + 1 > 0) lo = i - c.sliding_window + 1;
        softmax_row(scores.data() + i * len, lo, i, len);
      }
      // out_h = P · V_g
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(len),
                  static_cast<int>(hd), static_cast<int>(len), 1.0f, scores.data(),
                  static_cast<int>(len), vs + g * hd, static_cast<int>(kv_dim), 0.0f,
                  out + t0 * q_dim + h * hd, static_cast<int>(q_dim));
    }
  }
}

void mlp_activation(const LlamaBlock &block, const float *x, int64_t tokens,
                    int64_t intermediate, float *out) {
  std::vector<float> up(static_cast<size_t>(tokens * intermediate));
  block.gate.forward(x, tokens, out);
  block.up.forward(x, tokens, up.data());
  const int64_t n = tokens * intermediate;
  for (int64_t i = 0; i < n; ++i) {
    const float g = out[i];
    out[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void add_linear(const Linear &layer, const float *x, int64_t tokens, float *h) {
  const int64_t out = layer.out_features();
  std::vector<float> y(static_cast<size_t>(tokens * out));
  layer.forward(x, tokens, y.data());
  for (int64_t i = 0; i < tokens * out; ++i) h[i] += y[i];
}

void block_forward(const LlamaConfig &c, const Rope &rope, const LlamaBlock &block,
                   const SequenceBatch &batch, float *h) {
  const int64_t tokens = batch.tokens();
  std::vector<float> x(static_cast<size_t>(tokens * c.hidden_size));
  rms_norm(h, block.input_norm, tokens, c.hidden_size, c.rms_norm_eps, x.data());
  std::vector<float> attn(static_cast<size_t>(tokens * c.num_attention_heads * c.head_dim));
  attention_core(c, rope, block, x.data(), batch, attn.data());
  add_linear(block.o, attn.data(), tokens, h);
  rms_norm(h, block.post_norm, tokens, c.hidden_size, c.rms_norm_eps, x.data());
  std::vector<float> act(static_cast<size_t>(tokens * c.intermediate_size));
  mlp_activation(block, x.data(), tokens, c.intermediate_size, act.data());
  add_linear(block.down, act.data(), tokens, h);
}

std::vector<float> embed_tokens(const LlamaModel &model, const std::vector<int32_t> &ids) {
  const int64_t hidden = model.config.hidden_size;
  std::vector<float> h(ids.size() * static_cast<size_t>(hidden));
  for (size_t t = 0; t < ids.size(); ++t) {
    if (ids[t] < 0 || ids[t] >= model.config.vocab_size) {
      throw ToolError("token id " + std::to_string(ids[t]) + " is outside the vocabulary of " +
                      std::to_string(model.config.vocab_size));
    }
    std::copy_n(&model.embed[static_cast<size_t>(ids[t]) * hidden], hidden, &h[t * hidden]);
  }
  return h;
}

std::vector<float> model_logits(const LlamaModel &model, const Rope &rope,
                                const std::vector<int32_t> &ids, const SequenceBatch &batch) {
  const LlamaConfig &c = model.config;
  std::vector<float> h = embed_tokens(model, ids);
  for (const LlamaBlock &block : model.blocks) block_forward(c, rope, block, batch, h.data());
  const int64_t tokens = batch.tokens();
  std::vector<float> x(h.size());
  rms_norm(h.data(), model.final_norm, tokens, c.hidden_size, c.rms_norm_eps, x.data());
  std::vector<float> logits(static_cast<size_t>(tokens * c.vocab_size));
  model.lm_head.forward(x.data(), tokens, logits.data());
  return logits;
}

}  // namespace gptqtool
