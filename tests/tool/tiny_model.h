// A tiny LLaMA-shaped model with random weights, written as a Hugging Face
// directory (config.json + model.safetensors), for the tool's tests.
#pragma once

#include <stdlib.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "formats/safetensors.h"

namespace tinymodel {

struct TinySpec {
  int64_t vocab = 96, hidden = 64, intermediate = 128, layers = 2, heads = 4, kv_heads = 2;
  double rope_theta = 10000.0, eps = 1e-5;
  bool tied = false;
  bool qwen2 = false;  // q/k/v biases, architecture Qwen2ForCausalLM
  bool mistral = false;  // architecture MistralForCausalLM
  // Qwen3ForCausalLM: per-head q_norm / k_norm, no biases; head_dim written
  // out (Qwen3's default is 128, not hidden / heads).
  bool qwen3 = false;
  int64_t head_dim = 0;  // 0: hidden / heads
  // Architecture Phi3ForCausalLM: the same weights as the LLaMA model of
  // this spec, with q/k/v stored as one qkv_proj and gate/up as gate_up_proj.
  bool phi3 = false;
  // Architecture Gemma2ForCausalLM: norms stored as weight - 1 and doubled
  // (pre/post feed-forward), tanh GELU, embeddings scaled, scores scaled by
  // query_pre_attn_scalar and soft-capped (caps small enough to bite on
  // these weights), final logits capped; a window (sliding_window) on the
  // even layers, Gemma 2's default layer_types.
  bool gemma2 = false;
  // Architecture Gemma3ForCausalLM: Gemma 2's norms, GELU, embedding scale
  // and query_pre_attn_scalar, plus per-head q_norm / k_norm (stored as
  // weight - 1), no score cap (its attn_logit_softcapping is written and
  // must be ignored, as transformers does), sliding_window_pattern 2 (even
  // layers windowed and rotated with the local base rope_local_base_freq
  // 100), rope_scaling linear 2 on the full-attention layers.
  bool gemma3 = false;
  // Mixtures of experts: MixtralForCausalLM (block_sparse_moe.experts.E.w1 /
  // w3 / w2 of intermediate width, the router renormalizing its top-k),
  // Qwen2MoeForCausalLM (q/k/v biases, mlp.experts.E.gate_proj / up_proj /
  // down_proj of moe_intermediate, a shared expert with a sigmoid gate) and
  // Qwen3MoeForCausalLM (q/k norms, no shared expert); `experts` experts,
  // top_k per token, norm_topk_prob for the Qwens.
  bool mixtral = false, qwen2_moe = false, qwen3_moe = false;
  int64_t experts = 4, top_k = 2, moe_intermediate = 32, shared_intermediate = 48;
  bool norm_topk_prob = false;
  bool moe() const { return mixtral || qwen2_moe || qwen3_moe; }
  // Attention window (Mistral: every layer; Qwen2: use_sliding_window,
  // layers >= max_window_layers); 0 = none.
  int64_t sliding_window = 0, max_window_layers = 0;
  gptqtool::TensorDType dtype = gptqtool::TensorDType::F32;
  uint64_t seed = 7;
  // Make row 0 of every gate_proj non-negative, so asymmetric quantization
  // gives it a zero point of 0 (which checkpoint format v1 cannot store).
  bool nonnegative_gate_row = false;
};

inline uint16_t to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u += 0x7fff + ((u >> 16) & 1);
  return static_cast<uint16_t>(u >> 16);
}

inline uint16_t to_f16(float f) {
  // Good enough for test weights (normal range, round to nearest even).
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint32_t sign = (u >> 16) & 0x8000u;
  int32_t exp = static_cast<int32_t>((u >> 23) & 0xff) - 127 + 15;
  uint32_t mant = u & 0x7fffffu;
  if (exp <= 0) return static_cast<uint16_t>(sign);
  uint32_t h = sign | (static_cast<uint32_t>(exp) << 10) | (mant >> 13);
  const uint32_t rest = mant & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;
  return static_cast<uint16_t>(h);
}

inline nlohmann::json config_json(const TinySpec &s) {
  nlohmann::json c;
  c["architectures"] = {s.qwen2     ? "Qwen2ForCausalLM"
                        : s.qwen3   ? "Qwen3ForCausalLM"
                        : s.mistral ? "MistralForCausalLM"
                        : s.phi3    ? "Phi3ForCausalLM"
                        : s.gemma2  ? "Gemma2ForCausalLM"
                        : s.gemma3  ? "Gemma3ForCausalLM"
                        : s.mixtral ? "MixtralForCausalLM"
                        : s.qwen2_moe ? "Qwen2MoeForCausalLM"
                        : s.qwen3_moe ? "Qwen3MoeForCausalLM"
                                    : "LlamaForCausalLM"};
  c["model_type"] = s.qwen2     ? "qwen2"
                    : s.qwen3   ? "qwen3"
                    : s.mistral ? "mistral"
                    : s.phi3    ? "phi3"
                    : s.gemma2  ? "gemma2"
                    : s.gemma3  ? "gemma3_text"
                    : s.mixtral ? "mixtral"
                    : s.qwen2_moe ? "qwen2_moe"
                    : s.qwen3_moe ? "qwen3_moe"
                                : "llama";
  if (s.mixtral) c["num_local_experts"] = s.experts;
  if (s.qwen2_moe || s.qwen3_moe) {
    c["num_experts"] = s.experts;
    c["moe_intermediate_size"] = s.moe_intermediate;
    c["norm_topk_prob"] = s.norm_topk_prob;
  }
  if (s.moe()) c["num_experts_per_tok"] = s.top_k;
  if (s.qwen2_moe) c["shared_expert_intermediate_size"] = s.shared_intermediate;
  if (s.qwen3 || s.qwen3_moe || s.head_dim > 0) c["head_dim"] = s.head_dim > 0 ? s.head_dim : s.hidden / s.heads;
  if (s.gemma2 || s.gemma3) {
    if (!c.contains("head_dim")) c["head_dim"] = s.hidden / s.heads;  // Gemma2Config's is 256
    c["hidden_activation"] = "gelu_pytorch_tanh";
    c["query_pre_attn_scalar"] = 24;
    c["attn_logit_softcapping"] = 0.5;
    c["final_logit_softcapping"] = 2.0;
    c["sliding_window"] = s.sliding_window > 0 ? nlohmann::json(s.sliding_window) : nullptr;
  }
  if (s.gemma3) {
    c["sliding_window_pattern"] = 2;
    c["rope_local_base_freq"] = 100.0;
    c["rope_scaling"] = {{"rope_type", "linear"}, {"factor", 2.0}};
  }
  if (s.sliding_window > 0) {
    c["sliding_window"] = s.sliding_window;
    if (s.qwen2 || s.qwen3) {
      c["use_sliding_window"] = true;
      c["max_window_layers"] = s.max_window_layers;
    }
  } else if (s.mistral) {
    c["sliding_window"] = nullptr;
  }
  c["hidden_size"] = s.hidden;
  c["intermediate_size"] = s.intermediate;
  c["num_hidden_layers"] = s.layers;
  c["num_attention_heads"] = s.heads;
  c["num_key_value_heads"] = s.kv_heads;
  c["vocab_size"] = s.vocab;
  c["max_position_embeddings"] = 256;
  c["rms_norm_eps"] = s.eps;
  c["rope_theta"] = s.rope_theta;
  c["tie_word_embeddings"] = s.tied;
  c["hidden_act"] = "silu";
  c["torch_dtype"] = s.dtype == gptqtool::TensorDType::BF16  ? "bfloat16"
                     : s.dtype == gptqtool::TensorDType::F16 ? "float16"
                                                             : "float32";
  return c;
}

// Every tensor of the model as float32, by name.
inline std::vector<std::pair<std::string, std::pair<std::vector<int64_t>, std::vector<float>>>>
random_tensors(const TinySpec &s) {
  std::mt19937_64 rng(s.seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<std::pair<std::string, std::pair<std::vector<int64_t>, std::vector<float>>>> out;
  auto add = [&](const std::string &name, std::vector<int64_t> shape, float scale, float mean) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    std::vector<float> v(static_cast<size_t>(n));
    for (float &x : v) x = mean + scale * normal(rng);
    out.push_back({name, {shape, v}});
  };
  const int64_t hd = s.head_dim > 0 ? s.head_dim : s.hidden / s.heads;
  const bool gemma = s.gemma2 || s.gemma3;
  const float norm_mean = gemma ? 0.0f : 1.0f;  // Gemma stores weight - 1
  add("model.embed_tokens.weight", {s.vocab, s.hidden}, gemma ? 0.125f : 1.0f, 0.0f);
  for (int64_t i = 0; i < s.layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    const float in_scale = 1.0f / std::sqrt(static_cast<float>(s.hidden));
    add(p + "input_layernorm.weight", {s.hidden}, 0.1f, norm_mean);
    add(p + "self_attn.q_proj.weight", {s.heads * hd, s.hidden}, in_scale, 0.0f);
    add(p + "self_attn.k_proj.weight", {s.kv_heads * hd, s.hidden}, in_scale, 0.0f);
    add(p + "self_attn.v_proj.weight", {s.kv_heads * hd, s.hidden}, in_scale, 0.0f);
    if (s.qwen2 || s.qwen2_moe) {
      add(p + "self_attn.q_proj.bias", {s.heads * hd}, 0.1f, 0.0f);
      add(p + "self_attn.k_proj.bias", {s.kv_heads * hd}, 0.1f, 0.0f);
      add(p + "self_attn.v_proj.bias", {s.kv_heads * hd}, 0.1f, 0.0f);
    }
    if (s.qwen3 || s.gemma3 || s.qwen3_moe) {
      add(p + "self_attn.q_norm.weight", {hd}, 0.3f, norm_mean);
      add(p + "self_attn.k_norm.weight", {hd}, 0.3f, norm_mean);
    }
    add(p + "self_attn.o_proj.weight", {s.hidden, s.heads * hd},
        1.0f / std::sqrt(static_cast<float>(s.heads * hd)), 0.0f);
    add(p + "post_attention_layernorm.weight", {s.hidden}, 0.1f, norm_mean);
    if (gemma) {
      add(p + "pre_feedforward_layernorm.weight", {s.hidden}, 0.1f, norm_mean);
      add(p + "post_feedforward_layernorm.weight", {s.hidden}, 0.1f, norm_mean);
    }
    if (s.moe()) {
      // The router's rows scaled up so that the top-k choices are clear-cut
      // and some experts get many more tokens than others.
      const std::string moe = p + (s.mixtral ? "block_sparse_moe." : "mlp.");
      add(moe + "gate.weight", {s.experts, s.hidden}, 4.0f * in_scale, 0.0f);
      const int64_t width = s.mixtral ? s.intermediate : s.moe_intermediate;
      for (int64_t e = 0; e < s.experts; ++e) {
        const std::string x = moe + "experts." + std::to_string(e) + ".";
        const float down_scale = 1.0f / std::sqrt(static_cast<float>(width));
        add(x + (s.mixtral ? "w1" : "gate_proj") + ".weight", {width, s.hidden}, in_scale, 0.0f);
        add(x + (s.mixtral ? "w3" : "up_proj") + ".weight", {width, s.hidden}, in_scale, 0.0f);
        add(x + (s.mixtral ? "w2" : "down_proj") + ".weight", {s.hidden, width}, down_scale, 0.0f);
      }
      if (s.qwen2_moe) {
        const int64_t w = s.shared_intermediate;
        add(p + "mlp.shared_expert.gate_proj.weight", {w, s.hidden}, in_scale, 0.0f);
        add(p + "mlp.shared_expert.up_proj.weight", {w, s.hidden}, in_scale, 0.0f);
        add(p + "mlp.shared_expert.down_proj.weight", {s.hidden, w},
            1.0f / std::sqrt(static_cast<float>(w)), 0.0f);
        add(p + "mlp.shared_expert_gate.weight", {1, s.hidden}, in_scale, 0.0f);
      }
      continue;
    }
    add(p + "mlp.gate_proj.weight", {s.intermediate, s.hidden}, in_scale, 0.0f);
    if (s.nonnegative_gate_row) {
      std::vector<float> &g = out.back().second.second;
      for (int64_t j = 0; j < s.hidden; ++j) g[j] = std::fabs(g[j]);
    }
    add(p + "mlp.up_proj.weight", {s.intermediate, s.hidden}, in_scale, 0.0f);
    add(p + "mlp.down_proj.weight", {s.hidden, s.intermediate},
        1.0f / std::sqrt(static_cast<float>(s.intermediate)), 0.0f);
  }
  add("model.norm.weight", {s.hidden}, 0.1f, norm_mean);
  if (!s.tied) add("lm_head.weight", {s.vocab, s.hidden}, 1.0f / 8.0f, 0.0f);
  if (s.phi3) {
    // Rows of the fused layers are the separate layers' rows, stacked.
    auto fuse = [&](const std::string &fused, std::vector<std::string> parts) {
      std::vector<float> rows;
      int64_t count = 0, in = 0;
      for (const std::string &part : parts) {
        auto it = std::find_if(out.begin(), out.end(), [&](const auto &t) { return t.first == part; });
        count += it->second.first[0];
        in = it->second.first[1];
        rows.insert(rows.end(), it->second.second.begin(), it->second.second.end());
        out.erase(it);
      }
      out.push_back({fused, {{count, in}, rows}});
    };
    for (int64_t i = 0; i < s.layers; ++i) {
      const std::string p = "model.layers." + std::to_string(i) + ".";
      fuse(p + "self_attn.qkv_proj.weight",
           {p + "self_attn.q_proj.weight", p + "self_attn.k_proj.weight",
            p + "self_attn.v_proj.weight"});
      fuse(p + "mlp.gate_up_proj.weight", {p + "mlp.gate_proj.weight", p + "mlp.up_proj.weight"});
    }
  }
  return out;
}

inline std::string make_temp_dir(const std::string &tag) {
  std::string templ = (std::filesystem::temp_directory_path() / ("gptqtool-" + tag + "-XXXXXX")).string();
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  return buf.data();
}

inline void write_json(const std::string &path, const nlohmann::json &j) {
  std::ofstream(path) << j.dump(2);
}

// Writes the model into dir (created if needed); returns the tensors.
inline void write_model(const std::string &dir, const TinySpec &s) {
  std::filesystem::create_directories(dir);
  write_json(dir + "/config.json", config_json(s));
  gptqtool::SafetensorsWriter w;
  for (const auto &t : random_tensors(s)) {
    const std::vector<float> &v = t.second.second;
    std::vector<uint8_t> bytes;
    if (s.dtype == gptqtool::TensorDType::F32) {
      bytes.resize(v.size() * 4);
      std::memcpy(bytes.data(), v.data(), bytes.size());
    } else {
      bytes.resize(v.size() * 2);
      for (size_t i = 0; i < v.size(); ++i) {
        const uint16_t h = s.dtype == gptqtool::TensorDType::BF16 ? to_bf16(v[i]) : to_f16(v[i]);
        std::memcpy(&bytes[i * 2], &h, 2);
      }
    }
    w.add(t.first, s.dtype, t.second.first, bytes);
  }
  w.write(dir + "/model.safetensors");
}

// The byte-level alphabet of GPT-2-style tokenizers: printable bytes stand
// for themselves, the others for the code points from U+0100 up, in order.
inline std::string byte_level_char(int byte) {
  int cp = byte;
  const bool printable = (byte >= 33 && byte <= 126) || (byte >= 161 && byte <= 172) ||
                         (byte >= 174 && byte <= 255);
  if (!printable) {
    int n = 0;
    for (int b = 0; b < byte; ++b) {
      if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255))) ++n;
    }
    cp = 256 + n;
  }
  std::string out;
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return out;
}

// Special tokens of the tiny chat model, after its 256 byte tokens.
constexpr int32_t kImStart = 256, kImEnd = 257, kEndOfText = 258;
constexpr int64_t kChatVocab = 264;

// A byte-level BPE tokenizer.json without merges: every byte is a token
// (id = the byte), plus the special tokens above. Text round-trips exactly,
// and any multi-byte character is split over several tokens.
inline nlohmann::json byte_tokenizer_json() {
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_level_char(b)] = b;
  nlohmann::json added = nlohmann::json::array();
  const char *specials[] = {"<|im_start|>", "<|im_end|>", "<|endoftext|>"};
  for (int i = 0; i < 3; ++i) {
    vocab[specials[i]] = 256 + i;
    added.push_back({{"id", 256 + i}, {"content", specials[i]}, {"single_word", false},
                     {"lstrip", false}, {"rstrip", false}, {"normalized", false},
                     {"special", true}});
  }
  nlohmann::json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false},
                               {"trim_offsets", true}, {"use_regex", true}};
  return {{"version", "1.0"}, {"truncation", nullptr}, {"padding", nullptr},
          {"added_tokens", added}, {"normalizer", nullptr}, {"pre_tokenizer", byte_level},
          {"post_processor", nullptr}, {"decoder", byte_level},
          {"model", {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr},
                     {"continuing_subword_prefix", nullptr}, {"end_of_word_suffix", nullptr},
                     {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", false},
                     {"vocab", vocab}, {"merges", nlohmann::json::array()}}}};
}

// A tiny model that can be talked to: a random LLaMA with the byte
// tokenizer, a ChatML chat template with a default system message, and
// <|im_end|> as its end of sequence.
inline void write_chat_model(const std::string &dir, TinySpec s = {}) {
  s.vocab = kChatVocab;
  write_model(dir, s);
  nlohmann::json c = config_json(s);
  c["eos_token_id"] = kImEnd;
  write_json(dir + "/config.json", c);
  write_json(dir + "/tokenizer.json", byte_tokenizer_json());
  write_json(dir + "/tokenizer_config.json",
             {{"bos_token", "<|im_start|>"}, {"eos_token", "<|im_end|>"},
              {"chat_template",
               "{% for message in messages %}{% if loop.first and messages[0]['role'] != "
               "'system' %}{{ '<|im_start|>system\nYou are tiny.<|im_end|>\n' }}{% endif %}"
               "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
               "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ "
               "'<|im_start|>assistant\n' }}{% endif %}"}});
}

}  // namespace tinymodel
