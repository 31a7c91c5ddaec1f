#include "pipeline/perplexity.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <utility>

#include "common/checked_size.h"
#include "model/llama_forward.h"
#include "model/parallel.h"
#include "model/vector_math.h"

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
  const float mx = max_of(logits, vocab);
  return std::log(sum_exp(logits, vocab, mx)) - static_cast<double>(logits[target] - mx);
}

namespace {

// Tokens run through the model per forward: several windows together give
// the linear layers enough rows to run near peak speed.
constexpr int64_t kBatchTokens = 2048;
// Rows whose logits exist at once ([rows, vocab] floats), so the logits of
// a whole batch are never materialized.
constexpr int64_t kLogitRows = 256;

struct Window {
  int64_t begin, end, first;
};

// Σ of the NLLs of the scored tokens of `windows`, run as one batch.
double batch_nll(const LlamaModel &model, const Rope &rope, const std::vector<int32_t> &stream,
                 const std::vector<Window> &windows, std::vector<float> *logits) {
  std::vector<int32_t> ids;
  SequenceBatch batch;
  // (row of the batch whose logits predict it, target token) per scored token
  std::vector<std::pair<int64_t, int32_t>> scored;
  for (const Window &w : windows) {
    for (int64_t t = w.first; t < w.end; ++t) {
      // Token t is predicted by the logits at position t − 1.
      scored.emplace_back(batch.tokens() + t - 1 - w.begin, stream[t]);
    }
    ids.insert(ids.end(), stream.begin() + w.begin, stream.begin() + w.end);
    batch.add(w.end - w.begin);
  }
  const std::vector<float> x = final_hidden(model, rope, ids, batch);
  const int64_t hidden = model.config.hidden_size, vocab = model.config.vocab_size;
  const auto n = static_cast<int64_t>(scored.size());
  std::vector<float> rows;
  std::vector<double> nll(static_cast<size_t>(n));
  for (int64_t r0 = 0; r0 < n; r0 += kLogitRows) {
    const int64_t count = std::min(kLogitRows, n - r0);
    rows.resize(checked_elements({count, hidden}, "hidden states"));
    for (int64_t i = 0; i < count; ++i) {
      std::copy_n(&x[static_cast<size_t>(scored[r0 + i].first * hidden)], hidden,
                  &rows[static_cast<size_t>(i * hidden)]);
    }
    logits->resize(checked_elements({count, vocab}, "logits"));
    project_logits(model, rows.data(), count, logits->data());
    parallel_for(count, [&](int64_t i, int) {
      nll[r0 + i] = token_nll(&(*logits)[static_cast<size_t>(i * vocab)], vocab,
                              scored[r0 + i].second);
    });
  }
  double sum = 0.0;  // in token order, whatever the threads did
  for (double v : nll) sum += v;
  return sum;
}

}  // namespace

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
  std::vector<Window> windows;
  for_each_window(n, o, [&](int64_t begin, int64_t end, int64_t first) {
    windows.push_back({begin, end, first});
  });
  PerplexityResult r;
  double nll = 0.0;
  std::vector<float> logits;
  for (size_t w0 = 0; w0 < windows.size();) {
    if (o.interrupted != nullptr && o.interrupted->load()) throw ToolError("interrupted");
    std::vector<Window> batch{windows[w0]};
    int64_t tokens = windows[w0].end - windows[w0].begin;
    for (size_t w = w0 + 1; w < windows.size(); ++w) {
      tokens += windows[w].end - windows[w].begin;
      if (tokens > kBatchTokens) break;
      batch.push_back(windows[w]);
    }
    nll += batch_nll(model, rope, stream, batch, &logits);
    for (const Window &w : batch) {
      r.scored_tokens += w.end - w.first;
      ++r.windows;
    }
    if (o.progress) o.progress(r.scored_tokens, total);
    w0 += batch.size();
  }
  r.mean_nll = nll / static_cast<double>(r.scored_tokens);
  r.perplexity = std::exp(r.mean_nll);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace gptqtool
