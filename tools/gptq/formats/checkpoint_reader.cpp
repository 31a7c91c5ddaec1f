#include "formats/checkpoint_reader.h"

#include <cstring>

#include "common/json_number.h"
#include "formats/safetensors.h"
#include "model/llama_model.h"
#include "model/model_dir.h"

namespace gptqtool {

using nlohmann::json;

bool is_gptq_checkpoint(const ModelDir &dir) {
  return dir.config_json().contains("quantization_config");
}

namespace {

// Typed, checked reads of quantization_config fields; null counts as absent.
bool present(const json &obj, const char *key) { return obj.contains(key) && !obj[key].is_null(); }

[[noreturn]] void wrong_type(const json &obj, const char *key, const char *expected,
                             const std::string &where) {
  throw ToolError(where + ": quantization_config." + key + " is " + obj[key].dump() + ", not " +
                  expected);
}

int32_t int_field(const json &obj, const char *key, int32_t fallback, int32_t lo, int32_t hi,
                  const std::string &where) {
  if (!present(obj, key)) return fallback;
  return static_cast<int32_t>(
      json_integer(obj[key], lo, hi, where + ": quantization_config." + key));
}

bool bool_field(const json &obj, const char *key, bool fallback, const std::string &where) {
  if (!present(obj, key)) return fallback;
  if (!obj[key].is_boolean()) wrong_type(obj, key, "true or false", where);
  return obj[key].get<bool>();
}

double number_field(const json &obj, const char *key, double fallback, const std::string &where) {
  if (!present(obj, key)) return fallback;
  if (!obj[key].is_number()) wrong_type(obj, key, "a number", where);
  return obj[key].get<double>();
}

std::string string_field(const json &obj, const char *key, const std::string &fallback,
                         const std::string &where) {
  if (!present(obj, key)) return fallback;
  if (!obj[key].is_string()) wrong_type(obj, key, "a string", where);
  return obj[key].get<std::string>();
}

// Wide enough for validate_spec to name a bad value itself; narrow enough
// for int32_t.
constexpr int32_t kMaxBits = 64;

SpecOverride override_from_json(const json &obj, const std::string &where) {
  SpecOverride o;
  if (!obj.is_object()) throw ToolError(where + ": a dynamic rule's settings must be an object");
  if (present(obj, "bits")) o.bits = int_field(obj, "bits", 4, 0, kMaxBits, where);
  if (present(obj, "group_size")) {
    o.group_size = int_field(obj, "group_size", 128, -1, INT32_MAX, where);
  }
  if (present(obj, "sym")) o.sym = bool_field(obj, "sym", true, where);
  if (present(obj, "desc_act")) o.act_order = bool_field(obj, "desc_act", false, where);
  return o;
}

}  // namespace

GptqCheckpointConfig read_gptq_checkpoint_config(const ModelDir &dir) {
  return parse_gptq_checkpoint_config(dir.config_json(), dir.path() + "/config.json");
}

GptqCheckpointConfig parse_gptq_checkpoint_config(const json &config, const std::string &where) {
  if (!config.is_object() || !config.contains("quantization_config")) {
    throw ToolError(where + " has no quantization_config");
  }
  const json &q = config["quantization_config"];
  if (!q.is_object()) throw ToolError(where + ": quantization_config is not an object");
  const std::string method = string_field(q, "quant_method", "", where);
  if (method != "gptq") {
    throw ToolError(where + ": quant_method is '" + method + "'; only 'gptq' checkpoints are read");
  }
  GptqCheckpointConfig cfg;
  cfg.base.bits = int_field(q, "bits", 4, 0, kMaxBits, where);
  cfg.base.group_size = int_field(q, "group_size", 128, -1, INT32_MAX, where);
  cfg.base.sym = bool_field(q, "sym", true, where);
  cfg.base.act_order = bool_field(q, "desc_act", false, where);
  cfg.base.static_groups = bool_field(q, "static_groups", false, where);
  cfg.base.damp_percent = number_field(q, "damp_percent", 0.01, where);
  cfg.quantize_lm_head = bool_field(q, "lm_head", false, where);
  const std::string format = string_field(q, "checkpoint_format", "gptq", where);
  if (format == "gptq") {
    cfg.format = GPTQ_FORMAT_V1;
  } else if (format == "gptq_v2") {
    cfg.format = GPTQ_FORMAT_V2;
  } else {
    throw ToolError(where + ": checkpoint_format '" + format +
                    "' is not read (known: gptq, gptq_v2)");
  }
  validate_spec(cfg.base, where);
  if (q.contains("dynamic") && !q["dynamic"].is_null()) {
    if (!q["dynamic"].is_object()) throw ToolError(where + ": dynamic must be an object");
    for (const auto &item : q["dynamic"].items()) {
      DynamicRule rule;
      std::string key = item.key();
      if (key.rfind("-:", 0) == 0) {
        rule.skip = true;
        key = key.substr(2);
      } else if (key.rfind("+:", 0) == 0) {
        key = key.substr(2);
      }
      rule.regex = key;
      try {
        rule.matcher = std::make_shared<const LayerRegex>(key);
      } catch (const ToolError &e) {
        throw ToolError(where + ": quantization_config.dynamic: " + e.what());
      }
      if (!rule.skip) rule.fields = override_from_json(item.value(), where);
      cfg.dynamic.push_back(rule);
    }
  }
  return cfg;
}

LayerQuantSpec checkpoint_spec_for(const GptqCheckpointConfig &cfg, const std::string &layer) {
  LayerQuantSpec s = cfg.base;
  for (const DynamicRule &r : cfg.dynamic) {
    if (!r.matcher->match(layer)) continue;
    if (r.skip) {
      s.skip = true;
      continue;
    }
    if (r.fields.bits) s.bits = *r.fields.bits;
    if (r.fields.group_size) s.group_size = *r.fields.group_size;
    if (r.fields.sym) s.sym = *r.fields.sym;
    if (r.fields.act_order) s.act_order = *r.fields.act_order;
  }
  return s;
}

namespace {

// Bytes of a tensor after checking its dtype and shape.
const uint8_t *checked(const ModelDir &dir, const std::string &name, TensorDType dtype,
                       const std::vector<int64_t> &shape) {
  const TensorInfo &t = dir.info(name);
  auto show = [](const std::vector<int64_t> &s) {
    std::string r = "[";
    for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
    return r + "]";
  };
  if (t.dtype != dtype || t.shape != shape) {
    throw ToolError(name + " in " + dir.file_of(name).path() + " is " + dtype_name(t.dtype) + " " +
                    show(t.shape) + "; the quantization_config implies " + dtype_name(dtype) +
                    " " + show(shape));
  }
  return dir.file_of(name).data(t);
}

// The settings and tensor sizes of quantized layer `name`, its tensors'
// dtypes and shapes checked.
struct QuantizedLayer {
  LayerQuantSpec spec;
  gptq_checkpoint_sizes sz;
  bool has_g_idx = false;
};

QuantizedLayer checked_layer(const ModelDir &dir, const GptqCheckpointConfig &cfg,
                             const std::string &name, int64_t out, int64_t in) {
  QuantizedLayer l;
  l.spec = checkpoint_spec_for(cfg, name);
  if (l.spec.skip) {
    throw ToolError(name + " has a qweight but the checkpoint's dynamic rules say it is skipped");
  }
  validate_spec(l.spec, name);
  check_status(gptq_checkpoint_sizes_for(out, in, l.spec.bits, l.spec.group_size, &l.sz),
               name + " (" + std::to_string(l.spec.bits) + "-bit, group " +
                   std::to_string(l.spec.group_size) + ")");
  const gptq_checkpoint_sizes &sz = l.sz;
  checked(dir, name + ".qweight", TensorDType::I32, {sz.qweight_rows, sz.qweight_cols});
  checked(dir, name + ".qzeros", TensorDType::I32, {sz.qzeros_rows, sz.qzeros_cols});
  checked(dir, name + ".scales", TensorDType::F16, {sz.scales_rows, sz.scales_cols});
  l.has_g_idx = dir.has(name + ".g_idx");
  if (l.has_g_idx) checked(dir, name + ".g_idx", TensorDType::I32, {sz.g_idx_len});
  return l;
}

template <typename T>
std::vector<T> copy_as(const uint8_t *bytes, int64_t count) {
  std::vector<T> out(static_cast<size_t>(count));
  std::memcpy(out.data(), bytes, out.size() * sizeof(T));
  return out;
}

}  // namespace

std::shared_ptr<gptq_qtensor> load_quantized_linear(const ModelDir &dir,
                                                    const GptqCheckpointConfig &cfg,
                                                    const std::string &name, int64_t out,
                                                    int64_t in) {
  const QuantizedLayer layer = checked_layer(dir, cfg, name, out, in);
  const LayerQuantSpec &spec = layer.spec;
  const gptq_checkpoint_sizes &sz = layer.sz;
  auto qweight = copy_as<int32_t>(
      checked(dir, name + ".qweight", TensorDType::I32, {sz.qweight_rows, sz.qweight_cols}),
      sz.qweight_rows * sz.qweight_cols);
  auto qzeros = copy_as<int32_t>(
      checked(dir, name + ".qzeros", TensorDType::I32, {sz.qzeros_rows, sz.qzeros_cols}),
      sz.qzeros_rows * sz.qzeros_cols);
  auto scales = copy_as<uint16_t>(
      checked(dir, name + ".scales", TensorDType::F16, {sz.scales_rows, sz.scales_cols}),
      sz.scales_rows * sz.scales_cols);
  std::vector<int32_t> g_idx;
  if (layer.has_g_idx) {
    g_idx = copy_as<int32_t>(checked(dir, name + ".g_idx", TensorDType::I32, {sz.g_idx_len}),
                             sz.g_idx_len);
  }
  const gptq_checkpoint_tensors t = checkpoint_tensors_of(qweight, qzeros, scales, g_idx);
  gptq_qtensor *q = nullptr;
  check_status(gptq_qtensor_import(out, in, spec.bits, spec.group_size, cfg.format, &t, &q),
               "importing " + name);
  return std::shared_ptr<gptq_qtensor>(q, QTensorDeleter());
}

void check_gptq_tensors(const ModelDir &dir, const GptqCheckpointConfig &cfg) {
  const LlamaConfig &c = dir.config();
  for (int64_t b = 0; b < c.num_hidden_layers; ++b) {
    for (const LinearId id : block_linears(c)) {
      const std::string name = linear_name(c, b, id);
      if (!dir.has(name + ".qweight")) continue;
      int64_t out = 0, in = 0;
      slot_shape(c, id, &out, &in);
      checked_layer(dir, cfg, name, out, in);
    }
  }
  if (dir.has("lm_head.qweight")) checked_layer(dir, cfg, "lm_head", c.vocab_size, c.hidden_size);
}

}  // namespace gptqtool
