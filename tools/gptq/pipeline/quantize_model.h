// Whole-model GPTQ: the calibration tokens are run through the model block by
// block; inside a block the linear layers are quantized in true-sequential
// order (q/k/v, then o, then gate/up, then down), each group's Hessian built
// from inputs that already pass through the block's earlier quantized layers,
// and one Hessian shared by the layers that read the same input. The block's
// output, recomputed through all its quantized layers, is the next block's
// input. Embeddings, norms and lm_head stay as they are.
//
// In a mixture of experts the router (and Qwen2-MoE's shared_expert_gate)
// stays in full precision, and each expert's gate/up and down are a group
// of their own whose Hessian is built only from the tokens routed to that
// expert (a mean over those tokens, so that its scale and the loss reported
// do not follow the expert's share), unweighted by the routing weights (as GPTQModel does: GPTQ
// minimizes the error of the layer's own output over the inputs it sees;
// the routing weight scales that output afterwards, token by token). An
// expert routed fewer tokens than QuantizeOptions::expert_min_share of its
// fair share is rounded to nearest instead, and reported.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pipeline/calibration_checks.h"
#include "common/library_call.h"
#include "pipeline/quant_spec.h"

namespace gptqtool {

class ModelDir;

enum class QuantMethod { Gptq, Rtn };

constexpr double kDefaultExpertMinShare = 0.1;

struct QuantizeOptions {
  LayerQuantSpec base;
  std::vector<SpecOverride> overrides;
  QuantMethod method = QuantMethod::Gptq;
  // Also quantize lm_head (named "lm_head" for --override), from the final
  // norm's output. A tied lm_head is untied: the embeddings stay as they are.
  bool quantize_lm_head = false;
  // Experts routed fewer than this share of their fair share of the
  // calibration tokens (tokens · num_experts_per_tok / num_experts) are
  // quantized with round-to-nearest: a Hessian from a handful of tokens
  // fits those tokens, not the expert's inputs (bench/RESULTS.md, "Mixture
  // of experts"). An expert routed no token at all is always rounded.
  // 0 ..= 1.
  double expert_min_share = kDefaultExpertMinShare;
  int32_t num_threads = 0;                        // library threads; 0 = all cores
  const std::atomic<bool> *interrupted = nullptr;  // set by Ctrl-C
};

// What happened to one linear layer.
struct LayerResult {
  std::string name;  // "model.layers.0.self_attn.q_proj", or "lm_head"
  int64_t block = 0;  // -1 for lm_head
  int64_t out_features = 0, in_features = 0;
  LayerQuantSpec spec;
  std::shared_ptr<gptq_qtensor> qtensor;  // null when skipped
  gptq_quant_stats stats{};               // zeros when skipped
  double seconds = 0;                     // quantize call, wall clock
  int64_t hessian_samples = 0;
  // A mixture's expert layer: the expert's index, the calibration tokens
  // routed to it (-1 without calibration), and whether it was rounded to
  // nearest for having fewer than the run's minimum.
  int64_t expert = -1;
  int64_t routed_tokens = -1;
  bool under_calibrated = false;
};

struct QuantizeResult {
  std::vector<LayerResult> layers;  // in quantization order
  double forward_seconds = 0, quantize_seconds = 0, total_seconds = 0;
  int64_t calibration_sequences = 0, calibration_tokens = 0;
  // A mixture of experts under GPTQ: the fewest routed tokens an expert
  // needed to be quantized with GPTQ (from expert_min_share); 0 otherwise.
  int64_t expert_min_tokens = 0;
  double expert_min_share = 0;  // the option it came from
  // How the windows were cut, for the report: the --seed of random windows,
  // or none for evenly spaced ones. Set by the caller, which cut them.
  std::optional<uint64_t> calibration_seed;
  // Tokens, distinct tokens, vocabulary coverage and repetition of the
  // windows, for the report; set by the caller (calibration_checks.h).
  std::optional<CalibrationStats> calibration_stats;
};

struct QuantizeCallbacks {
  std::function<void(const LayerResult &)> layer_done;        // after each layer
  std::function<void(int64_t block, int64_t blocks)> block_started;
};

// Checks the settings that need no model: bits the checkpoint layout can
// hold (the run's and every override's), --static-groups only with
// act-order somewhere (it does nothing otherwise). Throws ToolError.
void validate_options(const QuantizeOptions &options);

// validate_options, then every layer's settings against its shape before any
// work starts (packing divisibility), and every override matching at least
// one layer, so a long run never fails at its last layer and no override is
// silently ignored. Throws ToolError.
void validate_plan(const ModelDir &dir, const QuantizeOptions &options);

// One line per layer width whose group size leaves a last, shorter group
// (e.g. 576 columns in groups of 128: 4 full groups and one of 64), naming
// the layers. Such checkpoints are valid and load in transformers and here,
// but several fast kernels refuse ragged groups and vLLM sizes the scales
// as width / group, so the tool warns before the run.
std::vector<std::string> ragged_group_warnings(const ModelDir &dir,
                                               const QuantizeOptions &options);

// GPTQ (or RTN) over a whole model. `calibration` holds token sequences of any
// lengths (no padding); ignored for RTN. Throws ToolError (a Ctrl-C included:
// "interrupted").
QuantizeResult quantize_model(const ModelDir &dir,
                              const std::vector<std::vector<int32_t>> &calibration,
                              const QuantizeOptions &options,
                              const QuantizeCallbacks &callbacks);

// Round-to-nearest of one weight matrix with the spec's groups: GPTQ with an
// identity Hessian, which feeds no error forward.
std::shared_ptr<gptq_qtensor> quantize_rtn(const std::vector<float> &weight, int64_t out,
                                           int64_t in, const LayerQuantSpec &spec,
                                           int32_t num_threads, gptq_quant_stats *stats);

// The library config for a layer spec.
gptq_config library_config(const LayerQuantSpec &spec, int32_t num_threads);

// Dequantized float32 weights [out, in] of a quantized tensor.
std::vector<float> dequantized(const gptq_qtensor *q);

}  // namespace gptqtool
