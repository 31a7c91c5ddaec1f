#include "perplexity.h"

#include <chrono>
#include <cmath>

#include "llama_forward.h"

namespace gptqtool {

namespace {

// Calls fn(begin, end, first_scored) per window; first_scored is the first
// absolute position whose token the window scores.
template <typename Fn>
void for_each_window(int64_t n, const PerplexityOptions &o, Fn fn) {
  int64_t prev_end = 0;
  for (int64_t begin = 0; begin < n; begin += o.stride) {
    const int64_t end = std::min(begin + o.context, n);
    if (end - begin < 2) break;
    const int64_t first = std::max(prev_end, begin + 1);
    if (first < end) fn(begin, end, first);
    prev_end = end;
    if (end == n) break;
  }
}

}  // namespace

int64_t tokens_to_score(int64_t n, const PerplexityOptions &o) {
  int64_t total = 0;
  for_each_window(n, o, [&](int64_t, int64_t end, int64_t first) { total += end - first; });
  return total;
}

double token_nll(const float *logits, int64_t vocab, int32_t target) {
  float mx = logits[0];
  for (int64_t i = 1; i < vocab; ++i) mx = std::max(mx, logits[i]);
  double sum = 0.0;
  for (int64_t i = 0; i < vocab; ++i) sum += std::exp(static_cast<double>(logits[i] - mx));
  return std::log(sum) - static_cast<double>(logits[target] - mx);
}

PerplexityResult perplexity(const LlamaModel &model, const std::vector<int32_t> &stream,
                            const PerplexityOptions &o) {
  if (o.context < 2 || o.stride < 1 || o.stride > o.context) {
    throw ToolError("perplexity: need context >= 2 and 1 <= stride <= context");
  }
  const auto t0 = std::chrono::steady_clock::now();
  const auto n = static_cast<int64_t>(stream.size());
  const int64_t total = tokens_to_score(n, o);
  if (total == 0) throw ToolError("perplexity: the evaluation text has fewer than 2 tokens");
  const Rope rope(model.config, std::min(o.context, n));
  const int64_t vocab = model.config.vocab_size;
  PerplexityResult r;
  double nll = 0.0;
  for_each_window(n, o, [&](int64_t begin, int64_t end, int64_t first) {
    if (o.interrupted != nullptr && o.interrupted->load()) throw ToolError("interrupted");
    std::vector<int32_t> ids(stream.begin() + begin, stream.begin() + end);
    SequenceBatch batch;
    batch.add(end - begin);
    const std::vector<float> logits = model_logits(model, rope, ids, batch);
    for (int64_t t = first; t < end; ++t) {
      // Token t is predicted by the logits at position t − 1.
      nll += token_nll(&logits[static_cast<size_t>((t - 1 - begin) * vocab)], vocab, stream[t]);
    }
    r.scored_tokens += end - first;
    ++r.windows;
    if (o.progress) o.progress(r.scored_tokens, total);
  });
  r.mean_nll = nll / static_cast<double>(r.scored_tokens);
  r.perplexity = std::exp(r.mean_nll);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace gptqtool
