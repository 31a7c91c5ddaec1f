// Text generation with a KV cache: every prompt is processed in one forward
// pass (its prefill), then one token per step is decoded for every running
// sequence together. Up to `batch` sequences run at once; a sequence that
// finishes (EOS, a stop its caller detects, its token budget, the context)
// leaves the batch at once and the next waiting prompt takes its cache slot,
// prefilled in the same forward pass as the others' next tokens.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "model/kv_cache.h"
#include "model/llama_model.h"
#include "pipeline/sampling.h"

namespace gptqtool {

struct GenerateOptions {
  int64_t max_new_tokens = 256;  // >= 1
  SamplingParams sampling;
  std::vector<int32_t> eos_ids;  // any of them ends a sequence (and is not output)
  int64_t batch = 1;             // sequences decoded together, >= 1
  int64_t context = 0;           // positions per sequence, prompt included; 0 = the model's
  KvDType kv_dtype = KvDType::F32;  // how the KV cache stores keys and values
};

enum class FinishReason { Length, Eos, Stop, Context };
const char *finish_reason_name(FinishReason reason);  // "length", "eos", "stop", "context"

// Called with each generated token (never an EOS) of prompt `index`, in
// order; returning true ends that sequence (a stop string, say).
using TokenSink = std::function<bool(int64_t index, int32_t token)>;
// Called once per prompt when its sequence ends.
using FinishSink = std::function<void(int64_t index, FinishReason reason)>;

// Checks the prompts against the options before any work: a prompt must be
// non-empty and leave room for at least one generated token in the context.
void validate_prompts(const LlamaModel &model, const std::vector<std::vector<int32_t>> &prompts,
                      const GenerateOptions &options);

// Generates for every prompt; returns each prompt's generated tokens.
std::vector<std::vector<int32_t>> generate_tokens(const LlamaModel &model,
                                                  const std::vector<std::vector<int32_t>> &prompts,
                                                  const GenerateOptions &options,
                                                  const TokenSink &on_token,
                                                  const FinishSink &on_finish);

}  // namespace gptqtool
