// Defaults are those of transformers' LlamaConfig, MistralConfig and
// Qwen2Config, so that a config.json that loads there means the same model
// here. The geometry (hidden size, layer count, heads, vocabulary) has no
// default on purpose: transformers would invent a 7B-sized model for a
// config that omits it, and the shape errors that follows would hide the
// real problem, a broken config.json.
#include "model_config.h"

#include <cmath>
#include <utility>

#include "checked_size.h"
#include "json_number.h"
#include "tool_error.h"

namespace gptqtool {
namespace {

struct Family {
  const char *architecture;
  const char *model_type;
  int64_t default_max_position_embeddings;
};

constexpr Family kFamilies[] = {
    {"LlamaForCausalLM", "llama", 2048},
    {"MistralForCausalLM", "mistral", 4096 * 32},
    {"Qwen2ForCausalLM", "qwen2", 32768},
};

std::string supported_architectures() {
  std::string s;
  for (const auto &f : kFamilies) {
    if (!s.empty()) s += ", ";
    s += f.architecture;
  }
  return s;
}

// Reads keys of one config, treating null as absent (transformers writes
// "head_dim": null and the like).
class Reader {
 public:
  Reader(const nlohmann::json &j, const std::string &path) : j_(j), path_(path) {}

  [[noreturn]] void fail(const std::string &what) const { throw ToolError(path_ + ": " + what); }
  const std::string &path() const { return path_; }

  bool has(const char *key) const { return j_.contains(key) && !j_[key].is_null(); }

  int64_t integer(const char *key, int64_t lo, int64_t hi) const {
    if (!has(key)) fail("required field \"" + std::string(key) + "\" is missing");
    return json_integer(j_[key], lo, hi, path_ + ": \"" + std::string(key) + "\"");
  }
  int64_t integer(const char *key, int64_t fallback, int64_t lo, int64_t hi) const {
    return has(key) ? integer(key, lo, hi) : fallback;
  }
  // A dimension: 1 .. kMaxDimension.
  int64_t dimension(const char *key) const { return integer(key, 1, kMaxDimension); }
  int64_t dimension(const char *key, int64_t fallback) const {
    return integer(key, fallback, 1, kMaxDimension);
  }

  double number(const char *key, double fallback) const {
    if (!has(key)) return fallback;
    const auto &v = j_[key];
    if (!v.is_number()) fail("\"" + std::string(key) + "\" is " + v.dump() + ", not a number");
    return v.get<double>();
  }

  bool boolean(const char *key, bool fallback) const {
    if (!has(key)) return fallback;
    const auto &v = j_[key];
    if (!v.is_boolean()) fail("\"" + std::string(key) + "\" is " + v.dump() + ", not true/false");
    return v.get<bool>();
  }

  std::string string(const char *key, const std::string &fallback) const {
    if (!has(key)) return fallback;
    const auto &v = j_[key];
    if (!v.is_string()) fail("\"" + std::string(key) + "\" is " + v.dump() + ", not a string");
    return v.get<std::string>();
  }

 private:
  const nlohmann::json &j_;
  const std::string &path_;
};

// The family from "architectures" (what the checkpoint says it is) and
// "model_type" (what transformers actually builds); they must agree.
const Family &identify(const nlohmann::json &config, const Reader &r) {
  std::string architecture;
  if (config.contains("architectures") && !config["architectures"].is_null()) {
    const auto &a = config["architectures"];
    if (!a.is_array() || a.empty() || !a[0].is_string()) {
      r.fail("\"architectures\" is " + a.dump() + ", not a list of names");
    }
    architecture = a[0].get<std::string>();
  }
  const std::string model_type = r.string("model_type", "");
  if (architecture.empty() && model_type.empty()) {
    r.fail("neither \"architectures\" nor \"model_type\" is set; cannot tell the model family");
  }
  for (const auto &f : kFamilies) {
    const bool arch_match = architecture == f.architecture;
    const bool type_match = model_type == f.model_type;
    if (!arch_match && !type_match) continue;
    if (!architecture.empty() && !arch_match) {
      // A LLaMA-family body with another head (sequence classification...).
      r.fail(architecture + " is not supported (model_type \"" + model_type +
             "\" but not the causal LM); supported: " + supported_architectures());
    }
    if (!model_type.empty() && !type_match) {
      r.fail("architecture " + architecture + " does not match model_type \"" + model_type +
             "\" (expected \"" + f.model_type + "\")");
    }
    return f;
  }
  const std::string named = architecture.empty() ? "model_type \"" + model_type + "\"" : architecture;
  r.fail(named + " is not a LLaMA-family architecture; supported: " + supported_architectures());
}

void parse_rope_scaling(const nlohmann::json &config, const Reader &r, LlamaConfig *c) {
  if (!config.contains("rope_scaling") || config["rope_scaling"].is_null()) return;
  const auto &rs = config["rope_scaling"];
  if (!rs.is_object()) r.fail("\"rope_scaling\" is " + rs.dump() + ", not an object");
  const Reader s(rs, r.path());
  // transformers renamed "type" to "rope_type"; both occur in the wild.
  std::string type = s.string("rope_type", s.string("type", ""));
  if (type.empty()) r.fail("\"rope_scaling\" has no \"rope_type\"");
  if (type == "default") return;  // transformers' name for no scaling
  if (type != "llama3" && type != "linear") {
    r.fail("rope_scaling type \"" + type + "\" is not supported (supported: llama3, linear)");
  }
  if (!s.has("factor")) r.fail("rope_scaling of type " + type + " has no \"factor\"");
  c->rope_scaling_type = type;
  c->rope_factor = s.number("factor", 1.0);
  if (!(c->rope_factor > 0) || !std::isfinite(c->rope_factor)) {
    r.fail("rope_scaling factor " + std::to_string(c->rope_factor) + " must be > 0");
  }
  if (type == "linear") return;
  for (const char *key : {"low_freq_factor", "high_freq_factor", "original_max_position_embeddings"}) {
    if (!s.has(key)) r.fail("rope_scaling of type llama3 has no \"" + std::string(key) + "\"");
  }
  c->rope_low_freq_factor = s.number("low_freq_factor", 1.0);
  c->rope_high_freq_factor = s.number("high_freq_factor", 4.0);
  c->rope_original_max_pos = s.dimension("original_max_position_embeddings");
  // The llama3 formula interpolates between the two wavelength bounds and
  // divides by their difference.
  if (!(c->rope_low_freq_factor > 0) || !(c->rope_high_freq_factor > c->rope_low_freq_factor)) {
    r.fail("rope_scaling llama3 needs 0 < low_freq_factor < high_freq_factor, got " +
           std::to_string(c->rope_low_freq_factor) + " and " +
           std::to_string(c->rope_high_freq_factor));
  }
}

}  // namespace

int64_t LlamaConfig::q_dim() const {
  return checked_mul(num_attention_heads, head_dim, "num_attention_heads x head_dim");
}

int64_t LlamaConfig::kv_dim() const {
  return checked_mul(num_key_value_heads, head_dim, "num_key_value_heads x head_dim");
}

LlamaConfig parse_llama_config(const nlohmann::json &config, const std::string &path) {
  if (!config.is_object()) throw ToolError(path + ": config is not a JSON object");
  const Reader r(config, path);
  const Family &family = identify(config, r);

  LlamaConfig c;
  c.architecture = family.architecture;
  c.model_type = family.model_type;
  const std::string arch = c.architecture;
  const bool llama = c.model_type == "llama";
  const bool qwen2 = c.model_type == "qwen2";

  c.hidden_size = r.dimension("hidden_size");
  c.intermediate_size = r.dimension("intermediate_size");
  c.num_hidden_layers = r.integer("num_hidden_layers", 1, kMaxLayers);
  c.num_attention_heads = r.dimension("num_attention_heads");
  c.vocab_size = r.dimension("vocab_size");
  c.num_key_value_heads = r.dimension("num_key_value_heads", c.num_attention_heads);
  c.max_position_embeddings =
      r.dimension("max_position_embeddings", family.default_max_position_embeddings);
  if (c.num_attention_heads % c.num_key_value_heads != 0) {
    r.fail(arch + ": num_attention_heads " + std::to_string(c.num_attention_heads) +
           " is not a multiple of num_key_value_heads " + std::to_string(c.num_key_value_heads));
  }
  if (r.has("head_dim")) {
    c.head_dim = r.dimension("head_dim");
  } else {
    if (c.hidden_size % c.num_attention_heads != 0) {
      r.fail(arch + ": hidden_size " + std::to_string(c.hidden_size) +
             " is not divisible by num_attention_heads " + std::to_string(c.num_attention_heads) +
             " (and no head_dim is given)");
    }
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
  if (c.head_dim % 2 != 0) {
    r.fail(arch + ": head_dim " + std::to_string(c.head_dim) + " is odd; RoPE needs pairs");
  }
  // The widths of q and of k/v: products of two file-supplied numbers, which
  // must neither wrap nor exceed what a tensor dimension may be.
  for (const auto &[heads, name] : {std::pair<int64_t, const char *>{c.num_attention_heads,
                                                                     "num_attention_heads"},
                                    {c.num_key_value_heads, "num_key_value_heads"}}) {
    if (heads > kMaxDimension / c.head_dim) {
      r.fail(arch + ": " + name + " " + std::to_string(heads) + " x head_dim " +
             std::to_string(c.head_dim) + " is larger than " + std::to_string(kMaxDimension));
    }
  }

  c.rms_norm_eps = r.number("rms_norm_eps", 1e-6);
  c.rope_theta = r.number("rope_theta", 10000.0);
  if (!(c.rms_norm_eps > 0) || !std::isfinite(c.rms_norm_eps)) {
    r.fail("\"rms_norm_eps\" must be a positive number");
  }
  if (!(c.rope_theta > 0) || !std::isfinite(c.rope_theta)) {
    r.fail("\"rope_theta\" must be a positive number");
  }
  c.tie_word_embeddings = r.boolean("tie_word_embeddings", false);

  // Bias layout per family: LLaMA's attention_bias puts a bias on q, k, v
  // and o; Qwen2 always has q, k, v biases and never an o bias; Mistral has
  // none (its modeling code ignores these keys, and so do we).
  if (llama) {
    c.attention_bias = r.boolean("attention_bias", false);
    c.o_proj_bias = c.attention_bias;
    c.mlp_bias = r.boolean("mlp_bias", false);
  } else if (qwen2) {
    c.attention_bias = true;
    c.o_proj_bias = false;
  }

  c.hidden_act = r.string("hidden_act", "silu");
  if (c.hidden_act != "silu") {
    r.fail(arch + ": hidden_act \"" + c.hidden_act + "\" is not supported (only silu)");
  }

  parse_rope_scaling(config, r, &c);
  c.torch_dtype = r.string("torch_dtype", r.string("dtype", ""));

  // Sliding window: only recorded when it can take effect.
  int64_t window = 0;
  if (c.model_type == "mistral") {
    window = config.contains("sliding_window") ? r.integer("sliding_window", 0, 0, INT64_MAX) : 4096;
  } else if (qwen2 && r.boolean("use_sliding_window", false)) {
    window = config.contains("sliding_window") ? r.integer("sliding_window", 0, 0, INT64_MAX) : 4096;
    c.max_window_layers = r.integer("max_window_layers", 28, 0, INT64_MAX);
  }
  c.sliding_window = window < c.max_position_embeddings ? window : 0;
  if (c.sliding_window == 0) c.max_window_layers = 0;
  return c;
}

}  // namespace gptqtool
