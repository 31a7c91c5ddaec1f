// mixture_of_experts and route_tokens (declared in llama_forward.h): the
// sparse MLP of Mixtral, Qwen2-MoE and Qwen3-MoE as transformers computes
// it. Each token goes to the num_experts_per_tok experts of highest router
// probability; each expert runs on its own tokens only, gathered into one
// matrix, so an expert's linear layers see exactly the tokens routed to it
// (which is also what its GPTQ Hessian is built from, through at_input).
#include <algorithm>
#include <cmath>
#include <numeric>

#include "common/checked_size.h"
#include "model/llama_forward.h"
#include "model/vector_math.h"

namespace gptqtool {

Routing route_tokens(const LlamaConfig &c, const Linear &router, const float *x, int64_t tokens) {
  const int64_t n = c.num_experts, k = c.num_experts_per_tok;
  std::vector<float> logits(checked_elements({tokens, n}, "router logits"));
  router.forward(x, tokens, logits.data());
  Routing r;
  r.k = k;
  r.experts.resize(static_cast<size_t>(tokens * k));
  r.weights.resize(r.experts.size());
  std::vector<int32_t> order(static_cast<size_t>(n));
  std::vector<double> p(static_cast<size_t>(n));
  for (int64_t t = 0; t < tokens; ++t) {
    // Softmax in float32 as transformers runs it, summed in double here.
    const float *l = &logits[static_cast<size_t>(t * n)];
    const float mx = *std::max_element(l, l + n);
    double sum = 0;
    for (int64_t e = 0; e < n; ++e) sum += (p[e] = std::exp(static_cast<double>(l[e] - mx)));
    for (double &v : p) v /= sum;
    // The k largest probabilities, a tie going to the lower index.
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + k, order.end(),
                      [&](int32_t a, int32_t b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
    double picked = 0;
    for (int64_t j = 0; j < k; ++j) picked += p[order[j]];
    for (int64_t j = 0; j < k; ++j) {
      const double w = p[order[j]] / (c.norm_topk_prob ? picked : 1.0);
      r.experts[static_cast<size_t>(t * k + j)] = order[j];
      r.weights[static_cast<size_t>(t * k + j)] = static_cast<float>(w);
    }
  }
  return r;
}

namespace {

// One gated MLP on x [tokens, hidden]: the output y [tokens, hidden], with
// at_input called at the gate/up and down inputs for `expert`.
void run_expert(const LlamaConfig &c, const ExpertMlp &mlp, int64_t expert, const float *x,
                int64_t tokens, const GroupInput &at_input, std::vector<float> *act,
                std::vector<float> *y) {
  if (at_input) at_input(LinearGroup::GateUp, expert, x, tokens);
  act->resize(checked_elements({tokens, mlp.gate.out_features()}, "expert activations"));
  y->resize(checked_elements({tokens, c.hidden_size}, "expert output"));
  if (tokens == 0) {
    // No token for this expert: the tap still sees its (empty) inputs, so
    // that it can quantize the expert without them.
    if (at_input) at_input(LinearGroup::Down, expert, act->data(), 0);
    return;
  }
  gated_mlp_input(c, mlp.gate, mlp.up, x, tokens, act->data());
  if (at_input) at_input(LinearGroup::Down, expert, act->data(), tokens);
  mlp.down.forward(act->data(), tokens, y->data());
}

}  // namespace

void mixture_of_experts(const LlamaConfig &c, const LlamaBlock &block, const float *x,
                        int64_t tokens, float *h, const GroupInput &at_input) {
  const int64_t hidden = c.hidden_size;
  // Routing first: the router is never quantized, so it is fixed by x.
  const Routing routing = route_tokens(c, block.router, x, tokens);
  std::vector<float> out(checked_elements({tokens, hidden}, "MoE output"), 0.0f);
  std::vector<float> act, y;

  // Qwen2-MoE's shared expert, on every token, scaled by
  // sigmoid(shared_expert_gate(x)).
  if (c.shared_expert_intermediate_size > 0) {
    run_expert(c, block.shared_expert, -1, x, tokens, at_input, &act, &y);
    std::vector<float> gate(static_cast<size_t>(tokens));
    block.shared_expert_gate.forward(x, tokens, gate.data());
    for (int64_t t = 0; t < tokens; ++t) {
      const float g = 1.0f / (1.0f + std::exp(-gate[t]));
      for (int64_t i = 0; i < hidden; ++i) out[t * hidden + i] = g * y[t * hidden + i];
    }
  }

  // The routed experts in index order, each on the rows routed to it.
  std::vector<std::vector<int64_t>> rows(static_cast<size_t>(c.num_experts));
  std::vector<std::vector<float>> row_weights(rows.size());
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t j = 0; j < routing.k; ++j) {
      const auto e = static_cast<size_t>(routing.experts[static_cast<size_t>(t * routing.k + j)]);
      rows[e].push_back(t);
      row_weights[e].push_back(routing.weights[static_cast<size_t>(t * routing.k + j)]);
    }
  }
  std::vector<float> xs;
  for (int64_t e = 0; e < c.num_experts; ++e) {
    const std::vector<int64_t> &mine = rows[static_cast<size_t>(e)];
    const auto n = static_cast<int64_t>(mine.size());
    xs.resize(checked_elements({n, hidden}, "expert inputs"));
    for (int64_t r = 0; r < n; ++r) {
      std::copy_n(x + mine[r] * hidden, hidden, xs.data() + r * hidden);
    }
    run_expert(c, block.experts[static_cast<size_t>(e)], e, xs.data(), n, at_input, &act, &y);
    const std::vector<float> &w = row_weights[static_cast<size_t>(e)];
    for (int64_t r = 0; r < n; ++r) {
      float *o = out.data() + mine[r] * hidden;
      for (int64_t i = 0; i < hidden; ++i) o[i] += w[r] * y[r * hidden + i];
    }
  }
  for (int64_t i = 0; i < tokens * hidden; ++i) h[i] += out[i];
}

}  // namespace gptqtool
