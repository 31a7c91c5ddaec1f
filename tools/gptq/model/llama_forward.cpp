#include "model/llama_forward.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "common/checked_size.h"
#include "common/interrupt.h"
#include "model/parallel.h"
#include "model/vector_math.h"

namespace gptqtool {

namespace {

// Elements per task of the elementwise passes: enough to outweigh handing
// the task to a thread.
constexpr int64_t kElementwiseGrain = 1 << 16;

// Rows per step of the MLP: big enough for sgemm's full speed, small enough
// that a step's gate and up products stay in cache.
constexpr int64_t kMlpRows = 256;

// The big per-block arrays below are thread_local and only ever grow: every
// block of a forward pass needs the same sizes, and fresh multi-megabyte
// vectors would be page-faulted in anew each time.

}  // namespace

void head_norms(const LlamaConfig &c, const LlamaBlock &block, float *q, float *k,
                int64_t tokens) {
  if (block.q_norm.empty()) return;
  // Each head is a row of head_dim; rms_norm reads all of a row before it
  // writes it, so in place is safe.
  rms_norm(q, block.q_norm, tokens * c.num_attention_heads, c.head_dim, c.rms_norm_eps, q);
  rms_norm(k, block.k_norm, tokens * c.num_key_value_heads, c.head_dim, c.rms_norm_eps, k);
}

namespace {

// One row of rms_norm. The squares are summed in double, in kVectorLanes
// lanes added up in a fixed order at the end: one running sum is a chain of
// dependent additions that no clone could vectorize, and at a decode step,
// whose rows are few, that chain was the whole cost of the norm.
GPTQ_VECTOR_CLONES void rms_norm_row(const float *x, const float *weight, int64_t dim,
                                     double eps, float *out) {
  double lane[kVectorLanes] = {};
  int64_t i = 0;
  for (; i + kVectorLanes <= dim; i += kVectorLanes) {
    for (int l = 0; l < kVectorLanes; ++l) {
      const auto v = static_cast<double>(x[i + l]);
      lane[l] += v * v;
    }
  }
  for (; i < dim; ++i) lane[0] += static_cast<double>(x[i]) * x[i];
  double sum = 0.0;
  for (double v : lane) sum += v;
  const float inv = static_cast<float>(1.0 / std::sqrt(sum / static_cast<double>(dim) + eps));
  for (int64_t j = 0; j < dim; ++j) out[j] = weight[j] * (x[j] * inv);
}

}  // namespace

void rms_norm(const float *x, const std::vector<float> &weight, int64_t rows, int64_t dim,
              double eps, float *out) {
  parallel_ranges(rows, kElementwiseGrain / std::max<int64_t>(dim, 1), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) rms_norm_row(x + r * dim, weight.data(), dim, eps, out + r * dim);
  });
}

namespace {

// out[b·n + i] = act(gate[b·stride + i]) · up[b·stride + i] for i < n and
// b < blocks (one block: plain arrays; several: gate and up features
// interleaved in blocks of n, stride 2n), act being silu or (Gemma's
// gelu_pytorch_tanh) GELU in its tanh form; out may be gate when blocks is 1.
GPTQ_VECTOR_CLONES void gated_activation(const float *gate, const float *up, float *out, int64_t n,
                                         bool gelu, int64_t blocks = 1, int64_t stride = 0) {
  for (int64_t b = 0; b < blocks; ++b, gate += stride, up += stride, out += n) {
    if (gelu) {
      constexpr float kSqrt2OverPi = 0.7978845608028654f;
      for (int64_t i = 0; i < n; ++i) {
        const float g = gate[i];
        out[i] = 0.5f * g * (1.0f + std::tanh(kSqrt2OverPi * (g + 0.044715f * g * g * g))) * up[i];
      }
      continue;
    }
    for (int64_t i = 0; i < n; ++i) {
      const float g = gate[i];
      out[i] = g / (1.0f + fast_exp(-g)) * up[i];
    }
  }
}

// act(gate(x)) · up(x): the input of down_proj, [tokens, intermediate];
// gate and up are the separate layers, or, when `fused`, one layer gate_up
// whose features are [gate | up] (Phi-3's gate_up_proj: interleave 0) or
// blocks of `interleave` gate features and as many up features in turn
// (layers joined for generation, joined_linears.h).
void mlp_activation(const LlamaConfig &c, const Linear &gate, const Linear &up_layer,
                    const Linear &gate_up, bool fused, int64_t interleave, const float *x,
                    int64_t tokens, float *out) {
  // By blocks of rows, so that silu reads gate and up while they are still
  // in cache rather than streaming two [tokens, intermediate] arrays back.
  const int64_t hidden = c.hidden_size;
  const int64_t intermediate = fused ? gate_up.out_features() / 2 : gate.out_features();
  const bool gelu = c.hidden_act == "gelu_pytorch_tanh";
  thread_local std::vector<float> up_buffer;
  up_buffer.resize(checked_elements({std::min(tokens, kMlpRows), intermediate, fused ? 2 : 1},
                                    "MLP buffer"));
  float *up = up_buffer.data();  // the workers' own thread_local would be empty
  for (int64_t r0 = 0; r0 < tokens; r0 += kMlpRows) {
    const int64_t rows = std::min(kMlpRows, tokens - r0);
    float *act = out + r0 * intermediate;
    // The activation of each finished range of features [j0, j1), by the
    // thread that finished it where the product is split (Linear::forward).
    if (fused) {
      const int64_t block = interleave > 0 ? interleave : intermediate;
      // [j0, j1) holds whole pairs of a gate block and its up block.
      gate_up.forward(
          x + r0 * hidden, rows, up,
          [&](int64_t j0, int64_t j1) {
            const int64_t pairs = (j1 - j0) / (2 * block);
            parallel_ranges(rows, std::max<int64_t>(1, kElementwiseGrain / (j1 - j0)),
                            [&](int64_t a, int64_t b) {
                              for (int64_t row = a; row < b; ++row) {
                                const float *g = up + row * 2 * intermediate + j0;
                                gated_activation(g, g + block, act + row * intermediate + j0 / 2,
                                                 block, gelu, pairs, 2 * block);
                              }
                            });
          },
          2 * block);
      continue;
    }
    gate.forward(x + r0 * hidden, rows, act);
    up_layer.forward(x + r0 * hidden, rows, up, [&](int64_t j0, int64_t j1) {
      parallel_ranges(rows, std::max<int64_t>(1, kElementwiseGrain / (j1 - j0)),
                      [&](int64_t a, int64_t b) {
                        for (int64_t row = a; row < b; ++row) {
                          float *g = act + row * intermediate + j0;
                          gated_activation(g, up + row * intermediate + j0, g, j1 - j0, gelu);
                        }
                      });
    });
  }
}

// h += layer(x) for x [tokens, layer.in_features], or with an output norm
// (Gemma 2's sandwich norms) h += norm(layer(x)).
void add_linear(const LlamaConfig &c, const Linear &layer, const float *x, int64_t tokens,
                const std::vector<float> &out_norm, float *h) {
  const int64_t out = layer.out_features();
  thread_local std::vector<float> y;
  y.resize(checked_elements({tokens, out}, "linear output"));
  float *product = y.data();  // the workers' own thread_local would be empty
  if (!out_norm.empty()) {  // the norm takes whole rows
    layer.forward(x, tokens, product);
    rms_norm(product, out_norm, tokens, out, c.rms_norm_eps, product);
    parallel_ranges(tokens * out, kElementwiseGrain, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) h[i] += product[i];
    });
    return;
  }
  // Each finished range of features is added by the thread that finished
  // it where the product is split (Linear::forward).
  layer.forward(x, tokens, product, [&](int64_t j0, int64_t j1) {
    parallel_ranges(tokens, std::max<int64_t>(1, kElementwiseGrain / (j1 - j0)),
                    [&](int64_t a, int64_t b) {
                      for (int64_t r = a; r < b; ++r)
                        for (int64_t j = j0; j < j1; ++j) h[r * out + j] += product[r * out + j];
                    });
  });
}

// The block's forward pass, the one every block_forward runs.
// `block` is read afresh after each call of `at_input` (when given), which
// may have changed the group's layers.
void run_block(const LlamaConfig &c, const LlamaBlock &block, int64_t tokens, float *h,
               const BlockAttention &attention, const GroupInput &at_input) {
  thread_local std::vector<float> x, attn, act;
  x.resize(checked_elements({tokens, c.hidden_size}, "hidden states"));
  rms_norm(h, block.input_norm, tokens, c.hidden_size, c.rms_norm_eps, x.data());
  if (at_input) at_input(LinearGroup::Qkv, -1, x.data(), tokens);
  attn.resize(checked_elements({tokens, c.q_dim()}, "attention output"));
  attention(x.data(), attn.data());
  if (at_input) at_input(LinearGroup::O, -1, attn.data(), tokens);
  add_linear(c, block.o, attn.data(), tokens, block.attn_out_norm, h);
  rms_norm(h, block.post_norm, tokens, c.hidden_size, c.rms_norm_eps, x.data());
  if (c.moe()) {
    mixture_of_experts(c, block, x.data(), tokens, h, at_input);
    return;
  }
  if (at_input) at_input(LinearGroup::GateUp, -1, x.data(), tokens);
  act.resize(checked_elements({tokens, c.intermediate_size}, "MLP activations"));
  mlp_activation(c, block.gate, block.up, block.gate_up, block.gate_up.out_features() > 0,
                 block.gate_up_interleave, x.data(), tokens, act.data());
  if (at_input) at_input(LinearGroup::Down, -1, act.data(), tokens);
  add_linear(c, block.down, act.data(), tokens, block.mlp_out_norm, h);
}

}  // namespace

void qkv_projections(const LlamaConfig &c, const LlamaBlock &block, const float *x,
                     int64_t tokens, float *q, float *k, float *v) {
  if (block.qkv.out_features() == 0) {
    block.q.forward(x, tokens, q);
    block.k.forward(x, tokens, k);
    block.v.forward(x, tokens, v);
    return;
  }
  const int64_t q_dim = c.q_dim(), kv_dim = c.kv_dim(), width = q_dim + 2 * kv_dim;
  thread_local std::vector<float> fused_buffer;
  fused_buffer.resize(checked_elements({tokens, width}, "qkv_proj output"));
  const float *qkv = fused_buffer.data();  // the workers' own thread_local would be empty
  block.qkv.forward(x, tokens, fused_buffer.data());
  parallel_ranges(tokens, std::max<int64_t>(1, kElementwiseGrain / width),
                  [&](int64_t t0, int64_t t1) {
                    for (int64_t t = t0; t < t1; ++t) {
                      const float *row = qkv + t * width;
                      std::copy_n(row, q_dim, q + t * q_dim);
                      std::copy_n(row + q_dim, kv_dim, k + t * kv_dim);
                      std::copy_n(row + q_dim + kv_dim, kv_dim, v + t * kv_dim);
                    }
                  });
}

void gated_mlp_input(const LlamaConfig &c, const Linear &gate, const Linear &up, const float *x,
                     int64_t tokens, float *out) {
  mlp_activation(c, gate, up, gate, false, 0, x, tokens, out);
}

std::vector<LinearId> group_linears(LinearGroup group, const LlamaConfig &c, int64_t expert) {
  const bool mlp = group == LinearGroup::GateUp || group == LinearGroup::Down;
  if (mlp && expert >= 0) {
    if (group == LinearGroup::Down) return {LinearId(LinearSlot::Down, expert)};
    return {LinearId(LinearSlot::Gate, expert), LinearId(LinearSlot::Up, expert)};
  }
  if (mlp && c.moe()) {  // the shared expert
    if (group == LinearGroup::Down) return {LinearSlot::SharedDown};
    return {LinearSlot::SharedGate, LinearSlot::SharedUp};
  }
  switch (group) {
    case LinearGroup::Qkv:
      if (c.fused_projections) return {LinearSlot::Qkv};
      return {LinearSlot::Q, LinearSlot::K, LinearSlot::V};
    case LinearGroup::O: return {LinearSlot::O};
    case LinearGroup::GateUp:
      if (c.fused_projections) return {LinearSlot::GateUp};
      return {LinearSlot::Gate, LinearSlot::Up};
    case LinearGroup::Down: return {LinearSlot::Down};
  }
  throw ToolError("internal: unknown linear group");
}

void block_forward(const LlamaConfig &c, const Rope &rope, const LlamaBlock &block,
                   const SequenceBatch &batch, float *h) {
  run_block(c, block, batch.tokens(), h,
            [&](const float *x, float *out) { attention_core(c, rope, block, x, batch, out); },
            nullptr);
}

void block_forward(const LlamaConfig &c, const Rope &rope, LlamaBlock *block,
                   const SequenceBatch &batch, float *h, const LinearGroupTap &tap) {
  run_block(
      c, *block, batch.tokens(), h,
      [&](const float *x, float *out) { attention_core(c, rope, *block, x, batch, out); },
      [&](LinearGroup group, int64_t expert, const float *x, int64_t tokens) {
        tap(group, expert, x, tokens, block);
      });
}

void block_forward(const LlamaConfig &c, const LlamaBlock &block, int64_t tokens, float *h,
                   const BlockAttention &attention) {
  run_block(c, block, tokens, h, attention, nullptr);
}

std::vector<float> embed_tokens(const LlamaModel &model, const std::vector<int32_t> &ids) {
  const int64_t hidden = model.config.hidden_size;
  std::vector<float> h(
      checked_elements({static_cast<int64_t>(ids.size()), hidden}, "hidden states"));
  for (size_t t = 0; t < ids.size(); ++t) {
    if (ids[t] < 0 || ids[t] >= model.config.vocab_size) {
      throw ToolError("token id " + std::to_string(ids[t]) + " is outside the vocabulary of " +
                      std::to_string(model.config.vocab_size));
    }
    model.embed.row(ids[t], &h[t * hidden]);
  }
  if (model.config.embed_scale != 1.0f) {
    for (float &v : h) v *= model.config.embed_scale;
  }
  return h;
}

void project_logits(const LlamaModel &model, const float *x, int64_t rows, float *logits) {
  model.lm_head.forward(x, rows, logits);
  const auto cap = static_cast<float>(model.config.final_softcap);
  if (cap > 0) soft_cap(logits, rows * model.config.vocab_size, cap);
}

std::vector<float> final_hidden(const LlamaModel &model, const Rope &rope,
                                const std::vector<int32_t> &ids, const SequenceBatch &batch) {
  const LlamaConfig &c = model.config;
  std::vector<float> h = embed_tokens(model, ids);
  for (const LlamaBlock &block : model.blocks) {
    throw_if_interrupted();
    block_forward(c, rope, block, batch, h.data());
  }
  std::vector<float> x(h.size());
  rms_norm(h.data(), model.final_norm, batch.tokens(), c.hidden_size, c.rms_norm_eps,
           x.data());
  return x;
}

std::vector<float> model_logits(const LlamaModel &model, const Rope &rope,
                                const std::vector<int32_t> &ids, const SequenceBatch &batch) {
  const std::vector<float> x = final_hidden(model, rope, ids, batch);
  const int64_t tokens = batch.tokens();
  std::vector<float> logits(checked_elements({tokens, model.config.vocab_size}, "logits"));
  project_logits(model, x.data(), tokens, logits.data());
  return logits;
}

}  // namespace gptqtool
