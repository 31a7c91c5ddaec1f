#include "formats/checkpoint_writer.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <nlohmann/json.hpp>

#include "common/interrupt.h"
#include "formats/file_util.h"
#include "formats/float_formats.h"
#include "formats/output_guard.h"
#include "formats/safetensors.h"
#include "model/llama_model.h"
#include "model/model_dir.h"

namespace gptqtool {

using nlohmann::json;
namespace fs = std::filesystem;

const char *const kTokenizerFiles[] = {
    "tokenizer.json",     "tokenizer_config.json",  "special_tokens_map.json",
    "tokenizer.model",    "vocab.json",             "merges.txt",
    "added_tokens.json",  "generation_config.json", "chat_template.jinja",
    nullptr};

namespace {

// desc_act tells a loader that g_idx is not the trivial j / group_size (full
// act-order), and several loaders (vLLM's fast kernels among them) refuse
// it. So it is written from the g_idx a layer actually has, not from the
// option that made it: static groups and group-aware act-order keep g_idx
// trivial, and so does act-order with one group.
bool g_idx_permuted(const LayerResult &l) {
  gptq_qtensor_info info;
  check_status(gptq_qtensor_get_info(l.qtensor.get(), &info), l.name);
  return info.act_order != 0;
}

json layer_fields(const LayerResult &l) {
  return json{{"bits", l.spec.bits}, {"group_size", l.spec.group_size}, {"sym", l.spec.sym},
              {"desc_act", g_idx_permuted(l)}};
}

// The run's desc_act: what most quantized layers have (the others get a
// "dynamic" rule), false when none is quantized.
bool run_desc_act(const QuantizeResult &r) {
  int64_t permuted = 0, trivial = 0;
  for (const LayerResult &l : r.layers) {
    if (l.spec.skip || !l.qtensor) continue;
    (g_idx_permuted(l) ? permuted : trivial) += 1;
  }
  return permuted > trivial;
}

std::string exact_regex(const std::string &name) { return glob_to_regex(name); }

// A tensor or layer name as written: the model's own, or with
// CheckpointOptions::gptqmodel_expert_names Mixtral's block_sparse_moe
// names as GPTQModel 7 has them (experts.E.w1 -> mlp.experts.E.gate_proj,
// w3 -> up_proj, w2 -> down_proj; block_sparse_moe.gate -> mlp.gate).
using NameMap = std::function<std::string(const std::string &)>;

std::string gptqmodel_expert_name(const std::string &name) {
  static const std::string moe = ".block_sparse_moe.";
  const size_t at = name.find(moe);
  if (at == std::string::npos) return name;
  std::string out = name.substr(0, at) + ".mlp." + name.substr(at + moe.size());
  const size_t experts = out.find(".mlp.experts.");
  if (experts == std::string::npos) return out;
  const size_t dot = out.find('.', experts + 13);  // after the expert's index
  if (dot == std::string::npos) return out;
  for (const auto &[from, to] : {std::pair<const char *, const char *>{"w1", "gate_proj"},
                                 {"w3", "up_proj"},
                                 {"w2", "down_proj"}}) {
    const size_t end = dot + 3;
    if (out.compare(dot + 1, 2, from) == 0 && (end == out.size() || out[end] == '.')) {
      return out.substr(0, dot + 1) + to + out.substr(end);
    }
  }
  return out;
}

bool any_asymmetric(const QuantizeResult &r) {
  for (const LayerResult &l : r.layers) {
    if (!l.spec.skip && !l.spec.sym) return true;
  }
  return false;
}

// gptq_precision as --precision spells it.
const char *precision_name(int32_t precision) {
  return precision == GPTQ_PRECISION_F64 ? "f64" : "f32";
}

json quantization_config(const LlamaConfig &c, const QuantizeResult &r, const QuantizeOptions &o,
                         gptq_checkpoint_format format, const std::string &tool_version,
                         const NameMap &written) {
  json q;
  q["quant_method"] = "gptq";
  q["bits"] = o.base.bits;
  q["group_size"] = o.base.group_size;
  const bool desc_act = run_desc_act(r);
  q["desc_act"] = desc_act;
  q["sym"] = o.base.sym;
  q["static_groups"] = o.base.static_groups;
  q["damp_percent"] = o.base.damp_percent;
  q["true_sequential"] = true;
  q["lm_head"] = o.quantize_lm_head;
  q["checkpoint_format"] = format == GPTQ_FORMAT_V1 ? "gptq" : "gptq_v2";
  // Layers whose settings differ from the run's: one exact rule each (GPTQModel's
  // "dynamic" map; "-:" leaves a layer unquantized), so no rule order matters.
  const json run_fields{{"bits", o.base.bits}, {"group_size", o.base.group_size},
                        {"sym", o.base.sym}, {"desc_act", desc_act}};
  json dynamic = json::object();
  for (const LayerResult &l : r.layers) {
    if (l.spec.skip) {
      dynamic["-:" + exact_regex(written(l.name))] = json::object();
    } else if (layer_fields(l) != run_fields) {
      dynamic["+:" + exact_regex(written(l.name))] = layer_fields(l);
    }
  }
  // A mixture's router and Qwen2-MoE's shared_expert_gate are linear layers
  // in some loaders' eyes (transformers 4's Mixtral router is an nn.Linear,
  // Qwen2-MoE's shared_expert_gate is one in every version) but are never
  // quantized: say so, or a loader converting every linear layer of a block
  // would look for their qweight.
  for (int64_t b = 0; c.moe() && b < c.num_hidden_layers; ++b) {
    dynamic["-:" + exact_regex(written(router_name(c, b)))] = json::object();
    if (c.shared_expert_intermediate_size > 0) {
      dynamic["-:" + exact_regex(shared_expert_gate_name(b))] = json::object();
    }
  }
  if (!dynamic.empty()) q["dynamic"] = dynamic;
  q["meta"] = json{{"quantizer", json::array({"libgptq:" + tool_version})},
                   {"method", o.method == QuantMethod::Gptq ? "gptq" : "rtn"},
                   {"act_order", o.base.act_order},
                   {"act_group_aware", o.base.act_group_aware},
                   {"mse", o.base.mse},
                   {"precision", precision_name(o.base.precision)}};
  return q;
}

std::vector<uint8_t> bytes_of(const void *data, size_t size) {
  const auto *p = static_cast<const uint8_t *>(data);
  return std::vector<uint8_t>(p, p + size);
}

// Removes the temporary directory unless the write completed.
class TempDirGuard {
 public:
  explicit TempDirGuard(std::string path) : path_(std::move(path)) {}
  ~TempDirGuard() {
    if (!path_.empty()) remove_tree_quietly(path_);
  }
  void release() { path_.clear(); }

 private:
  std::string path_;
};

const char *torch_dtype_name(TensorDType d) {
  switch (d) {
    case TensorDType::F16: return "float16";
    case TensorDType::BF16: return "bfloat16";
    default: return "float32";
  }
}

}  // namespace

TensorDType unquantized_dtype(const ModelDir &source, CheckpointOptions::DType choice) {
  switch (choice) {
    case CheckpointOptions::DType::F16: return TensorDType::F16;
    case CheckpointOptions::DType::BF16: return TensorDType::BF16;
    case CheckpointOptions::DType::F32: return TensorDType::F32;
    case CheckpointOptions::DType::Auto: break;
  }
  const std::string &declared = source.config().torch_dtype;
  const bool bf16 = declared == "bfloat16" ||
                    (declared.empty() && source.has("model.embed_tokens.weight") &&
                     source.info("model.embed_tokens.weight").dtype == TensorDType::BF16);
  return bf16 ? TensorDType::BF16 : TensorDType::F16;
}

void check_unquantized_tensors_fit(const ModelDir &source, TensorDType dtype) {
  auto ends_with = [](const std::string &s, const std::string &tail) {
    return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
  };
  for (const std::string &name : source.tensor_names()) {
    const TensorInfo &t = source.info(name);
    const bool is_float = t.dtype == TensorDType::F32 || t.dtype == TensorDType::F16 ||
                          t.dtype == TensorDType::BF16 || t.dtype == TensorDType::F64;
    if (!is_float || t.dtype == dtype) continue;
    if (ends_with(name, "_proj.weight") || name == "lm_head.weight") continue;
    throw_if_interrupted();
    convert_float_tensor(source.file_of(name), t, dtype);  // throws if it does not fit
  }
}

std::string quantize_report_json(const QuantizeResult &r, const std::string &source_dir,
                                 const NameMap &written) {
  json layers = json::array();
  std::map<const LayerResult *, double> outliers;
  for (const LossOutlier &o : loss_outliers(r.layers, kLossOutlierFactor)) {
    outliers[&r.layers[o.layer]] = o.ratio;
  }
  for (const LayerResult &l : r.layers) {
    json j{{"name", written(l.name)},
           {"block", l.block},
           {"shape", {l.out_features, l.in_features}},
           {"skipped", l.spec.skip}};
    if (!l.spec.skip) {
      j["bits"] = l.spec.bits;
      j["group_size"] = l.spec.group_size;
      j["sym"] = l.spec.sym;
      j["act_order"] = l.spec.act_order;
      j["act_group_aware"] = l.spec.act_group_aware;
      j["mse"] = l.spec.mse;
      j["precision"] = precision_name(l.spec.precision);
      j["desc_act"] = l.qtensor ? g_idx_permuted(l) : false;
      j["loss"] = l.stats.loss;
      j["damp_percent_used"] = l.stats.damp_percent_used;
      j["damp_retries"] = l.stats.damp_retries;
      j["fell_back_to_rtn"] = l.stats.fell_back_to_rtn != 0;
      j["dead_columns"] = l.stats.dead_columns;
      j["hessian_samples"] = l.hessian_samples;
      if (l.expert >= 0) {
        j["expert"] = l.expert;
        j["routed_tokens"] = l.routed_tokens >= 0 ? json(l.routed_tokens) : json(nullptr);
        j["under_calibrated"] = l.under_calibrated;
      }
      j["seconds"] = l.seconds;
      // The loss over the median of the same projection in the other
      // blocks, where it is an outlier (kLossOutlierFactor), else null.
      const auto o = outliers.find(&l);
      j["loss_outlier_ratio"] = o != outliers.end() ? json(o->second) : json(nullptr);
    }
    layers.push_back(j);
  }
  json report{{"source", source_dir},
              {"calibration", {{"sequences", r.calibration_sequences},
                               {"tokens", r.calibration_tokens},
                               {"windows", r.calibration_seed ? "random" : "evenly spaced"},
                               {"seed", r.calibration_seed ? json(*r.calibration_seed)
                                                           : json(nullptr)}}},
              {"seconds", {{"total", r.total_seconds},
                           {"forward_and_hessians", r.forward_seconds},
                           {"quantize", r.quantize_seconds}}},
              {"layers", layers}};
  // A mixture under GPTQ: the experts rounded to nearest for want of
  // tokens, each once (its gate, up and down share the decision).
  if (r.expert_min_tokens > 0) {
    json under = json::array();
    std::set<std::pair<int64_t, int64_t>> seen;
    for (const LayerResult &l : r.layers) {
      if (!l.under_calibrated || !seen.insert({l.block, l.expert}).second) continue;
      under.push_back({{"block", l.block}, {"expert", l.expert}, {"routed_tokens", l.routed_tokens}});
    }
    report["experts"] = {{"min_share", r.expert_min_share},
                         {"min_tokens", r.expert_min_tokens},
                         {"policy", "an expert routed fewer than min_tokens calibration tokens "
                                    "(min_share of tokens x num_experts_per_tok / num_experts) is "
                                    "rounded to nearest"},
                         {"under_calibrated", under}};
  }
  if (r.calibration_stats) {
    const CalibrationStats &s = *r.calibration_stats;
    report["calibration"]["unique_tokens"] = s.unique_tokens;
    report["calibration"]["vocab_coverage"] = s.vocab_coverage;
    report["calibration"]["repetition_rate"] = s.repetition_rate;
  }
  return report.dump(2) + "\n";
}

void write_gptq_checkpoint(const ModelDir &source, const QuantizeResult &result,
                           const QuantizeOptions &quantize_options,
                           const CheckpointOptions &options, const std::string &out_dir) {
  gptq_checkpoint_format format = GPTQ_FORMAT_V1;
  if (options.format == CheckpointOptions::Format::V2 ||
      (options.format == CheckpointOptions::Format::Auto && any_asymmetric(result))) {
    format = GPTQ_FORMAT_V2;
  }
  const fs::path out = fs::path(out_dir).lexically_normal();
  std::vector<std::string> inputs = options.inputs;
  inputs.push_back(source.path());
  check_apart_from_inputs("output", out.string(), inputs);
  check_checkpoint_output(out.string(), options.overwrite);
  auto check_interrupt = [&] {
    if ((options.interrupted != nullptr && options.interrupted->load()) ||
        interrupt_requested()) {
      throw ToolError("interrupted while writing the checkpoint; nothing was written");
    }
  };

  // The weights, assembled in memory first so an export error (say V1 with
  // a zero of 0) stops the run before any file exists, and cut into shards
  // as they come, in order (a new shard starts when the next tensor would
  // take the current one past the limit).
  if (options.max_shard_bytes == 0) throw ToolError("the maximum shard size must be at least 1 byte");
  std::vector<SafetensorsWriter> shards(1);
  const NameMap written = options.gptqmodel_expert_names && source.config().mixtral_names
                              ? NameMap(gptqmodel_expert_name)
                              : NameMap([](const std::string &name) { return name; });
  auto add_tensor = [&](const std::string &name, TensorDType dtype, std::vector<int64_t> shape,
                        std::vector<uint8_t> bytes) {
    if (shards.back().size() > 0 &&
        shards.back().data_bytes() + bytes.size() > options.max_shard_bytes) {
      shards.emplace_back();
    }
    shards.back().add(written(name), dtype, std::move(shape), std::move(bytes));
  };
  std::map<std::string, const LayerResult *> quantized;
  for (const LayerResult &l : result.layers) {
    if (!l.spec.skip && l.qtensor) quantized[l.name + ".weight"] = &l;
  }
  std::vector<std::string> names = source.tensor_names();
  // A tied lm_head that is quantized becomes a tensor of its own, and the
  // config says it is no longer tied (a loader would tie it back over the
  // quantized one).
  const bool head_quantized = quantized.count("lm_head.weight") != 0;
  const bool untie = head_quantized && source.config().tie_word_embeddings;
  if (head_quantized && !source.has("lm_head.weight")) names.push_back("lm_head.weight");
  const TensorDType float_dtype = unquantized_dtype(source, options.dtype);
  for (const std::string &name : names) {
    check_interrupt();
    auto it = quantized.find(name);
    if (it == quantized.end()) {
      const TensorInfo &t = source.info(name);
      const bool is_float = t.dtype == TensorDType::F32 || t.dtype == TensorDType::F16 ||
                            t.dtype == TensorDType::BF16 || t.dtype == TensorDType::F64;
      if (is_float) {
        add_tensor(name, float_dtype, t.shape,
                   convert_float_tensor(source.file_of(name), t, float_dtype));
      } else {
        add_tensor(name, t.dtype, t.shape, bytes_of(source.file_of(name).data(t), t.nbytes));
      }
      continue;
    }
    const LayerResult &l = *it->second;
    gptq_checkpoint_sizes sz;
    check_status(gptq_checkpoint_sizes_for(l.out_features, l.in_features, l.spec.bits,
                                           l.spec.group_size, &sz),
                 l.name);
    std::vector<int32_t> qweight(static_cast<size_t>(sz.qweight_rows * sz.qweight_cols));
    std::vector<int32_t> qzeros(static_cast<size_t>(sz.qzeros_rows * sz.qzeros_cols));
    std::vector<uint16_t> scales(static_cast<size_t>(sz.scales_rows * sz.scales_cols));
    std::vector<int32_t> g_idx(static_cast<size_t>(sz.g_idx_len));
    const gptq_checkpoint_tensors t = checkpoint_tensors_of(qweight, qzeros, scales, g_idx);
    check_status(gptq_qtensor_export(l.qtensor.get(), format, &t), "exporting " + l.name);
    add_tensor(l.name + ".qweight", TensorDType::I32, {sz.qweight_rows, sz.qweight_cols},
           bytes_of(qweight.data(), qweight.size() * 4));
    add_tensor(l.name + ".qzeros", TensorDType::I32, {sz.qzeros_rows, sz.qzeros_cols},
           bytes_of(qzeros.data(), qzeros.size() * 4));
    add_tensor(l.name + ".scales", TensorDType::F16, {sz.scales_rows, sz.scales_cols},
           bytes_of(scales.data(), scales.size() * 2));
    add_tensor(l.name + ".g_idx", TensorDType::I32, {sz.g_idx_len},
           bytes_of(g_idx.data(), g_idx.size() * 4));
  }
  if (static_cast<size_t>(std::count_if(result.layers.begin(), result.layers.end(),
                                        [](const LayerResult &l) { return !l.spec.skip; })) !=
      quantized.size()) {
    throw ToolError("internal: a quantized layer has no weight tensor in the source model");
  }

  json config = source.config_json();
  if (untie) config["tie_word_embeddings"] = false;
  // transformers 5 reads "dtype" before "torch_dtype", 4 only "torch_dtype":
  // whichever keys the source has are set, "torch_dtype" when it has neither.
  const bool has_dtype_key = config.contains("dtype");
  if (config.contains("torch_dtype") || !has_dtype_key) {
    config["torch_dtype"] = torch_dtype_name(float_dtype);
  }
  if (has_dtype_key) config["dtype"] = torch_dtype_name(float_dtype);
  const json qcfg = quantization_config(source.config(), result, quantize_options, format,
                                        options.tool_version, written);
  config["quantization_config"] = qcfg;
  json quantize_config = qcfg;
  quantize_config.erase("quant_method");

  const std::string temp = make_sibling_temp_dir(out.string());
  TempDirGuard guard(temp);
  auto stage = [&](const std::string &file) {
    check_interrupt();
    if (options.before_file) options.before_file(file);
  };
  if (shards.size() == 1) {
    stage("model.safetensors");
    shards[0].set_metadata("format", "pt");
    shards[0].write(temp + "/model.safetensors");
  } else {
    json weight_map = json::object();
    uint64_t total = 0;
    for (size_t i = 0; i < shards.size(); ++i) {
      char file[64];
      std::snprintf(file, sizeof file, "model-%05zu-of-%05zu.safetensors", i + 1, shards.size());
      stage(file);
      shards[i].set_metadata("format", "pt");
      shards[i].write(temp + "/" + file);
      for (const std::string &name : shards[i].names()) weight_map[name] = file;
      total += shards[i].data_bytes();
    }
    stage("model.safetensors.index.json");
    const json index{{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
    write_file_synced(temp + "/model.safetensors.index.json", index.dump(2) + "\n");
  }
  stage("config.json");
  write_file_synced(temp + "/config.json", config.dump(2) + "\n");
  stage("quantize_config.json");
  write_file_synced(temp + "/quantize_config.json", quantize_config.dump(2) + "\n");
  for (int i = 0; kTokenizerFiles[i] != nullptr; ++i) {
    const std::string src = source.path() + "/" + kTokenizerFiles[i];
    if (!path_exists(src)) continue;
    stage(kTokenizerFiles[i]);
    copy_file_synced(src, temp + "/" + kTokenizerFiles[i]);
  }
  stage("quantize_report.json");
  write_file_synced(temp + "/quantize_report.json", quantize_report_json(result, source.path(), written));
  fsync_directory(temp);
  stage("rename");

  // Into place. An existing output (with --overwrite) is moved aside first
  // and deleted only once the new directory stands where it stood.
  std::string old;
  if (path_exists(out.string())) {
    old = make_sibling_temp_dir(out.string() + ".old");
    remove_tree_quietly(old);
    if (std::rename(out.c_str(), old.c_str()) != 0) {
      throw ToolError("cannot move the existing " + out.string() + " aside: " +
                      std::strerror(errno));
    }
  }
  if (std::rename(temp.c_str(), out.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    if (!old.empty()) std::rename(old.c_str(), out.c_str());
    throw ToolError("cannot rename the finished checkpoint to " + out.string() + ": " + why);
  }
  guard.release();
  fs::path parent = out.parent_path();
  fsync_directory(parent.empty() ? "." : parent.string());
  if (!old.empty()) remove_tree_quietly(old);
}

}  // namespace gptqtool
