// Perplexity of a model on a token stream with a fixed context length and
// stride (the sliding-window evaluation commonly used for LLMs): each window
// of `context` tokens starts `stride` after the previous one, and only the
// tokens not already scored by an earlier window count, each predicted from
// everything before it in its window. Windows are run through the model
// several at a time (as separate sequences of one batch), and the logits of
// only the scored positions are formed, a few hundred rows at a time.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <vector>

#include "model/llama_model.h"

namespace gptqtool {

struct PerplexityResult {
  double perplexity = 0;
  double mean_nll = 0;      // natural log
  int64_t scored_tokens = 0;
  int64_t windows = 0;
  double seconds = 0;
};

struct PerplexityOptions {
  int64_t context = 512;
  int64_t stride = 512;  // <= context
  std::function<void(int64_t scored, int64_t total)> progress;
  const std::atomic<bool> *interrupted = nullptr;
};

// Tokens a run over `stream_length` tokens scores (for progress totals).
int64_t tokens_to_score(int64_t stream_length, const PerplexityOptions &options);

PerplexityResult perplexity(const LlamaModel &model, const std::vector<int32_t> &stream,
                            const PerplexityOptions &options);

// −log softmax(logits)[target], in double.
double token_nll(const float *logits, int64_t vocab, int32_t target);

}  // namespace gptqtool
