#include "checkpoint_reader.h"

#include <cstring>
#include <regex>

#include "model_dir.h"
#include "safetensors.h"

namespace gptqtool {

using nlohmann::json;

bool is_gptq_checkpoint(const ModelDir &dir) {
  return dir.config_json().contains("quantization_config");
}

namespace {

template <typename T>
T field(const json &obj, const char *key, T fallback, const std::string &where) {
  if (!obj.contains(key) || obj[key].is_null()) return fallback;
  try {
    return obj[key].get<T>();
  } catch (const json::exception &) {
    throw ToolError(where + ": quantization_config." + key + " has the wrong type");
  }
}

SpecOverride override_from_json(const json &obj, const std::string &where) {
  SpecOverride o;
  if (!obj.is_object()) throw ToolError(where + ": a dynamic rule's settings must be an object");
  if (obj.contains("bits")) o.bits = field<int32_t>(obj, "bits", 4, where);
  if (obj.contains("group_size")) o.group_size = field<int32_t>(obj, "group_size", 128, where);
  if (obj.contains("sym")) o.sym = field<bool>(obj, "sym", true, where);
  if (obj.contains("desc_act")) o.act_order = field<bool>(obj, "desc_act", false, where);
  return o;
}

}  // namespace

GptqCheckpointConfig read_gptq_checkpoint_config(const ModelDir &dir) {
  const std::string where = dir.path() + "/config.json";
  if (!is_gptq_checkpoint(dir)) throw ToolError(where + " has no quantization_config");
  const json &q = dir.config_json()["quantization_config"];
  if (!q.is_object()) throw ToolError(where + ": quantization_config is not an object");
  const std::string method = field<std::string>(q, "quant_method", "", where);
  if (method != "gptq") {
    throw ToolError(where + ": quant_method is '" + method + "'; only 'gptq' checkpoints are read");
  }
  GptqCheckpointConfig cfg;
  cfg.base.bits = field<int32_t>(q, "bits", 4, where);
  cfg.base.group_size = field<int32_t>(q, "group_size", 128, where);
  cfg.base.sym = field<bool>(q, "sym", true, where);
  cfg.base.act_order = field<bool>(q, "desc_act", false, where);
  cfg.base.static_groups = field<bool>(q, "static_groups", false, where);
  cfg.base.damp_percent = field<double>(q, "damp_percent", 0.01, where);
  cfg.quantize_lm_head = field<bool>(q, "lm_head", false, where);
  const std::string format = field<std::string>(q, "checkpoint_format", "gptq", where);
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
        std::regex check(key);
      } catch (const std::regex_error &) {
        throw ToolError(where + ": dynamic rule '" + item.key() + "' is not a valid regex");
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
    if (!std::regex_search(layer, std::regex(r.regex), std::regex_constants::match_continuous)) {
      continue;
    }
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
  const LayerQuantSpec spec = checkpoint_spec_for(cfg, name);
  if (spec.skip) {
    throw ToolError(name + " has a qweight but the checkpoint's dynamic rules say it is skipped");
  }
  validate_spec(spec, name);
  gptq_checkpoint_sizes sz;
  check_status(gptq_checkpoint_sizes_for(out, in, spec.bits, spec.group_size, &sz),
               name + " (" + std::to_string(spec.bits) + "-bit, group " +
                   std::to_string(spec.group_size) + ")");
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
  if (dir.has(name + ".g_idx")) {
    g_idx = copy_as<int32_t>(checked(dir, name + ".g_idx", TensorDType::I32, {sz.g_idx_len}),
                             sz.g_idx_len);
  }
  gptq_checkpoint_tensors t;
  t.qweight = qweight.data();
  t.qweight_len = static_cast<int64_t>(qweight.size());
  t.qzeros = qzeros.data();
  t.qzeros_len = static_cast<int64_t>(qzeros.size());
  t.scales = scales.data();
  t.scales_len = static_cast<int64_t>(scales.size());
  t.g_idx = g_idx.empty() ? nullptr : g_idx.data();
  t.g_idx_len = static_cast<int64_t>(g_idx.size());
  gptq_qtensor *q = nullptr;
  check_status(gptq_qtensor_import(out, in, spec.bits, spec.group_size, cfg.format, &t, &q),
               "importing " + name);
  return std::shared_ptr<gptq_qtensor>(q, QTensorDeleter());
}

}  // namespace gptqtool
