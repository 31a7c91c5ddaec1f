#include "pipeline/quantize_model.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <cstdio>
#include <utility>

#include "common/checked_size.h"
#include "model/llama_forward.h"
#include "model/llama_model.h"
#include "model/model_dir.h"

namespace gptqtool {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

int cancel_on_interrupt(int64_t, int64_t, void *user_data) {
  const auto *flag = static_cast<const std::atomic<bool> *>(user_data);
  return (flag != nullptr && flag->load()) ? 1 : 0;
}

void log_to_stderr(gptq_log_level level, const char *message, void *) {
  if (level >= GPTQ_LOG_WARN) std::fprintf(stderr, "libgptq: %s\n", message);
}

void throw_if_interrupted(const QuantizeOptions &o) {
  if (o.interrupted != nullptr && o.interrupted->load()) throw ToolError("interrupted");
}

}  // namespace

gptq_config library_config(const LayerQuantSpec &spec, int32_t num_threads) {
  gptq_config cfg;
  gptq_config_default(&cfg);
  cfg.bits = spec.bits;
  cfg.group_size = spec.group_size;
  cfg.sym = spec.sym ? 1 : 0;
  cfg.act_order = spec.act_order ? 1 : 0;
  cfg.act_group_aware = spec.act_group_aware ? 1 : 0;
  cfg.static_groups = spec.static_groups ? 1 : 0;
  cfg.damp_percent = static_cast<float>(spec.damp_percent);
  cfg.mse = spec.mse ? 1 : 0;
  cfg.precision = static_cast<gptq_precision>(spec.precision);
  cfg.grid = static_cast<gptq_grid>(spec.grid);
  cfg.backend = GPTQ_BACKEND_AUTO;  // --backend, through GPTQ_BACKEND
  cfg.num_threads = num_threads;
  cfg.log = log_to_stderr;
  cfg.log_level = GPTQ_LOG_WARN;
  return cfg;
}

std::vector<float> dequantized(const gptq_qtensor *q) {
  gptq_qtensor_info info;
  check_status(gptq_qtensor_get_info(q, &info), "gptq_qtensor_get_info");
  std::vector<float> w(checked_elements({info.out_features, info.in_features}, "weights"));
  check_status(gptq_qtensor_dequantize(q, w.data(), static_cast<int64_t>(w.size())),
               "gptq_qtensor_dequantize");
  return w;
}

std::shared_ptr<gptq_qtensor> quantize_rtn(const std::vector<float> &weight, int64_t out,
                                           int64_t in, const LayerQuantSpec &spec,
                                           int32_t num_threads, gptq_quant_stats *stats) {
  LayerQuantSpec rtn = spec;
  rtn.act_order = false;  // a constant diagonal gives no order anyway
  rtn.act_group_aware = false;
  const gptq_config cfg = library_config(rtn, num_threads);
  gptq_ctx *raw = nullptr;
  check_status(gptq_ctx_create(out, in, &cfg, &raw), "gptq_ctx_create");
  CtxPtr ctx(raw);
  std::vector<double> identity(checked_elements({in, in}, "identity Hessian"), 0.0);
  for (int64_t i = 0; i < in; ++i) identity[i * in + i] = 1.0;
  check_status(gptq_ctx_import_hessian(ctx.get(), identity.data(), in * in, 1),
               "gptq_ctx_import_hessian");
  gptq_qtensor *q = nullptr;
  check_status(gptq_quantize(ctx.get(), weight.data(), GPTQ_DTYPE_F32, out, in, &q, stats),
               "gptq_quantize (round-to-nearest)");
  return std::shared_ptr<gptq_qtensor>(q, QTensorDeleter());
}

void validate_options(const QuantizeOptions &options) {
  if (options.base.grid == GPTQ_GRID_GPTQ)
    check_storable_bits(options.base.bits, "--bits " + std::to_string(options.base.bits));
  validate_spec(options.base, "the run's settings");
  bool act_order_somewhere = options.base.act_order || options.base.act_group_aware;
  for (const SpecOverride &o : options.overrides) {
    // A GGUF grid's bits need no checkpoint layout.
    if (o.bits && !o.grid) check_storable_bits(*o.bits, "--override '" + o.text + "'");
    act_order_somewhere = act_order_somewhere || (o.act_order && *o.act_order) ||
                          (o.act_group_aware && *o.act_group_aware);
  }
  if (options.base.static_groups && !act_order_somewhere) {
    throw ToolError("--static-groups has no effect without an act-order: it fixes each group's "
                    "parameters before the columns are reordered, and in column order the "
                    "groups are taken one after another anyway. Add --act-order or "
                    "--act-group-aware (or act-order=1 in an --override) or drop "
                    "--static-groups");
  }
  if (!(options.expert_min_share >= 0 && options.expert_min_share <= 1)) {
    throw ToolError("--expert-min-share " + std::to_string(options.expert_min_share) +
                    " is outside 0 ..= 1 (a share of an expert's fair share of the tokens)");
  }
  if (options.method == QuantMethod::Rtn && options.base.static_groups) {
    throw ToolError("--static-groups has no effect with --method rtn (round-to-nearest has no "
                    "column order); drop it");
  }
}

void validate_plan(const ModelDir &dir, const QuantizeOptions &options) {
  validate_options(options);
  const LlamaConfig &c = dir.config();
  std::vector<bool> matched(options.overrides.size(), false);
  auto note_matches = [&](const std::string &name) {
    for (size_t k = 0; k < options.overrides.size(); ++k) {
      if (glob_match(options.overrides[k].pattern, name)) matched[k] = true;
    }
  };
  if (options.quantize_lm_head) {
    note_matches("lm_head");
    const LayerQuantSpec spec = spec_for(options.base, options.overrides, "lm_head");
    if (!spec.skip) {
      validate_spec(spec, "lm_head");
      gptq_checkpoint_sizes sz;
      check_status(gptq_checkpoint_sizes_for(c.vocab_size, c.hidden_size, spec.bits,
                                             spec.group_size, &sz),
                   "lm_head cannot be stored as a GPTQ checkpoint");
    }
  }
  for (int64_t b = 0; b < c.num_hidden_layers; ++b) {
    for (const LinearId id : block_linears(c)) {
      const std::string name = linear_name(c, b, id);
      note_matches(name);
      const LayerQuantSpec spec = spec_for(options.base, options.overrides, name);
      if (spec.skip) continue;
      validate_spec(spec, name);
      int64_t out = 0, in = 0;
      slot_shape(c, id, &out, &in);
      if (spec.grid != GPTQ_GRID_GPTQ) {
        int64_t bytes = 0;
        check_status(gptq_gguf_size(static_cast<gptq_grid>(spec.grid), out, in, &bytes),
                     name + " cannot be stored in GGUF blocks");
        continue;
      }
      gptq_checkpoint_sizes sz;
      check_status(gptq_checkpoint_sizes_for(out, in, spec.bits, spec.group_size, &sz),
                   name + " cannot be stored as a GPTQ checkpoint (skip it with --override '" +
                       name + ":skip')");
    }
  }
  for (size_t k = 0; k < options.overrides.size(); ++k) {
    if (matched[k]) continue;
    throw ToolError("--override '" + options.overrides[k].text + "': the pattern '" +
                    options.overrides[k].pattern + "' matches no layer (names look like " +
                    linear_name(c, 0, block_linears(c).front()) + " or " +
                    linear_name(c, 0, block_linears(c).back()) +
                    (options.quantize_lm_head ? ", and lm_head" : "; lm_head only with --quantize-lm-head") +
                    ")");
  }
}

std::vector<std::string> ragged_group_warnings(const ModelDir &dir,
                                               const QuantizeOptions &options) {
  const LlamaConfig &c = dir.config();
  // (width, group) -> each kind of layer it holds and in how many blocks.
  std::map<std::pair<int64_t, int32_t>, std::vector<std::pair<std::string, int64_t>>> ragged;
  auto consider = [&](const std::string &name, const std::string &kind, int64_t in) {
    const LayerQuantSpec spec = spec_for(options.base, options.overrides, name);
    if (spec.skip || spec.group_size <= 0 || in % spec.group_size == 0) return;
    auto &kinds = ragged[{in, spec.group_size}];
    auto it = std::find_if(kinds.begin(), kinds.end(),
                           [&](const std::pair<std::string, int64_t> &k) { return k.first == kind; });
    if (it == kinds.end()) {
      kinds.push_back({kind, 1});
    } else {
      ++it->second;
    }
  };
  for (int64_t b = 0; b < c.num_hidden_layers; ++b) {
    for (const LinearId id : block_linears(c)) {
      int64_t out = 0, in = 0;
      slot_shape(c, id, &out, &in);
      consider(linear_name(c, b, id), linear_kind(c, id), in);
    }
  }
  if (options.quantize_lm_head) consider("lm_head", "lm_head", c.hidden_size);
  std::vector<std::string> lines;
  for (const auto &entry : ragged) {
    const int64_t width = entry.first.first;
    const int32_t group = entry.first.second;
    std::string names;
    for (const auto &kind : entry.second) {
      names += (names.empty() ? "" : ", ") + kind.first;
      if (kind.first != "lm_head") {
        names += " of " + std::to_string(kind.second) + (kind.second == 1 ? " block" : " blocks");
      }
    }
    const std::string shape =
        width < group ? " input columns are fewer than the group size " + std::to_string(group) +
                            " (one group of " + std::to_string(width) + ")"
                      : " input columns do not divide into groups of " + std::to_string(group) +
                            ": " + std::to_string(width / group) + " full groups and one of " +
                            std::to_string(width % group);
    lines.push_back(std::to_string(width) + shape + " (" + names +
                    "). transformers and this tool load such checkpoints, but vLLM and several "
                    "fast kernels expect the width to be a multiple of the group size; a group "
                    "size that divides " + std::to_string(width) + " avoids that");
  }
  return lines;
}

namespace {

// Quantizes the layers of one true-sequential group of a block from their
// shared input x [tokens, in], replacing each by its dequantized weights.
class BlockQuantizer {
 public:
  BlockQuantizer(const LlamaConfig &c, const QuantizeOptions &o, const QuantizeCallbacks &cb,
                 QuantizeResult *r)
      : config_(c), options_(o), callbacks_(cb), result_(r) {}

  // The layers `ids` of a block from their shared input x [tokens, in]. An
  // expert's layers (expert >= 0) under GPTQ are rounded to nearest instead
  // when fewer tokens than result.expert_min_tokens were routed to it.
  void run(int64_t block, LlamaBlock *b, const std::vector<LinearId> &ids, int64_t expert,
           const float *x, int64_t tokens, int64_t samples) {
    std::vector<std::pair<std::string, Linear *>> layers;
    for (const LinearId id : ids) {
      layers.push_back({linear_name(config_, block, id), &block_linear(*b, id)});
    }
    const bool gptq = options_.method == QuantMethod::Gptq;
    const bool under = gptq && expert >= 0 && (tokens == 0 || tokens < result_->expert_min_tokens);
    const size_t first = result_->layers.size();
    run_layers(block, layers, x, tokens, samples, under);
    for (size_t i = first; i < result_->layers.size(); ++i) {
      LayerResult &lr = result_->layers[i];
      lr.expert = expert;
      if (expert >= 0 && gptq) lr.routed_tokens = tokens;
      lr.under_calibrated = under && !lr.spec.skip;
    }
  }

  // Quantizes layers that read the same input x [tokens, in] (one shared
  // Hessian), replacing each by its dequantized weights; with `rtn`, by
  // round-to-nearest whatever the method.
  void run_layers(int64_t block, const std::vector<std::pair<std::string, Linear *>> &layers,
                  const float *x, int64_t tokens, int64_t samples, bool rtn = false) {
    const bool gptq = options_.method == QuantMethod::Gptq && !rtn;
    // The Hessian is accumulated once, in a context of default settings, and
    // merged into each layer's own context (a plain copy into an empty one).
    CtxPtr shared;
    const auto t0 = Clock::now();
    if (gptq) {
      const Linear &first = *layers.front().second;
      // On GPTQ's own grid: a GGUF type's grid may not fit this input width
      // (a K-quant layer that falls back to a 32-column type); the Hessian
      // does not depend on the grid. GGUF grids are solved on the CPU, so
      // their Hessian is kept there too.
      LayerQuantSpec accumulate = options_.base;
      accumulate.grid = GPTQ_GRID_GPTQ;
      gptq_config cfg = library_config(accumulate, options_.num_threads);
      if (options_.base.grid != GPTQ_GRID_GPTQ) cfg.backend = GPTQ_BACKEND_CPU;
      gptq_ctx *raw = nullptr;
      check_status(gptq_ctx_create(first.out_features(), first.in_features(), &cfg, &raw),
                   "gptq_ctx_create");
      shared.reset(raw);
      check_status(gptq_add_batch(shared.get(), x, GPTQ_DTYPE_F32, tokens,
                                  first.in_features(), samples),
                   "gptq_add_batch");
    }
    result_->forward_seconds += seconds_since(t0);
    for (const auto &named : layers) {
      throw_if_interrupted(options_);
      Linear &layer = *named.second;
      LayerResult lr;
      lr.name = named.first;
      lr.block = block;
      lr.out_features = layer.out_features();
      lr.in_features = layer.in_features();
      lr.spec = spec_for(options_.base, options_.overrides, lr.name);
      lr.stats.struct_size = sizeof(gptq_quant_stats);
      if (!lr.spec.skip) {
        const auto tq = Clock::now();
        std::vector<float> widened;  // for a 16-bit lm_head
        const std::vector<float> &weight = layer.weight_f32(&widened);
        if (!gptq) {
          lr.qtensor = quantize_rtn(weight, lr.out_features, lr.in_features, lr.spec,
                                    options_.num_threads, &lr.stats);
        } else {
          gptq_config cfg = library_config(lr.spec, options_.num_threads);
          cfg.progress = cancel_on_interrupt;
          cfg.progress_user_data = const_cast<std::atomic<bool> *>(options_.interrupted);
          gptq_ctx *raw = nullptr;
          check_status(gptq_ctx_create(lr.out_features, lr.in_features, &cfg, &raw),
                       lr.name + ": gptq_ctx_create");
          CtxPtr ctx(raw);
          check_status(gptq_ctx_merge(ctx.get(), shared.get()), lr.name + ": gptq_ctx_merge");
          lr.hessian_samples = gptq_ctx_samples(ctx.get());
          gptq_qtensor *q = nullptr;
          const gptq_status st = gptq_quantize(ctx.get(), weight.data(), GPTQ_DTYPE_F32,
                                               lr.out_features, lr.in_features, &q, &lr.stats);
          if (st == GPTQ_ERR_CANCELLED) throw ToolError("interrupted");
          check_status(st, lr.name + ": gptq_quantize");
          lr.qtensor.reset(q, QTensorDeleter());
        }
        lr.seconds = seconds_since(tq);
        result_->quantize_seconds += lr.seconds;
        // From here on the model computes with the quantized layer.
        layer = Linear(lr.out_features, lr.in_features, dequantized(lr.qtensor.get()),
                       layer.bias());
      }
      result_->layers.push_back(std::move(lr));
      pending_.push_back(result_->layers.size() - 1);
    }
  }

  // Reports the layers done since the last call (after run has filled in
  // their expert fields).
  void report() {
    for (const size_t i : pending_) {
      if (callbacks_.layer_done) callbacks_.layer_done(result_->layers[i]);
    }
    pending_.clear();
  }

 private:
  const LlamaConfig &config_;
  const QuantizeOptions &options_;
  const QuantizeCallbacks &callbacks_;
  QuantizeResult *result_;
  std::vector<size_t> pending_;
};

}  // namespace

QuantizeResult quantize_model(const ModelDir &dir,
                              const std::vector<std::vector<int32_t>> &calibration,
                              const QuantizeOptions &options,
                              const QuantizeCallbacks &callbacks) {
  const auto t_start = Clock::now();
  validate_plan(dir, options);
  const LlamaConfig &c = dir.config();
  const bool gptq = options.method == QuantMethod::Gptq;
  QuantizeResult result;

  SequenceBatch batch;
  std::vector<int32_t> ids;
  int64_t longest = 1;
  if (gptq) {
    if (calibration.empty()) throw ToolError("GPTQ needs calibration data; none was given");
    for (const auto &seq : calibration) {
      if (seq.empty()) continue;
      batch.add(static_cast<int64_t>(seq.size()));
      ids.insert(ids.end(), seq.begin(), seq.end());
      longest = std::max<int64_t>(longest, static_cast<int64_t>(seq.size()));
    }
    if (batch.tokens() == 0) throw ToolError("the calibration sequences are all empty");
  }
  result.calibration_sequences = batch.sequences();
  result.calibration_tokens = batch.tokens();
  const int64_t tokens = batch.tokens();
  const int64_t samples = batch.sequences();

  LlamaModel outer;
  std::vector<float> h;
  std::unique_ptr<Rope> rope;
  if (gptq) {
    const auto t0 = Clock::now();
    load_dense_outer(dir, &outer);
    h = embed_tokens(outer, ids);
    outer = LlamaModel();  // only the embeddings were needed here
    rope = std::make_unique<Rope>(c, longest);
    result.forward_seconds += seconds_since(t0);
  }
  if (gptq && c.moe()) {
    // An expert's fair share: the tokens it would get if the router spread
    // them evenly.
    const double fair = static_cast<double>(tokens) * static_cast<double>(c.num_experts_per_tok) /
                        static_cast<double>(c.num_experts);
    result.expert_min_tokens = static_cast<int64_t>(std::ceil(options.expert_min_share * fair));
    result.expert_min_share = options.expert_min_share;
  }
  std::vector<float> x;
  BlockQuantizer quantizer(c, options, callbacks, &result);
  for (int64_t b = 0; b < c.num_hidden_layers; ++b) {
    throw_if_interrupted(options);
    if (callbacks.block_started) callbacks.block_started(b, c.num_hidden_layers);
    LlamaBlock block = load_dense_block(dir, b);
    if (!gptq) {  // round-to-nearest needs no activations
      for (const LinearId id : block_linears(c)) {
        quantizer.run(b, &block, {id}, id.expert, nullptr, 0, 0);
        quantizer.report();
      }
      continue;
    }
    // The block's own forward pass, each group of layers quantized at its
    // input and replaced before the block goes on: the next group's input,
    // and the block's output (the next block's input), come through the
    // quantized layers. Time in the taps is not forward time, except the
    // Hessians' (which run_layers counts as such).
    double tap_seconds = 0;
    const auto t0 = Clock::now();
    block_forward(c, *rope, &block, batch, h.data(),
                  [&](LinearGroup group, int64_t expert, const float *in, int64_t rows,
                      LlamaBlock *tapped) {
                    const auto tt = Clock::now();
                    // An expert's Hessian is a mean over its own tokens, so that
                    // its scale (and the loss reported) does not follow how many
                    // tokens the router sent it; the codes do not depend on it.
                    quantizer.run(b, tapped, group_linears(group, c, expert), expert, in, rows,
                                  expert >= 0 ? rows : samples);
                    quantizer.report();
                    tap_seconds += seconds_since(tt);
                  });
    result.forward_seconds += seconds_since(t0) - tap_seconds;
  }
  if (options.quantize_lm_head) {
    throw_if_interrupted(options);
    LlamaModel head;
    load_dense_outer(dir, &head);
    if (gptq) {
      const auto t0 = Clock::now();
      x.resize(checked_elements({tokens, c.hidden_size}, "hidden states"));
      rms_norm(h.data(), head.final_norm, tokens, c.hidden_size, c.rms_norm_eps, x.data());
      result.forward_seconds += seconds_since(t0);
    }
    quantizer.run_layers(-1, {{"lm_head", &head.lm_head}}, gptq ? x.data() : nullptr, tokens,
                         samples);
    quantizer.report();
  }
  result.total_seconds = seconds_since(t_start);
  return result;
}

}  // namespace gptqtool
