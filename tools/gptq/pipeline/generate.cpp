#include "pipeline/generate.h"

#include <algorithm>
#include <deque>
#include <memory>
#include <optional>
#include <string>

#include "common/interrupt.h"
#include "common/tool_error.h"
#include "model/kv_cache.h"

namespace gptqtool {

const char *finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::Length: return "length";
    case FinishReason::Eos: return "eos";
    case FinishReason::Stop: return "stop";
    case FinishReason::Context: return "context";
  }
  return "?";
}

namespace {

int64_t context_of(const LlamaModel &model, const GenerateOptions &o) {
  const int64_t max = model.config.max_position_embeddings;
  return o.context > 0 ? std::min(o.context, max) : max;
}

// A running sequence.
struct Running {
  int64_t index;  // of its prompt
  int64_t slot;   // in the cache
  std::vector<int32_t> context;  // prompt and generated tokens
  std::vector<int32_t> feed;     // tokens the next step runs
  int64_t generated = 0;
  std::unique_ptr<Sampler> sampler;
};

}  // namespace

void validate_prompts(const LlamaModel &model, const std::vector<std::vector<int32_t>> &prompts,
                      const GenerateOptions &o) {
  if (o.max_new_tokens < 1) throw ToolError("--max-new-tokens must be at least 1");
  if (o.batch < 1) throw ToolError("--batch must be at least 1");
  validate_sampling(o.sampling);
  if (prompts.empty()) throw ToolError("no prompt to generate from");
  const int64_t context = context_of(model, o);
  for (size_t i = 0; i < prompts.size(); ++i) {
    const std::string which = prompts.size() > 1 ? "prompt " + std::to_string(i + 1) : "the prompt";
    if (prompts[i].empty()) throw ToolError(which + " is empty (no tokens)");
    if (static_cast<int64_t>(prompts[i].size()) >= context) {
      throw ToolError(which + " has " + std::to_string(prompts[i].size()) +
                      " tokens, which leaves no room in the model's context of " +
                      std::to_string(context) + " positions");
    }
    for (int32_t id : prompts[i]) {
      if (id < 0 || id >= model.config.vocab_size) {
        throw ToolError(which + " holds token id " + std::to_string(id) +
                        ", outside the vocabulary of " + std::to_string(model.config.vocab_size));
      }
    }
  }
}

std::vector<std::vector<int32_t>> generate_tokens(const LlamaModel &model,
                                                  const std::vector<std::vector<int32_t>> &prompts,
                                                  const GenerateOptions &o,
                                                  const TokenSink &on_token,
                                                  const FinishSink &on_finish) {
  validate_prompts(model, prompts, o);
  const int64_t context = context_of(model, o);
  int64_t longest = 0;
  for (const auto &p : prompts) longest = std::max<int64_t>(longest, static_cast<int64_t>(p.size()));
  // Room for the longest prompt and its budget; no sequence needs more.
  const int64_t capacity = std::min(context, longest + std::min(o.max_new_tokens, context));
  const int64_t slots = std::min<int64_t>(o.batch, static_cast<int64_t>(prompts.size()));
  KvCache cache(model.config, slots, capacity, o.kv_dtype);
  const Rope rope(model.config, capacity);
  const int64_t vocab = model.config.vocab_size;

  std::vector<std::vector<int32_t>> results(prompts.size());
  std::deque<int64_t> waiting;
  for (size_t i = 0; i < prompts.size(); ++i) waiting.push_back(static_cast<int64_t>(i));
  std::vector<int64_t> free_slots;
  for (int64_t s = slots - 1; s >= 0; --s) free_slots.push_back(s);
  std::vector<Running> running;

  std::vector<float> logits;  // one step's, kept from step to step
  while (!running.empty() || !waiting.empty()) {
    throw_if_interrupted();
    while (!free_slots.empty() && !waiting.empty()) {
      Running r;
      r.index = waiting.front();
      waiting.pop_front();
      r.slot = free_slots.back();
      free_slots.pop_back();
      cache.reset(r.slot);
      r.context = prompts[static_cast<size_t>(r.index)];
      r.feed = r.context;
      r.sampler = std::make_unique<Sampler>(o.sampling, static_cast<uint64_t>(r.index));
      running.push_back(std::move(r));
    }
    CacheStep step;
    std::vector<int32_t> ids;
    for (const Running &r : running) {
      step.slots.push_back(r.slot);
      step.batch.add(static_cast<int64_t>(r.feed.size()));
      ids.insert(ids.end(), r.feed.begin(), r.feed.end());
    }
    cached_forward(model, rope, &cache, ids, step, LogitRows::Last, &logits);
    std::vector<Running> still;
    for (size_t s = 0; s < running.size(); ++s) {
      Running &r = running[s];
      const int32_t token = r.sampler->next(&logits[s * static_cast<size_t>(vocab)], vocab, r.context);
      std::optional<FinishReason> done;
      if (std::find(o.eos_ids.begin(), o.eos_ids.end(), token) != o.eos_ids.end()) {
        done = FinishReason::Eos;
      } else {
        r.context.push_back(token);
        results[static_cast<size_t>(r.index)].push_back(token);
        ++r.generated;
        if (on_token && on_token(r.index, token)) {
          done = FinishReason::Stop;
        } else if (r.generated >= o.max_new_tokens) {
          done = FinishReason::Length;
        } else if (static_cast<int64_t>(r.context.size()) >= context) {
          done = FinishReason::Context;
        }
      }
      if (done) {
        if (on_finish) on_finish(r.index, *done);
        free_slots.push_back(r.slot);
      } else {
        r.feed.assign(1, token);
        still.push_back(std::move(r));
      }
    }
    running.swap(still);
  }
  return results;
}

}  // namespace gptqtool
