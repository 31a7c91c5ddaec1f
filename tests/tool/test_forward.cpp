// The tool's forward pass against a straightforward double-precision
// transcription of the LLaMA equations (RMSNorm, rotate-half RoPE, causal
// grouped-query attention, SwiGLU), on tiny random models.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "model/llama_forward.h"
#include "model/model_dir.h"
#include "pipeline/perplexity.h"
#include "tiny_model.h"

using namespace gptqtool;

namespace {

using Mat = std::vector<double>;  // row-major

struct Ref {
  const ModelDir &dir;
  const LlamaConfig &c;
  std::vector<double> w(const std::string &name) const {
    const TensorInfo &t = dir.info(name);
    std::vector<float> f = dir.load_f32(name, t.shape);
    return std::vector<double>(f.begin(), f.end());
  }
  // y[t][o] = Σ_i x[t][i] W[row0 + o][i] (+ b[row0 + o]): rows row0 ..
  // row0 + out - 1 of the layer (Phi-3's fused layers hold several).
  Mat linear(const Mat &x, int64_t T, const std::string &name, int64_t out, int64_t in,
             int64_t row0 = 0) const {
    const auto W = w(name + ".weight");
    std::vector<double> b;
    if (dir.has(name + ".bias")) b = w(name + ".bias");
    Mat y(static_cast<size_t>(T * out), 0.0);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t o = 0; o < out; ++o) {
        double s = b.empty() ? 0.0 : b[row0 + o];
        for (int64_t i = 0; i < in; ++i) s += x[t * in + i] * W[(row0 + o) * in + i];
        y[t * out + o] = s;
      }
    return y;
  }
  bool gemma() const { return c.model_type == "gemma2" || gemma3(); }
  bool gemma3() const { return c.model_type == "gemma3_text"; }
  // RMSNorm over rows of the weight's width (the hidden size, or a head);
  // Gemma's multiplies by 1 + weight.
  Mat norm(const Mat &x, int64_t T, const std::string &name) const {
    auto g = w(name);
    if (gemma()) {
      for (double &v : g) v = static_cast<double>(1.0f + static_cast<float>(v));
    }
    const auto H = static_cast<int64_t>(g.size());
    T = static_cast<int64_t>(x.size()) / H;
    Mat y(x.size());
    for (int64_t t = 0; t < T; ++t) {
      double ss = 0;
      for (int64_t i = 0; i < H; ++i) ss += x[t * H + i] * x[t * H + i];
      const double r = 1.0 / std::sqrt(ss / H + c.rms_norm_eps);
      for (int64_t i = 0; i < H; ++i) y[t * H + i] = g[i] * x[t * H + i] * r;
    }
    return y;
  }
  // Rotate-half RoPE of layer l: default, or linear (positions divided by
  // the factor); Gemma 3's local layers with their own base and no scaling.
  void rope(Mat &x, int64_t T, int64_t heads, int64_t l) const {
    const int64_t d = c.head_dim, half = d / 2;
    const bool local = gemma3() && l % 2 == 0;  // sliding_window_pattern 2
    const double theta = local ? c.rope_local_theta : c.rope_theta;
    const double factor = !local && c.rope_type == "linear" ? c.rope_factor : 1.0;
    for (int64_t t = 0; t < T; ++t)
      for (int64_t h = 0; h < heads; ++h)
        for (int64_t i = 0; i < half; ++i) {
          const double f = std::pow(theta, -2.0 * i / d) * t / factor;
          double &a = x[(t * heads + h) * d + i];
          double &b = x[(t * heads + h) * d + i + half];
          const double a0 = a, b0 = b;
          a = a0 * std::cos(f) - b0 * std::sin(f);
          b = b0 * std::cos(f) + a0 * std::sin(f);
        }
  }
  // down(silu(gate(x)) · up(x)) for the three named layers of width I.
  Mat gated_mlp(const Mat &x, int64_t T, const std::string &gate, const std::string &up,
                const std::string &down, int64_t I) const {
    const int64_t H = c.hidden_size;
    Mat g = linear(x, T, gate, I, H), u = linear(x, T, up, I, H);
    for (size_t i = 0; i < g.size(); ++i) g[i] = g[i] / (1 + std::exp(-g[i])) * u[i];
    return linear(g, T, down, H, I);
  }
  // A mixture of experts, token by token: softmax over the router's
  // logits, the top k, their weights (renormalized for Mixtral and with
  // norm_topk_prob), the weighted sum of those experts' MLPs, plus
  // Qwen2-MoE's shared expert scaled by sigmoid(shared_expert_gate(x)).
  Mat moe(const Mat &x, int64_t T, const std::string &p) const {
    const int64_t H = c.hidden_size, E = c.num_experts, K = c.num_experts_per_tok;
    const bool mixtral = c.model_type == "mixtral";
    const std::string m = p + (mixtral ? "block_sparse_moe." : "mlp.");
    const Mat logits = linear(x, T, m + "gate", E, H);
    Mat out(x.size(), 0.0);
    for (int64_t t = 0; t < T; ++t) {
      const Mat xt(x.begin() + t * H, x.begin() + (t + 1) * H);
      std::vector<double> pr(static_cast<size_t>(E));
      double z = 0;
      for (int64_t e = 0; e < E; ++e) z += (pr[e] = std::exp(logits[t * E + e]));
      for (double &v : pr) v /= z;
      std::vector<int64_t> idx(static_cast<size_t>(E));
      for (int64_t e = 0; e < E; ++e) idx[e] = e;
      std::sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return pr[a] > pr[b]; });
      double picked = 0;
      for (int64_t j = 0; j < K; ++j) picked += pr[idx[j]];
      for (int64_t j = 0; j < K; ++j) {
        const double wgt = pr[idx[j]] / (c.norm_topk_prob ? picked : 1.0);
        const std::string ex = m + "experts." + std::to_string(idx[j]) + ".";
        const Mat y = mixtral ? gated_mlp(xt, 1, ex + "w1", ex + "w3", ex + "w2", c.intermediate_size)
                              : gated_mlp(xt, 1, ex + "gate_proj", ex + "up_proj", ex + "down_proj",
                                          c.expert_intermediate_size);
        for (int64_t i = 0; i < H; ++i) out[t * H + i] += wgt * y[i];
      }
    }
    if (c.shared_expert_intermediate_size > 0) {
      const std::string s = p + "mlp.shared_expert.";
      const Mat y = gated_mlp(x, T, s + "gate_proj", s + "up_proj", s + "down_proj",
                              c.shared_expert_intermediate_size);
      const Mat g = linear(x, T, p + "mlp.shared_expert_gate", 1, H);
      for (int64_t t = 0; t < T; ++t)
        for (int64_t i = 0; i < H; ++i) out[t * H + i] += y[t * H + i] / (1 + std::exp(-g[t]));
    }
    return out;
  }
  Mat logits(const std::vector<int32_t> &ids) const {
    const int64_t T = static_cast<int64_t>(ids.size()), H = c.hidden_size;
    const int64_t nh = c.num_attention_heads, nkv = c.num_key_value_heads, d = c.head_dim;
    const auto E = w("model.embed_tokens.weight");
    Mat h(static_cast<size_t>(T * H));
    // Gemma scales the embeddings by sqrt(hidden) (as a float32 number).
    const double embed_scale = gemma() ? static_cast<float>(std::sqrt(static_cast<double>(H))) : 1.0;
    for (int64_t t = 0; t < T; ++t)
      for (int64_t i = 0; i < H; ++i) h[t * H + i] = E[ids[t] * H + i] * embed_scale;
    for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
      const std::string p = "model.layers." + std::to_string(l) + ".";
      Mat x = norm(h, T, p + "input_layernorm.weight");
      // Phi-3's qkv_proj rows: q, then k, then v.
      const bool fused = c.model_type == "phi3";
      const std::string qkv = p + "self_attn.qkv_proj";
      Mat q = fused ? linear(x, T, qkv, nh * d, H, 0) : linear(x, T, p + "self_attn.q_proj", nh * d, H);
      Mat k = fused ? linear(x, T, qkv, nkv * d, H, nh * d)
                    : linear(x, T, p + "self_attn.k_proj", nkv * d, H);
      Mat v = fused ? linear(x, T, qkv, nkv * d, H, (nh + nkv) * d)
                    : linear(x, T, p + "self_attn.v_proj", nkv * d, H);
      if (c.qk_norm) {  // Qwen3, Gemma 3: each head of q and k normalized before RoPE
        q = norm(q, T, p + "self_attn.q_norm.weight");
        k = norm(k, T, p + "self_attn.k_norm.weight");
      }
      rope(q, T, nh, l);
      rope(k, T, nkv, l);
      Mat a(static_cast<size_t>(T * nh * d), 0.0);
      // The window, written out from the checkpoints' own convention.
      // Gemma 2 windows its even layers (its default layer_types), and so
      // does the tiny Gemma 3 (sliding_window_pattern 2).
      const bool windowed = gemma() ? c.sliding_window > 0 && l % 2 == 0
                                    : c.sliding_window > 0 && l >= c.max_window_layers;
      const double score_scale = gemma() ? 1.0 / std::sqrt(24.0) : 1.0 / std::sqrt(double(d));
      const double score_cap = gemma() && !gemma3() ? 0.5 : 0.0;
      for (int64_t hh = 0; hh < nh; ++hh) {
        const int64_t g = hh / (nh / nkv);
        for (int64_t i = 0; i < T; ++i) {
          const int64_t j0 = windowed ? std::max<int64_t>(0, i - c.sliding_window + 1) : 0;
          std::vector<double> s(static_cast<size_t>(i + 1), 0.0);
          double mx = -1e300;
          for (int64_t j = j0; j <= i; ++j) {
            double dot = 0;
            for (int64_t e = 0; e < d; ++e) dot += q[(i * nh + hh) * d + e] * k[(j * nkv + g) * d + e];
            s[j] = dot * score_scale;
            if (score_cap > 0) s[j] = score_cap * std::tanh(s[j] / score_cap);
            mx = std::max(mx, s[j]);
          }
          double z = 0;
          for (int64_t j = j0; j <= i; ++j) z += (s[j] = std::exp(s[j] - mx));
          for (int64_t j = j0; j <= i; ++j)
            for (int64_t e = 0; e < d; ++e)
              a[(i * nh + hh) * d + e] += s[j] / z * v[(j * nkv + g) * d + e];
        }
      }
      Mat o = linear(a, T, p + "self_attn.o_proj", H, nh * d);
      // Gemma 2: post_attention_layernorm norms the attention output, and
      // pre_feedforward_layernorm is the MLP's input norm.
      if (gemma()) o = norm(o, T, p + "post_attention_layernorm.weight");
      for (size_t i = 0; i < h.size(); ++i) h[i] += o[i];
      x = norm(h, T, p + (gemma() ? "pre_feedforward_layernorm.weight"
                                  : "post_attention_layernorm.weight"));
      if (c.num_experts > 0) {
        const Mat y = moe(x, T, p);
        for (size_t i = 0; i < h.size(); ++i) h[i] += y[i];
        continue;
      }
      const int64_t I = c.intermediate_size;
      // Phi-3's gate_up_proj output is chunked in two: gate, then up.
      const std::string gate_up = p + "mlp.gate_up_proj";
      Mat gate = fused ? linear(x, T, gate_up, I, H, 0) : linear(x, T, p + "mlp.gate_proj", I, H);
      Mat up = fused ? linear(x, T, gate_up, I, H, I) : linear(x, T, p + "mlp.up_proj", I, H);
      for (size_t i = 0; i < gate.size(); ++i) {
        const double g = gate[i];
        const double act = gemma() ? 0.5 * g * (1 + std::tanh(std::sqrt(2 / M_PI) * (g + 0.044715 * g * g * g)))
                                   : g / (1 + std::exp(-g));
        gate[i] = act * up[i];
      }
      Mat down = linear(gate, T, p + "mlp.down_proj", H, I);
      if (gemma()) down = norm(down, T, p + "post_feedforward_layernorm.weight");
      for (size_t i = 0; i < h.size(); ++i) h[i] += down[i];
    }
    Mat x = norm(h, T, "model.norm.weight");
    Mat out = linear(x, T, dir.has("lm_head.weight") ? "lm_head" : "model.embed_tokens",
                     c.vocab_size, H);
    if (gemma()) {
      for (double &v : out) v = 2.0 * std::tanh(v / 2.0);
    }
    return out;
  }
};

double rel_l2(const std::vector<float> &got, const Mat &want, size_t offset, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) {
    const double d = got[offset + i] - want[i];
    num += d * d;
    den += want[i] * want[i];
  }
  return std::sqrt(num / den);
}

void check_model(const tinymodel::TinySpec &spec) {
  const std::string dir = tinymodel::make_temp_dir("forward");
  tinymodel::write_model(dir, spec);
  auto md = ModelDir::open(dir);
  const LlamaModel model = load_model(*md);
  // 16-bit layers (and a tied embedding table) are multiplied in 16 bits.
  EXPECT_EQ(model.lm_head.half(), spec.dtype != TensorDType::F32);
  for (const LinearId id : block_linears(model.config))
    EXPECT_EQ(block_linear(model.blocks[0], id).half(), spec.dtype != TensorDType::F32);
  // A tied float32 lm_head multiplies with the embedding table's own rows,
  // not a copy of them.
  if (spec.tied && spec.dtype == TensorDType::F32) {
    ASSERT_NE(model.embed.f32_rows(), nullptr);
    EXPECT_EQ(model.lm_head.weight().data(), model.embed.f32_rows()->data());
  }
  Ref ref{*md, md->config()};
  // Two sequences of different lengths in one batch: each must come out as
  // if it had been run alone.
  std::vector<int32_t> a, b;
  for (int i = 0; i < 23; ++i) a.push_back((i * 37 + 5) % static_cast<int32_t>(spec.vocab));
  for (int i = 0; i < 9; ++i) b.push_back((i * 11 + 3) % static_cast<int32_t>(spec.vocab));
  std::vector<int32_t> ids = a;
  ids.insert(ids.end(), b.begin(), b.end());
  SequenceBatch batch;
  batch.add(23);
  batch.add(9);
  const Rope rope(model.config, 23);
  const std::vector<float> got = model_logits(model, rope, ids, batch);
  const Mat want_a = ref.logits(a), want_b = ref.logits(b);
  const size_t V = static_cast<size_t>(spec.vocab);
  EXPECT_LT(rel_l2(got, want_a, 0, 23 * V), 2e-5);
  EXPECT_LT(rel_l2(got, want_b, 23 * V, 9 * V), 2e-5);
  std::filesystem::remove_all(dir);
}

}  // namespace

TEST(Forward, LlamaMatchesReference) { check_model({}); }

TEST(Forward, TiedEmbeddingsAndMultiQueryGroups) {
  tinymodel::TinySpec s;
  s.tied = true;
  s.kv_heads = 1;
  s.rope_theta = 500000.0;
  check_model(s);
}

TEST(Forward, Qwen2BiasesMatchReference) {
  tinymodel::TinySpec s;
  s.qwen2 = true;
  s.eps = 1e-6;
  check_model(s);
}

// Qwen3: per-head q/k norms, and a head_dim that is not hidden / heads (q
// and o are 96 wide in a 64-wide model), with a window from layer 1 on.
TEST(Forward, Qwen3HeadNormsMatchReference) {
  tinymodel::TinySpec s;
  s.qwen3 = true;
  s.head_dim = 24;
  s.eps = 1e-6;
  check_model(s);
  s.sliding_window = 4;
  s.max_window_layers = 1;
  check_model(s);
}

TEST(Forward, Bf16CheckpointMatchesReference) {
  tinymodel::TinySpec s;
  s.dtype = TensorDType::BF16;
  check_model(s);
}

TEST(Forward, TiedF16CheckpointMatchesReference) {
  tinymodel::TinySpec s;
  s.dtype = TensorDType::F16;
  s.tied = true;
  check_model(s);
}

TEST(Forward, MistralSlidingWindowMatchesReference) {
  tinymodel::TinySpec s;
  s.mistral = true;
  s.sliding_window = 5;  // shorter than the 23-token sequence
  check_model(s);
}

TEST(Forward, Qwen2WindowOnlyFromMaxWindowLayers) {
  tinymodel::TinySpec s;
  s.qwen2 = true;
  s.sliding_window = 4;
  s.max_window_layers = 1;  // layer 0 full, layer 1 windowed
  check_model(s);
}

TEST(Forward, Gemma2MatchesReference) {
  tinymodel::TinySpec s;
  s.gemma2 = true;
  s.tied = true;
  s.sliding_window = 5;  // layer 0 windowed, layer 1 full
  check_model(s);
}

// Gemma 3: q/k norms with 1 + weight, two RoPEs (the local base on the
// windowed layer, linear scaling on the full one), no score cap.
TEST(Forward, Gemma3MatchesReference) {
  tinymodel::TinySpec s;
  s.gemma3 = true;
  s.tied = true;
  s.head_dim = 24;
  s.sliding_window = 5;  // layer 0 windowed (local RoPE), layer 1 full
  check_model(s);
}

// Mixtures of experts: Mixtral (renormalized top 2 of 4), Qwen2-MoE (shared
// expert with its sigmoid gate, q/k/v biases, top 2 not renormalized),
// Qwen3-MoE (q/k norms, top 3 of 5 renormalized, no shared expert).
TEST(Forward, MixtralMatchesReference) {
  tinymodel::TinySpec s;
  s.mixtral = true;
  s.sliding_window = 7;
  check_model(s);
}

TEST(Forward, Qwen2MoeMatchesReference) {
  tinymodel::TinySpec s;
  s.qwen2_moe = true;
  s.eps = 1e-6;
  check_model(s);
}

TEST(Forward, Qwen3MoeMatchesReference) {
  tinymodel::TinySpec s;
  s.qwen3_moe = true;
  s.head_dim = 24;
  s.experts = 5;
  s.top_k = 3;
  s.norm_topk_prob = true;
  s.eps = 1e-6;
  check_model(s);
}

TEST(Forward, Phi3FusedProjectionsAndSlidingWindowMatchReference) {
  tinymodel::TinySpec s;
  s.phi3 = true;
  s.sliding_window = 6;  // Phi-3 windows every layer when it names a window
  check_model(s);
}

// The same weights stored fused (Phi-3) or apart (LLaMA) are the same model.
TEST(Forward, Phi3EqualsTheLlamaModelOfTheSameWeights) {
  auto logits_of = [](const tinymodel::TinySpec &s) {
    const std::string dir = tinymodel::make_temp_dir("phi3-llama");
    tinymodel::write_model(dir, s);
    auto md = ModelDir::open(dir);
    const LlamaModel model = load_model(*md);
    std::vector<int32_t> ids;
    for (int i = 0; i < 17; ++i) ids.push_back((i * 29 + 1) % static_cast<int32_t>(s.vocab));
    SequenceBatch batch;
    batch.add(17);
    const Rope rope(model.config, 17);
    std::vector<float> logits = model_logits(model, rope, ids, batch);
    std::filesystem::remove_all(dir);
    return logits;
  };
  tinymodel::TinySpec llama, phi3;
  phi3.phi3 = true;
  const std::vector<float> a = logits_of(llama), b = logits_of(phi3);
  ASSERT_EQ(a.size(), b.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += a[i] * a[i];
  }
  EXPECT_LT(std::sqrt(num / den), 1e-6);
}

// block_forward's tap sees each group's input, in order, before the group
// uses it, and the layers it puts into the block are the ones the block runs
// from there on: what true-sequential quantization relies on.
TEST(Forward, BlockTapSeesEachGroupInputAndTheLayersItPutsAreRun) {
  const std::string dir = tinymodel::make_temp_dir("taps");
  tinymodel::TinySpec spec;
  tinymodel::write_model(dir, spec);
  auto md = ModelDir::open(dir);
  const LlamaModel model = load_model(*md);
  const LlamaConfig &c = model.config;
  std::vector<int32_t> ids;
  for (int i = 0; i < 30; ++i) ids.push_back((i * 37 + 5) % static_cast<int32_t>(spec.vocab));
  SequenceBatch batch;
  batch.add(18);
  batch.add(12);
  const Rope rope(c, 18);
  const std::vector<float> h0 = embed_tokens(model, ids);
  const int64_t T = batch.tokens();

  // A tap that changes nothing: the plain block's result, bit for bit.
  std::vector<float> plain = h0;
  block_forward(c, rope, model.blocks[0], batch, plain.data());
  std::vector<float> normed(h0.size());
  rms_norm(h0.data(), model.blocks[0].input_norm, T, c.hidden_size, c.rms_norm_eps,
           normed.data());
  LlamaBlock b0 = model.blocks[0];
  std::vector<float> watched = h0;
  std::vector<LinearGroup> seen;
  block_forward(c, rope, &b0, batch, watched.data(),
                [&](LinearGroup g, int64_t, const float *x, int64_t tokens, LlamaBlock *) {
                  EXPECT_EQ(tokens, T);
                  if (g == LinearGroup::Qkv) {
                    EXPECT_EQ(std::vector<float>(x, x + normed.size()), normed);
                  }
                  seen.push_back(g);
                });
  EXPECT_EQ(seen, (std::vector<LinearGroup>{LinearGroup::Qkv, LinearGroup::O,
                                            LinearGroup::GateUp, LinearGroup::Down}));
  EXPECT_EQ(watched, plain);

  // A tap that puts block 1's layers in, each group at its own input: the
  // result of block 0's norms with all of block 1's linear layers.
  LlamaBlock mixed = model.blocks[0];
  for (const LinearSlot slot : block_slots(c)) {
    block_linear(mixed, slot) = block_linear(model.blocks[1], slot);
  }
  std::vector<float> want = h0;
  block_forward(c, rope, mixed, batch, want.data());
  LlamaBlock b = model.blocks[0];
  std::vector<float> got = h0;
  block_forward(c, rope, &b, batch, got.data(),
                [&](LinearGroup g, int64_t, const float *, int64_t, LlamaBlock *block) {
                  for (const LinearId id : group_linears(g, c)) {
                    block_linear(*block, id) = block_linear(model.blocks[1], id);
                  }
                });
  EXPECT_EQ(got, want);
  EXPECT_NE(got, plain);
  std::filesystem::remove_all(dir);
}

TEST(Forward, PerplexityOfUniformLogitsIsVocabSize) {
  std::vector<float> logits(50, 0.25f);
  EXPECT_NEAR(std::exp(token_nll(logits.data(), 50, 7)), 50.0, 1e-9);
}

// A crafted config whose head counts times head_dim wrap around 2^64 to 0:
// the q/k/v tensors of shape [0, hidden] then matched the wrapped widths,
// and RoPE wrote 2^62 heads into an empty buffer (SIGSEGV). Such a model
// must be refused when it is opened, before anything is allocated.
TEST(Forward, WrappedHeadCountIsRefusedBeforeAnythingRuns) {
  const std::string dir = tinymodel::make_temp_dir("hostile");
  tinymodel::TinySpec s;
  s.layers = 1;
  nlohmann::json c = tinymodel::config_json(s);
  c["num_attention_heads"] = int64_t{1} << 62;
  c["num_key_value_heads"] = int64_t{1} << 62;
  c["head_dim"] = 4;  // (2^62 · 4) mod 2^64 = 0
  tinymodel::write_json(dir + "/config.json", c);
  SafetensorsWriter w;
  auto add = [&](const std::string &name, std::vector<int64_t> shape) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    w.add(name, TensorDType::F32, shape, std::vector<uint8_t>(static_cast<size_t>(n) * 4, 0));
  };
  const int64_t h = s.hidden;
  add("model.embed_tokens.weight", {s.vocab, h});
  add("model.layers.0.input_layernorm.weight", {h});
  add("model.layers.0.post_attention_layernorm.weight", {h});
  for (const char *p : {"q_proj", "k_proj", "v_proj"}) {
    add(std::string("model.layers.0.self_attn.") + p + ".weight", {0, h});
  }
  add("model.layers.0.self_attn.o_proj.weight", {h, 0});
  add("model.layers.0.mlp.gate_proj.weight", {s.intermediate, h});
  add("model.layers.0.mlp.up_proj.weight", {s.intermediate, h});
  add("model.layers.0.mlp.down_proj.weight", {h, s.intermediate});
  add("model.norm.weight", {h});
  add("lm_head.weight", {s.vocab, h});
  w.write(dir + "/model.safetensors");
  try {
    auto md = ModelDir::open(dir);
    check_llama_tensors(*md);
    const LlamaModel model = load_model(*md);
    const std::vector<int32_t> ids{1, 2, 3};
    SequenceBatch batch;
    batch.add(3);
    const Rope rope(model.config, 3);
    model_logits(model, rope, ids, batch);
    ADD_FAILURE() << "the model was run";
  } catch (const ToolError &e) {
    EXPECT_NE(std::string(e.what()).find("num_attention_heads"), std::string::npos) << e.what();
  }
  std::filesystem::remove_all(dir);
}
