// Defaults are those of transformers' LlamaConfig, MistralConfig,
// Qwen2Config, Qwen3Config, Phi3Config, Gemma2Config, Gemma3TextConfig,
// MixtralConfig, Qwen2MoeConfig and Qwen3MoeConfig, so that a
// config.json that loads there means the same model here. The geometry
// (hidden size, layer count, heads, vocabulary) has no default on purpose:
// transformers would invent a
// 7B-sized model for a config that omits it, and the shape errors that
// follows would hide the real problem, a broken config.json.
#include "model/model_config.h"

#include <cmath>
#include <tuple>
#include <utility>

#include "common/checked_size.h"
#include "common/json_number.h"
#include "common/tool_error.h"

namespace gptqtool {
namespace {

struct Family {
  const char *architecture;
  const char *model_type;
  int64_t default_max_position_embeddings;
  // num_key_value_heads when the key is absent (0: num_attention_heads);
  // an explicit null means num_attention_heads in every family.
  int64_t default_kv_heads;
  double default_rms_norm_eps;
  // Phi-3 stores q/k/v as one qkv_proj and gate/up as one gate_up_proj.
  bool fused_projections;
  int64_t default_head_dim;  // 0: hidden_size / num_attention_heads
  bool default_tied;         // tie_word_embeddings when the key is absent
};

constexpr Family kFamilies[] = {
    {"LlamaForCausalLM", "llama", 2048, 0, 1e-6, false, 0, false},
    {"MistralForCausalLM", "mistral", 4096 * 32, 8, 1e-6, false, 0, false},
    {"Qwen2ForCausalLM", "qwen2", 32768, 32, 1e-6, false, 0, false},
    // Qwen3Config's head_dim is 128 whatever hidden_size / heads is.
    {"Qwen3ForCausalLM", "qwen3", 32768, 32, 1e-6, false, 128, false},
    {"Phi3ForCausalLM", "phi3", 4096, 0, 1e-5, true, 0, false},
    {"Gemma2ForCausalLM", "gemma2", 8192, 4, 1e-6, false, 256, true},
    {"Gemma3ForCausalLM", "gemma3_text", 131072, 4, 1e-6, false, 256, true},
    {"MixtralForCausalLM", "mixtral", 4096 * 32, 8, 1e-5, false, 0, false},
    {"Qwen2MoeForCausalLM", "qwen2_moe", 32768, 16, 1e-6, false, 0, false},
    {"Qwen3MoeForCausalLM", "qwen3_moe", 32768, 4, 1e-6, false, 0, false},
};

// Architectures people bring that share a model_type or a name with a
// supported one but are refused, each with why: a plain "not supported"
// would leave them guessing.
struct Refused {
  const char *architecture;
  const char *model_type;
  const char *why;
};

constexpr Refused kRefused[] = {
    {"Gemma3ForConditionalGeneration", "gemma3",
     "is Gemma 3 with its vision tower (weights under model.language_model and "
     "model.vision_tower); only the text-only Gemma3ForCausalLM (model_type gemma3_text) is "
     "supported"},
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
  for (const auto &refused : kRefused) {
    if (architecture == refused.architecture || (architecture.empty() && model_type == refused.model_type)) {
      r.fail(std::string(refused.architecture) + " (model_type \"" + refused.model_type + "\") " +
             refused.why);
    }
  }
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

bool present(const nlohmann::json &j, const char *key) {
  return j.is_object() && j.contains(key) && !j[key].is_null();
}

double finite_positive(const Reader &r, const char *key, double v) {
  if (!(v > 0) || !std::isfinite(v)) {
    r.fail("RoPE \"" + std::string(key) + "\" is " + std::to_string(v) + "; it must be > 0");
  }
  return v;
}

// RoPE's type and parameters. transformers 5 keeps them in
// "rope_parameters" (rope_theta included); transformers 4 in "rope_scaling"
// beside a top-level "rope_theta". Both versions use "rope_scaling" when a
// file has it (5 moves it into rope_parameters), and 5 takes rope_theta
// from the object first, then from the top level, then its default of
// 10000. Where the two versions would read a file differently, it is
// refused rather than guessed.
void parse_rope(const nlohmann::json &config, const Reader &r, LlamaConfig *c,
                double default_theta = 10000.0) {
  const char *source = nullptr;
  for (const char *key : {"rope_scaling", "rope_parameters"}) {
    if (!present(config, key)) continue;
    const auto &v = config[key];
    if (!v.is_object()) r.fail("\"" + std::string(key) + "\" is " + v.dump() + ", not an object");
    if (!v.empty() && source == nullptr) source = key;  // an empty object counts as absent
  }
  static const nlohmann::json kEmpty = nlohmann::json::object();
  const nlohmann::json &rope = source != nullptr ? config[source] : kEmpty;
  const std::string where = source != nullptr ? source : "rope_parameters";
  const Reader p(rope, r.path());
  auto in_rope = [&](const char *key) { return "\"" + where + "\"." + key; };

  // Parameters keyed by layer type ({"full_attention": {...}, ...}) give
  // each kind of layer its own RoPE.
  for (const auto &item : rope.items()) {
    if (item.value().is_object()) {
      r.fail(in_rope(item.key().c_str()) + " is an object: RoPE parameters per layer type are "
                                           "not supported");
    }
  }

  const bool theta_inside = p.has("rope_theta"), theta_outside = r.has("rope_theta");
  if (theta_inside && theta_outside &&
      p.number("rope_theta", 0) != r.number("rope_theta", 0)) {
    r.fail(in_rope("rope_theta") + " and \"rope_theta\" disagree; transformers 5 would use the "
                                   "first, transformers 4 the second");
  }
  c->rope_theta = theta_inside    ? p.number("rope_theta", 0)
                  : theta_outside ? r.number("rope_theta", 0)
                                  : default_theta;  // transformers' default_theta
  finite_positive(r, "rope_theta", c->rope_theta);

  for (const Reader *from : {&p, &r}) {
    if (from->has("partial_rotary_factor") && from->number("partial_rotary_factor", 1) != 1.0) {
      r.fail("partial_rotary_factor " + std::to_string(from->number("partial_rotary_factor", 1)) +
             " is not supported (RoPE over the whole head only)");
    }
  }

  // transformers renamed "type" to "rope_type"; files carry either or both.
  const std::string type = p.string("rope_type", p.string("type", "default"));
  if (p.has("rope_type") && p.has("type") && p.string("type", "") != type) {
    r.fail(in_rope("rope_type") + " \"" + type + "\" and " + in_rope("type") + " \"" +
           p.string("type", "") + "\" disagree");
  }
  if (type != "default" && type != "linear" && type != "dynamic" && type != "yarn" &&
      type != "llama3") {
    r.fail("RoPE type \"" + type + "\" is not supported (supported: default, linear, dynamic, "
           "yarn, llama3)");
  }
  c->rope_type = type;
  if (type == "default") return;

  auto required = [&](const char *key) {
    if (!p.has(key)) r.fail("RoPE of type " + type + " has no " + in_rope(key));
    return finite_positive(r, key, p.number(key, 0));
  };
  if (type == "linear" || type == "dynamic") {
    c->rope_factor = required("factor");
    return;
  }

  // The pretraining length: transformers 5 takes a top-level
  // original_max_position_embeddings first, then the object's, then
  // max_position_embeddings; transformers 4 reads only the object's.
  const bool orig_inside = p.has("original_max_position_embeddings");
  const bool orig_outside = r.has("original_max_position_embeddings");
  if (orig_inside && orig_outside &&
      p.dimension("original_max_position_embeddings") !=
          r.dimension("original_max_position_embeddings")) {
    r.fail(in_rope("original_max_position_embeddings") +
           " and \"original_max_position_embeddings\" disagree");
  }
  c->rope_original_max_pos = orig_outside  ? r.dimension("original_max_position_embeddings")
                             : orig_inside ? p.dimension("original_max_position_embeddings")
                                           : c->max_position_embeddings;

  if (type == "llama3") {
    c->rope_factor = required("factor");
    c->rope_low_freq_factor = required("low_freq_factor");
    c->rope_high_freq_factor = required("high_freq_factor");
    // The formula interpolates between the two wavelength bounds and
    // divides by their difference.
    if (!(c->rope_high_freq_factor > c->rope_low_freq_factor)) {
      r.fail("RoPE llama3 needs 0 < low_freq_factor < high_freq_factor, got " +
             std::to_string(c->rope_low_freq_factor) + " and " +
             std::to_string(c->rope_high_freq_factor));
    }
    return;
  }

  // yarn. Without a factor, the ratio of the two lengths.
  c->rope_factor = p.has("factor") ? required("factor")
                                   : static_cast<double>(c->max_position_embeddings) /
                                         static_cast<double>(c->rope_original_max_pos);
  // Python's `x or default`: a missing, null or zero beta takes the default.
  const double beta_fast = p.number("beta_fast", 0), beta_slow = p.number("beta_slow", 0);
  c->rope_beta_fast = beta_fast != 0 ? beta_fast : 32.0;
  c->rope_beta_slow = beta_slow != 0 ? beta_slow : 1.0;
  if (!std::isfinite(c->rope_beta_fast) || !std::isfinite(c->rope_beta_slow) ||
      c->rope_beta_fast <= 0 || c->rope_beta_slow <= 0) {
    r.fail("RoPE yarn beta_fast and beta_slow must be positive numbers");
  }
  c->rope_truncate = p.boolean("truncate", true);
  if (p.has("attention_factor")) {
    c->rope_attention_factor = finite_positive(r, "attention_factor", p.number("attention_factor", 1));
  } else {
    // The YaRN paper's suggestion, or DeepSeek's ratio of two when mscale
    // and mscale_all_dim are both given (and non-zero).
    auto mscale = [&](double scale, double m) {
      return scale <= 1 ? 1.0 : 0.1 * m * std::log(scale) + 1.0;
    };
    const double m = p.number("mscale", 0), m_all = p.number("mscale_all_dim", 0);
    c->rope_attention_factor = (m != 0 && m_all != 0)
                                   ? mscale(c->rope_factor, m) / mscale(c->rope_factor, m_all)
                                   : mscale(c->rope_factor, 1.0);
    finite_positive(r, "attention_factor", c->rope_attention_factor);
  }
}

// Gemma 3's two RoPEs. transformers 5 writes rope_parameters keyed by layer
// type, {"full_attention": {...}, "sliding_attention": {...}};
// transformers 4 a top-level rope_theta (default 1e6) and rope_scaling for
// the full-attention layers, and rope_local_base_freq (default 1e4) for the
// sliding ones. The full-attention RoPE is read as any family's; the local
// one is always of the default type.
void parse_gemma3_rope(const nlohmann::json &config, const Reader &r, LlamaConfig *c) {
  nlohmann::json flat = config;
  c->rope_local_theta = r.number("rope_local_base_freq", 10000.0);
  if (present(config, "rope_parameters") && config["rope_parameters"].is_object()) {
    const auto &by_type = config["rope_parameters"];
    const bool nested = by_type.contains("full_attention") || by_type.contains("sliding_attention");
    if (nested) {
      if (present(config, "rope_scaling") && !config["rope_scaling"].empty()) {
        r.fail("both \"rope_scaling\" and \"rope_parameters\" per layer type are given; "
               "transformers 4 and 5 would read them differently");
      }
      for (const auto &item : by_type.items()) {
        if (item.key() != "full_attention" && item.key() != "sliding_attention") {
          r.fail("\"rope_parameters\" has a key \"" + item.key() +
                 "\" besides full_attention and sliding_attention");
        }
      }
      flat.erase("rope_scaling");
      flat["rope_parameters"] = present(by_type, "full_attention") ? by_type["full_attention"]
                                                                   : nlohmann::json::object();
      if (present(by_type, "sliding_attention")) {
        const auto &local = by_type["sliding_attention"];
        if (!local.is_object()) r.fail("\"rope_parameters\".sliding_attention is not an object");
        const Reader l(local, r.path());
        const std::string type = l.string("rope_type", l.string("type", "default"));
        if (type != "default") {
          r.fail("RoPE type \"" + type + "\" of the sliding_attention layers is not supported "
                 "(Gemma 3's local layers use the default RoPE)");
        }
        c->rope_local_theta = l.number("rope_theta", c->rope_local_theta);
      }
    }
  }
  if (!(c->rope_local_theta > 0) || !std::isfinite(c->rope_local_theta)) {
    r.fail("the sliding_attention layers' RoPE theta (rope_local_base_freq) must be > 0");
  }
  const Reader f(flat, r.path());
  parse_rope(flat, f, c, 1000000.0);  // Gemma3TextConfig's global default_theta
}

// The mixture of experts of Mixtral, Qwen2-MoE and Qwen3-MoE (see
// LlamaConfig). The Qwens' decoder_sparse_step and mlp_only_layers, which
// give some blocks a dense MLP, are refused unless they leave every block
// sparse (step 1, no layers listed), as all published Qwen MoE models do.
void parse_moe(const nlohmann::json &config, const Reader &r, LlamaConfig *c) {
  const bool mixtral = c->model_type == "mixtral";
  const bool qwen2_moe = c->model_type == "qwen2_moe";
  const std::string &arch = c->architecture;
  // MixtralConfig names the count num_local_experts and Qwen2MoeConfig
  // num_experts; transformers 5's Qwen3MoeConfig writes num_local_experts
  // and reads either (an alias). Both given must agree.
  const char *key = mixtral ? "num_local_experts" : "num_experts";
  const char *alias = mixtral ? "num_experts" : "num_local_experts";
  const int64_t fallback = mixtral ? 8 : qwen2_moe ? 60 : 128;
  if (r.has(key) && r.has(alias) &&
      r.integer(key, 1, kMaxDimension) != r.integer(alias, 1, kMaxDimension)) {
    r.fail(arch + ": \"" + key + "\" and \"" + alias + "\" disagree");
  }
  c->num_experts = r.has(key) ? r.integer(key, 1, kMaxDimension)
                              : r.integer(alias, fallback, 1, kMaxDimension);
  c->num_experts_per_tok =
      r.integer("num_experts_per_tok", mixtral ? 2 : qwen2_moe ? 4 : 8, 1, kMaxDimension);
  if (c->num_experts_per_tok > c->num_experts) {
    r.fail(arch + ": num_experts_per_tok " + std::to_string(c->num_experts_per_tok) +
           " is more than the " + std::to_string(c->num_experts) + " experts");
  }
  if (mixtral) {
    c->expert_intermediate_size = c->intermediate_size;
    c->norm_topk_prob = true;
    c->mixtral_names = true;
    return;
  }
  c->expert_intermediate_size = r.dimension("moe_intermediate_size", qwen2_moe ? 1408 : 768);
  c->norm_topk_prob = r.boolean("norm_topk_prob", false);
  if (qwen2_moe) {
    c->shared_expert_intermediate_size = r.dimension("shared_expert_intermediate_size", 5632);
  }
  if (r.integer("decoder_sparse_step", 1, 0, INT64_MAX) != 1) {
    r.fail(arch + ": decoder_sparse_step " +
           std::to_string(r.integer("decoder_sparse_step", 1, 0, INT64_MAX)) +
           " is not supported (dense MLPs between the sparse blocks; only step 1, every block "
           "sparse)");
  }
  if (r.has("mlp_only_layers")) {
    const auto &only = config["mlp_only_layers"];
    if (!only.is_array()) r.fail(arch + ": \"mlp_only_layers\" is not a list");
    if (!only.empty()) {
      r.fail(arch + ": mlp_only_layers " + only.dump() +
             " is not supported (blocks with a dense MLP among the sparse ones)");
    }
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
  c.fused_projections = family.fused_projections;
  const std::string arch = c.architecture;
  const bool llama = c.model_type == "llama";
  const bool qwen3 = c.model_type == "qwen3" || c.model_type == "qwen3_moe";
  // Qwen3 and Qwen2-MoE window and list layer types as Qwen2 does; Qwen3-MoE
  // windows every layer (below).
  const bool qwen2 = c.model_type == "qwen2" || c.model_type == "qwen3" ||
                     c.model_type == "qwen2_moe";
  const bool gemma3 = c.model_type == "gemma3_text";
  // Gemma 3 is Gemma 2 with q/k norms, two RoPEs, a window pattern and no
  // soft-capped scores; "gemma" below is what the two share.
  const bool gemma = c.model_type == "gemma2" || gemma3;
  c.qk_norm = qwen3 || gemma3;

  c.hidden_size = r.dimension("hidden_size");
  c.intermediate_size = r.dimension("intermediate_size");
  c.num_hidden_layers = r.integer("num_hidden_layers", 1, kMaxLayers);
  c.num_attention_heads = r.dimension("num_attention_heads");
  c.vocab_size = r.dimension("vocab_size");
  c.num_key_value_heads = r.dimension(
      "num_key_value_heads", config.contains("num_key_value_heads") || family.default_kv_heads == 0
                                 ? c.num_attention_heads
                                 : family.default_kv_heads);
  c.max_position_embeddings =
      r.dimension("max_position_embeddings", family.default_max_position_embeddings);
  if (c.num_attention_heads % c.num_key_value_heads != 0) {
    r.fail(arch + ": num_attention_heads " + std::to_string(c.num_attention_heads) +
           " is not a multiple of num_key_value_heads " + std::to_string(c.num_key_value_heads));
  }
  if (r.has("head_dim") || family.default_head_dim != 0) {
    c.head_dim = r.dimension("head_dim", family.default_head_dim);
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

  // The fused layers' widths are sums of the products checked above.
  if (c.fused_projections) {
    const int64_t qkv = c.q_dim() + 2 * c.kv_dim();
    if (qkv > kMaxDimension || c.intermediate_size > kMaxDimension / 2) {
      r.fail(arch + ": qkv_proj (" + std::to_string(qkv) + " rows) or gate_up_proj (2 x " +
             std::to_string(c.intermediate_size) + " rows) is larger than " +
             std::to_string(kMaxDimension));
    }
  }

  c.rms_norm_eps = r.number("rms_norm_eps", family.default_rms_norm_eps);
  if (!(c.rms_norm_eps > 0) || !std::isfinite(c.rms_norm_eps)) {
    r.fail("\"rms_norm_eps\" must be a positive number");
  }
  c.tie_word_embeddings = r.boolean("tie_word_embeddings", family.default_tied);

  // Bias layout per family: LLaMA's attention_bias puts a bias on q, k, v
  // and o; Qwen2 always has q, k, v biases and never an o bias; Mistral has
  // none, nor has Phi-3 (their modeling code ignores these keys, and so do
  // we).
  if (llama || c.model_type == "gemma2") {
    c.attention_bias = r.boolean("attention_bias", false);
    c.o_proj_bias = c.attention_bias;
    c.mlp_bias = r.boolean("mlp_bias", false);
  } else if (qwen3 || gemma3) {
    // Qwen3's and Gemma 3's attention_bias covers q, k, v and o, as
    // LLaMA's; no MLP bias.
    c.attention_bias = r.boolean("attention_bias", false);
    c.o_proj_bias = c.attention_bias;
  } else if (c.model_type == "qwen2_moe") {
    // Qwen2MoeConfig's qkv_bias (transformers 5; 4 always had them).
    c.attention_bias = r.boolean("qkv_bias", true);
    c.o_proj_bias = false;
  } else if (qwen2) {
    c.attention_bias = true;
    c.o_proj_bias = false;
  }
  if (c.model_type == "mixtral" || c.model_type == "qwen2_moe" || c.model_type == "qwen3_moe") {
    parse_moe(config, r, &c);
  }

  // Gemma 2 reads "hidden_activation" (its files may carry a "hidden_act"
  // too, which transformers ignores for it).
  const char *act_key = gemma ? "hidden_activation" : "hidden_act";
  c.hidden_act = r.string(act_key, gemma ? "gelu_pytorch_tanh" : "silu");
  if (c.hidden_act != "silu" && c.hidden_act != "gelu_pytorch_tanh") {
    r.fail(arch + ": " + act_key + " \"" + c.hidden_act +
           "\" is not supported (silu, gelu_pytorch_tanh)");
  }
  if (gemma) {
    c.gemma_norms = true;
    c.sandwich_norms = true;
    // transformers: torch.tensor(hidden_size ** 0.5) in the weights' dtype.
    c.embed_scale = static_cast<float>(std::sqrt(static_cast<double>(c.hidden_size)));
    auto positive = [&](const char *key, double v) {
      if (!(v > 0) || !std::isfinite(v)) {
        r.fail(arch + ": \"" + key + "\" is " + std::to_string(v) + "; it must be > 0");
      }
      return v;
    };
    c.attn_scale = 1.0 / std::sqrt(positive("query_pre_attn_scalar",
                                            r.number("query_pre_attn_scalar", 256)));
    // Gemma 2's caps default on; Gemma 3's final cap defaults off, and its
    // attention (in transformers) never reads attn_logit_softcapping.
    for (const auto &[key, fallback, out] :
         {std::tuple<const char *, double, double *>{"attn_logit_softcapping", 50.0,
                                                     &c.attn_softcap},
          {"final_logit_softcapping", gemma3 ? 0.0 : 30.0, &c.final_softcap}}) {
      if (gemma3 && out == &c.attn_softcap) continue;
      // An explicit null switches the cap off.
      *out = config.contains(key) ? r.number(key, 0) : fallback;
      if (r.has(key)) positive(key, *out);
    }
    if (r.boolean("use_bidirectional_attention", false)) {
      r.fail(arch + ": use_bidirectional_attention is not supported (causal attention only)");
    }
  }

  if (gemma3) {
    parse_gemma3_rope(config, r, &c);
  } else {
    parse_rope(config, r, &c);
  }
  // transformers 5 reads "dtype" first and falls back on "torch_dtype".
  c.torch_dtype = r.string("dtype", r.string("torch_dtype", ""));

  // Sliding window: only recorded when it can take effect. Mistral windows
  // every layer (and ignores layer_types, as transformers does), and so does
  // Phi-3 when it names a window (its default is none); Qwen2 the
  // layers its layer_types call sliding_attention (transformers 5, and
  // 4.53 on), else those from max_window_layers on, and only with
  // use_sliding_window. An explicit null window is no window.
  int64_t window = 0;
  if (c.model_type == "mistral") {
    window = config.contains("sliding_window") ? r.integer("sliding_window", 0, 0, INT64_MAX) : 4096;
  } else if (c.model_type == "mixtral") {
    // Mistral's every-layer window, but none by default.
    window = r.integer("sliding_window", 0, 0, INT64_MAX);
  } else if (c.model_type == "qwen3_moe") {
    // Every layer windowed with use_sliding_window (its modeling reads no
    // layer types).
    if (r.boolean("use_sliding_window", false)) {
      window = config.contains("sliding_window") ? r.integer("sliding_window", 0, 0, INT64_MAX)
                                                 : 4096;
    }
  } else if (c.model_type == "phi3") {
    window = r.integer("sliding_window", 0, 0, INT64_MAX);
  } else if (gemma) {
    window = config.contains("sliding_window") ? r.integer("sliding_window", 0, 0, INT64_MAX) : 4096;
  } else if (qwen2 && r.boolean("use_sliding_window", false)) {
    window = config.contains("sliding_window") ? r.integer("sliding_window", 0, 0, INT64_MAX) : 4096;
  }
  if ((qwen2 || gemma) && r.has("layer_types")) {
    const auto &types = config["layer_types"];
    if (!types.is_array() || static_cast<int64_t>(types.size()) != c.num_hidden_layers) {
      r.fail("\"layer_types\" must list one type per layer (" +
             std::to_string(c.num_hidden_layers) + ")");
    }
    for (const auto &t : types) {
      const bool sliding = t == "sliding_attention";
      if (!sliding && t != "full_attention") {
        r.fail("layer type " + t.dump() + " is not supported (full_attention, sliding_attention)");
      }
      if (sliding && window == 0 && !gemma3) {
        r.fail("\"layer_types\" names sliding_attention layers but no sliding window is in "
               "effect (use_sliding_window false or sliding_window null)");
      }
      c.sliding_layers.push_back(sliding ? 1 : 0);
    }
  } else if (qwen2 && window > 0) {
    c.max_window_layers = r.integer("max_window_layers", 28, 0, INT64_MAX);
  } else if (gemma3) {
    // Gemma3TextConfig's default layer_types: every pattern-th layer full
    // (the integer transformers 4 keeps and 5 still reads).
    const int64_t pattern = r.integer("sliding_window_pattern", 6, 1, INT64_MAX);
    for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
      c.sliding_layers.push_back((l + 1) % pattern != 0 ? 1 : 0);
    }
  } else if (c.model_type == "gemma2" && window > 0) {
    // Gemma2Config's default layer_types: even layers windowed, odd ones full.
    for (int64_t l = 0; l < c.num_hidden_layers; ++l) c.sliding_layers.push_back(l % 2 == 0);
  }
  // Gemma 3's local RoPE follows the layer type, window or not.
  if (gemma3) c.local_rope_layers = c.sliding_layers;
  c.sliding_window = window < c.max_position_embeddings ? window : 0;
  if (c.sliding_window == 0) {
    c.max_window_layers = 0;
    c.sliding_layers.clear();
  }
  return c;
}

}  // namespace gptqtool
