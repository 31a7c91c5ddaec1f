// Choosing the next token from a row of logits, in the order transformers'
// generate() applies its processors: the repetition penalty, then the
// temperature, top-k and top-p; temperature 0 is greedy (the first token of
// the largest logit, after the penalty).
//
// Random draws come from a 64-bit Mersenne Twister seeded per sequence and
// turned into doubles by hand (53 bits), so a seed gives the same tokens on
// every platform and a sequence's tokens do not depend on which other
// sequences run beside it.
#pragma once

#include <cstdint>
#include <random>
#include <utility>
#include <vector>

namespace gptqtool {

struct SamplingParams {
  double temperature = 0.0;         // 0 = greedy; must be >= 0
  double top_p = 1.0;               // (0, 1]; 1 keeps every token
  int64_t top_k = 0;                // 0 keeps every token
  double repetition_penalty = 1.0;  // > 0; 1 = none
  uint64_t seed = 0;
};

// Checks the ranges above; throws ToolError naming the option.
void validate_sampling(const SamplingParams &params);

// transformers' repetition penalty: each distinct token of `context` has its
// logit divided by the penalty when positive, multiplied when negative.
void apply_repetition_penalty(float *logits, int64_t vocab, const std::vector<int32_t> &context,
                              double penalty);

// The tokens sampling may pick from (temperature > 0), with their
// probabilities renormalized over the kept set, most probable first (ties
// by id): softmax(logits / T), top-k (ties with the k-th logit kept, as
// transformers keeps them), then top-p (the smallest most-probable set
// whose probability reaches p; at least one token).
std::vector<std::pair<int32_t, double>> candidate_tokens(const float *logits, int64_t vocab,
                                                          const SamplingParams &params);

// Index of the first largest value (0 when vocab <= 1). NaNs are passed
// over, except one at index 0, which is returned.
int32_t argmax(const float *logits, int64_t vocab);

class Sampler {
 public:
  // `stream` separates the random draws of several sequences under one seed.
  Sampler(const SamplingParams &params, uint64_t stream);
  // The next token; `logits` is changed (penalty applied). `context` holds
  // the sequence so far (prompt and generated tokens).
  int32_t next(float *logits, int64_t vocab, const std::vector<int32_t> &context);

 private:
  SamplingParams params_;
  std::mt19937_64 rng_;
};

}  // namespace gptqtool
