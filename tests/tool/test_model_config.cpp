// config.json as transformers 4 and transformers 5 write it, for LLaMA,
// Mistral, Qwen2, Phi-3 and Gemma 2 models of real shapes and RoPE types (data/configs,
// made by make_fixtures.py there): both must read as the same model, and
// RoPE's frequencies and attention factor must be those transformers' own
// functions compute. transformers 5 moved rope_theta into "rope_parameters";
// reading only the top-level key ran every such model with theta 10000.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/tool_error.h"
#include "model/llama_model.h"
#include "model/model_config.h"
#include "model/rope.h"

#ifndef GPTQ_TOOL_DATA_DIR
#error "define GPTQ_TOOL_DATA_DIR as the path of tests/tool/data"
#endif

namespace {

using gptqtool::LlamaConfig;
using gptqtool::ToolError;
using nlohmann::json;

const std::string kDir = std::string(GPTQ_TOOL_DATA_DIR) + "/configs/";

json read(const std::string &path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path);
  return json::parse(in);
}

const json &expected() {
  static const json e = read(kDir + "expected.json");
  return e;
}

LlamaConfig parse(const json &j) { return gptqtool::parse_llama_config(j, "config.json"); }

std::string error_of(const json &j) {
  try {
    parse(j);
  } catch (const ToolError &e) {
    return e.what();
  }
  return "no error";
}

// Every field the forward pass reads.
void expect_same(const LlamaConfig &a, const LlamaConfig &b, const std::string &what) {
  EXPECT_EQ(a.architecture, b.architecture) << what;
  EXPECT_EQ(a.fused_projections, b.fused_projections) << what;
  EXPECT_EQ(a.gemma_norms, b.gemma_norms) << what;
  EXPECT_EQ(a.sandwich_norms, b.sandwich_norms) << what;
  EXPECT_EQ(a.embed_scale, b.embed_scale) << what;
  EXPECT_EQ(a.attn_scale, b.attn_scale) << what;
  EXPECT_EQ(a.attn_softcap, b.attn_softcap) << what;
  EXPECT_EQ(a.final_softcap, b.final_softcap) << what;
  EXPECT_EQ(a.hidden_size, b.hidden_size) << what;
  EXPECT_EQ(a.intermediate_size, b.intermediate_size) << what;
  EXPECT_EQ(a.num_hidden_layers, b.num_hidden_layers) << what;
  EXPECT_EQ(a.num_attention_heads, b.num_attention_heads) << what;
  EXPECT_EQ(a.num_key_value_heads, b.num_key_value_heads) << what;
  EXPECT_EQ(a.head_dim, b.head_dim) << what;
  EXPECT_EQ(a.vocab_size, b.vocab_size) << what;
  EXPECT_EQ(a.max_position_embeddings, b.max_position_embeddings) << what;
  EXPECT_EQ(a.rms_norm_eps, b.rms_norm_eps) << what;
  EXPECT_EQ(a.tie_word_embeddings, b.tie_word_embeddings) << what;
  EXPECT_EQ(a.attention_bias, b.attention_bias) << what;
  EXPECT_EQ(a.o_proj_bias, b.o_proj_bias) << what;
  EXPECT_EQ(a.mlp_bias, b.mlp_bias) << what;
  EXPECT_EQ(a.hidden_act, b.hidden_act) << what;
  EXPECT_EQ(a.rope_type, b.rope_type) << what;
  EXPECT_EQ(a.rope_theta, b.rope_theta) << what;
  EXPECT_EQ(a.rope_factor, b.rope_factor) << what;
  EXPECT_EQ(a.rope_low_freq_factor, b.rope_low_freq_factor) << what;
  EXPECT_EQ(a.rope_high_freq_factor, b.rope_high_freq_factor) << what;
  EXPECT_EQ(a.rope_original_max_pos, b.rope_original_max_pos) << what;
  EXPECT_EQ(a.rope_attention_factor, b.rope_attention_factor) << what;
  EXPECT_EQ(a.rope_beta_fast, b.rope_beta_fast) << what;
  EXPECT_EQ(a.rope_beta_slow, b.rope_beta_slow) << what;
  EXPECT_EQ(a.rope_truncate, b.rope_truncate) << what;
  for (int64_t l = 0; l < a.num_hidden_layers; ++l) {
    EXPECT_EQ(gptqtool::block_sliding_window(a, l), gptqtool::block_sliding_window(b, l))
        << what << " layer " << l;
  }
}

// Our frequencies against transformers' float32 ones: a few float32 roundings apart
// (its llama3 and yarn blends round after each step).
void expect_frequencies(const std::vector<double> &got, const json &want, const std::string &what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    const double w = want[i].get<double>();
    EXPECT_NEAR(got[i], w, 1e-6 * std::fabs(w)) << what << " inv_freq[" << i << "]";
  }
}

class Fixture : public ::testing::TestWithParam<std::string> {};

TEST_P(Fixture, Transformers4And5FilesReadAsTheSameModelWithTransformersRope) {
  const std::string name = GetParam();
  const json &want = expected()["cases"][name];
  const LlamaConfig tf4 = parse(read(kDir + "tf4/" + name + ".json"));
  const LlamaConfig tf5 = parse(read(kDir + "tf5/" + name + ".json"));
  expect_same(tf4, tf5, name);
  for (const LlamaConfig *c : {&tf4, &tf5}) {
    const std::string what = name + (c == &tf4 ? " (transformers 4)" : " (transformers 5)");
    EXPECT_EQ(c->rope_type, want["rope_type"].get<std::string>()) << what;
    EXPECT_EQ(c->rope_theta, want["rope_theta"].get<double>()) << what;
    EXPECT_EQ(c->head_dim, want["head_dim"].get<int64_t>()) << what;
    const gptqtool::RopeFrequencies f = gptqtool::rope_frequencies(*c, c->max_position_embeddings);
    expect_frequencies(f.inv_freq, want["inv_freq"], what);
    EXPECT_NEAR(f.attention_scaling, want["attention_factor"].get<double>(), 1e-12) << what;
    if (want.contains("grown")) {
      const auto seq_len = want["grown"]["seq_len"].get<int64_t>();
      expect_frequencies(gptqtool::rope_frequencies(*c, seq_len).inv_freq,
                         want["grown"]["inv_freq"], what + " past max_position_embeddings");
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Configs, Fixture,
                         ::testing::Values("llama_smollm2", "llama_llama3", "llama_linear",
                                           "llama_dynamic", "llama_yarn_mscale",
                                           "llama_yarn_untruncated", "mistral_v01", "mistral_v03",
                                           "qwen2_5", "qwen2_5_yarn", "qwen2_window",
                                           "phi3_mini_4k", "gemma2_2b"));

TEST(Fixtures, EveryCaseIsTested) { EXPECT_EQ(expected()["cases"].size(), 13u); }

// What each family's file says besides RoPE, as transformers reads it.
TEST(Fixtures, FamilyDetails) {
  const LlamaConfig smollm = parse(read(kDir + "tf5/llama_smollm2.json"));
  EXPECT_EQ(smollm.rope_theta, 100000.0);  // read 10000 before rope_parameters was read
  EXPECT_TRUE(smollm.tie_word_embeddings);
  const LlamaConfig m1 = parse(read(kDir + "tf5/mistral_v01.json"));
  EXPECT_EQ(gptqtool::block_sliding_window(m1, 0), 4096);
  EXPECT_EQ(m1.num_key_value_heads, 8);
  const LlamaConfig m3 = parse(read(kDir + "tf4/mistral_v03.json"));
  EXPECT_EQ(gptqtool::block_sliding_window(m3, 31), 0);
  EXPECT_EQ(m3.rope_theta, 1e6);
  const LlamaConfig q = parse(read(kDir + "tf5/qwen2_window.json"));
  EXPECT_TRUE(q.attention_bias);
  EXPECT_EQ(gptqtool::block_sliding_window(q, 1), 0);
  EXPECT_EQ(gptqtool::block_sliding_window(q, 2), 1024);
  const LlamaConfig y = parse(read(kDir + "tf4/qwen2_5_yarn.json"));
  EXPECT_EQ(y.rope_factor, 4.0);  // the explicit factor, as transformers 4.57 and 5 use it
  EXPECT_EQ(y.rope_original_max_pos, 32768);
  const LlamaConfig phi = parse(read(kDir + "tf5/phi3_mini_4k.json"));
  EXPECT_TRUE(phi.fused_projections);
  EXPECT_FALSE(phi.attention_bias || phi.o_proj_bias || phi.mlp_bias);
  EXPECT_EQ(gptqtool::block_sliding_window(phi, 0), 2047);
  EXPECT_EQ(gptqtool::block_sliding_window(phi, 31), 2047);
  EXPECT_EQ(phi.rms_norm_eps, 1e-5);
  const LlamaConfig g = parse(read(kDir + "tf4/gemma2_2b.json"));
  EXPECT_EQ(g.head_dim, 256);
  EXPECT_EQ(g.hidden_act, "gelu_pytorch_tanh");
  EXPECT_TRUE(g.gemma_norms && g.sandwich_norms && g.tie_word_embeddings);
  EXPECT_EQ(g.embed_scale, static_cast<float>(std::sqrt(2304.0)));
  EXPECT_EQ(g.attn_scale, 1.0 / 16.0);
  EXPECT_EQ(g.attn_softcap, 50.0);
  EXPECT_EQ(g.final_softcap, 30.0);
  EXPECT_EQ(gptqtool::block_sliding_window(g, 0), 4096);
  EXPECT_EQ(gptqtool::block_sliding_window(g, 25), 0);
}

json llama() {
  return json{{"architectures", {"LlamaForCausalLM"}},
              {"model_type", "llama"},
              {"hidden_size", 64},
              {"intermediate_size", 128},
              {"num_hidden_layers", 2},
              {"num_attention_heads", 4},
              {"vocab_size", 100},
              {"max_position_embeddings", 4096}};
}

TEST(RopeConfig, WhereThetaAndParametersComeFrom) {
  json j = llama();
  EXPECT_EQ(parse(j).rope_theta, 10000.0);  // transformers' default_theta
  j["rope_theta"] = 5e5;
  EXPECT_EQ(parse(j).rope_theta, 5e5);
  j["rope_parameters"] = {{"rope_type", "default"}};  // theta from the top level
  EXPECT_EQ(parse(j).rope_theta, 5e5);
  j["rope_parameters"]["rope_theta"] = 5e5;
  EXPECT_EQ(parse(j).rope_theta, 5e5);
  j["rope_parameters"]["rope_theta"] = 1e6;
  EXPECT_NE(error_of(j).find("\"rope_parameters\".rope_theta and \"rope_theta\" disagree"),
            std::string::npos);
  j.erase("rope_theta");
  EXPECT_EQ(parse(j).rope_theta, 1e6);
  // rope_scaling wins over rope_parameters in both versions.
  j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
  EXPECT_EQ(parse(j).rope_type, "linear");
  EXPECT_EQ(parse(j).rope_theta, 10000.0);
  j["rope_scaling"] = json::object();  // empty: absent
  EXPECT_EQ(parse(j).rope_type, "default");
  EXPECT_EQ(parse(j).rope_theta, 1e6);
  j["rope_scaling"] = nullptr;
  j["rope_parameters"] = {{"rope_type", "yarn"}, {"rope_theta", 1e4}, {"factor", 4.0}};
  const LlamaConfig y = parse(j);
  EXPECT_EQ(y.rope_original_max_pos, 4096);  // max_position_embeddings by default
  EXPECT_NEAR(y.rope_attention_factor, 0.1 * std::log(4.0) + 1.0, 1e-15);
  j["original_max_position_embeddings"] = 1024;  // the top-level key comes first
  EXPECT_EQ(parse(j).rope_original_max_pos, 1024);
  j["rope_parameters"]["original_max_position_embeddings"] = 2048;
  EXPECT_NE(error_of(j).find("disagree"), std::string::npos);
  j.erase("original_max_position_embeddings");
  j["rope_parameters"].erase("factor");  // yarn: the ratio of the lengths
  EXPECT_EQ(parse(j).rope_factor, 2.0);
}

TEST(RopeConfig, UnsupportedRopeIsRefusedByName) {
  json j = llama();
  j["rope_parameters"] = {{"rope_type", "longrope"}, {"short_factor", {1.0}}};
  EXPECT_NE(error_of(j).find("RoPE type \"longrope\" is not supported"), std::string::npos);
  j["rope_parameters"] = {{"rope_type", "proportional"}};
  EXPECT_NE(error_of(j).find("RoPE type \"proportional\""), std::string::npos);
  j["rope_parameters"] = {{"rope_type", "linear"}, {"type", "dynamic"}, {"factor", 2.0}};
  EXPECT_NE(error_of(j).find("disagree"), std::string::npos);
  j["rope_parameters"] = {{"rope_type", "default"}, {"partial_rotary_factor", 0.5}};
  EXPECT_NE(error_of(j).find("partial_rotary_factor 0.500000 is not supported"),
            std::string::npos);
  j["rope_parameters"] = {{"rope_type", "default"}, {"partial_rotary_factor", 1.0}};
  EXPECT_EQ(error_of(j), "no error");
  j["rope_parameters"] = nullptr;
  j["partial_rotary_factor"] = 0.25;
  EXPECT_NE(error_of(j).find("partial_rotary_factor"), std::string::npos);
  j.erase("partial_rotary_factor");
  j["rope_parameters"] = {{"full_attention", {{"rope_type", "default"}}},
                          {"sliding_attention", {{"rope_type", "default"}}}};
  EXPECT_NE(error_of(j).find("per layer type are not supported"), std::string::npos);
  j["rope_parameters"] = {{"rope_type", "dynamic"}};
  EXPECT_NE(error_of(j).find("RoPE of type dynamic has no \"rope_parameters\".factor"),
            std::string::npos);
  j["rope_parameters"] = "default";
  EXPECT_NE(error_of(j).find("not an object"), std::string::npos);
}

// The attention factor of yarn multiplies cos and sin: a rotation by
// position 0 scales a vector by it.
TEST(RopeConfig, YarnAttentionFactorScalesTheRotation) {
  json j = llama();
  j["rope_parameters"] = {{"rope_type", "yarn"}, {"factor", 8.0}, {"attention_factor", 1.5},
                          {"original_max_position_embeddings", 512}};
  const LlamaConfig c = parse(j);
  const gptqtool::Rope rope(c, 4);
  std::vector<float> x(static_cast<size_t>(c.head_dim), 1.0f);
  rope.apply(x.data(), 1, 1, 0);
  for (float v : x) EXPECT_FLOAT_EQ(v, 1.5f);
}

}  // namespace

namespace {

json family(const char *arch, const char *type) {
  json j = llama();
  j["architectures"] = {arch};
  j["model_type"] = type;
  return j;
}

// A key a config leaves out means what transformers' config class makes of
// it, per family: num_key_value_heads defaults to 8 in MistralConfig and
// to 32 in Qwen2Config (an explicit null to num_attention_heads).
TEST(ConfigDefaults, KeyValueHeadsPerFamily) {
  json j = family("MistralForCausalLM", "mistral");
  j["num_attention_heads"] = 16;
  EXPECT_EQ(parse(j).num_key_value_heads, 8);
  j["num_key_value_heads"] = nullptr;
  EXPECT_EQ(parse(j).num_key_value_heads, 16);
  j = family("Qwen2ForCausalLM", "qwen2");
  j["num_attention_heads"] = 64;
  j["hidden_size"] = 4096;
  EXPECT_EQ(parse(j).num_key_value_heads, 32);
  j["num_key_value_heads"] = nullptr;
  EXPECT_EQ(parse(j).num_key_value_heads, 64);
  j = llama();
  EXPECT_EQ(parse(j).num_key_value_heads, 4);
}

// Phi3Config's own defaults: rms_norm_eps 1e-5 (LLaMA's is 1e-6), no
// window unless one is named, num_key_value_heads = num_attention_heads.
// Its long-context RoPE (longrope, or the older "su") and partial rotary
// embeddings (Phi-4-mini) are refused by name.
TEST(ConfigDefaults, Phi3) {
  json j = family("Phi3ForCausalLM", "phi3");
  LlamaConfig c = parse(j);
  EXPECT_TRUE(c.fused_projections);
  EXPECT_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_EQ(c.num_key_value_heads, 4);
  EXPECT_EQ(gptqtool::block_sliding_window(c, 1), 0);
  int64_t out = 0, in = 0;
  gptqtool::slot_shape(c, gptqtool::LinearSlot::Qkv, &out, &in);
  EXPECT_EQ(out, 3 * 64);
  gptqtool::slot_shape(c, gptqtool::LinearSlot::GateUp, &out, &in);
  EXPECT_EQ(out, 2 * 128);
  EXPECT_EQ(gptqtool::block_slots(c).size(), 4u);
  EXPECT_EQ(gptqtool::linear_name(0, gptqtool::block_slots(c)[0]),
            "model.layers.0.self_attn.qkv_proj");
  EXPECT_EQ(parse(llama()).rms_norm_eps, 1e-6);
  j["sliding_window"] = 100;
  EXPECT_EQ(gptqtool::block_sliding_window(parse(j), 1), 100);
  j["rope_scaling"] = {{"type", "longrope"}, {"short_factor", {1.0}}, {"long_factor", {1.0}}};
  EXPECT_NE(error_of(j).find("RoPE type \"longrope\" is not supported"), std::string::npos);
  j["rope_scaling"] = {{"type", "su"}, {"short_factor", {1.0}}, {"long_factor", {1.0}}};
  EXPECT_NE(error_of(j).find("RoPE type \"su\" is not supported"), std::string::npos);
  j["rope_scaling"] = nullptr;
  j["partial_rotary_factor"] = 0.75;
  EXPECT_NE(error_of(j).find("partial_rotary_factor 0.750000 is not supported"), std::string::npos);
  // The fused widths are bounded like every other dimension.
  j.erase("partial_rotary_factor");
  j["intermediate_size"] = int64_t{1} << 30;
  EXPECT_NE(error_of(j).find("gate_up_proj"), std::string::npos);
}

// Gemma2Config's own defaults where a file leaves keys out: head_dim 256,
// 4 KV heads, tied embeddings, tanh GELU (read from hidden_activation; a
// "hidden_act" is ignored, as transformers ignores it), query_pre_attn_scalar
// 256, caps 50 and 30 (an explicit null switches one off), a 4096 window on
// the even layers.
TEST(ConfigDefaults, Gemma2) {
  json j = family("Gemma2ForCausalLM", "gemma2");
  j["num_hidden_layers"] = 4;
  j["num_attention_heads"] = 8;
  j["max_position_embeddings"] = 8192;  // a window only counts when shorter
  j["hidden_act"] = "relu";
  LlamaConfig c = parse(j);
  EXPECT_EQ(c.head_dim, 256);
  EXPECT_EQ(c.num_key_value_heads, 4);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.hidden_act, "gelu_pytorch_tanh");
  EXPECT_EQ(c.attn_scale, 1.0 / 16.0);
  EXPECT_EQ(c.attn_softcap, 50.0);
  EXPECT_EQ(c.final_softcap, 30.0);
  EXPECT_EQ(c.embed_scale, 8.0f);
  const int64_t want[] = {4096, 0, 4096, 0};
  for (int l = 0; l < 4; ++l) EXPECT_EQ(gptqtool::block_sliding_window(c, l), want[l]) << l;
  j["attn_logit_softcapping"] = nullptr;
  j["final_logit_softcapping"] = nullptr;
  j["sliding_window"] = nullptr;
  c = parse(j);
  EXPECT_EQ(c.attn_softcap, 0.0);
  EXPECT_EQ(c.final_softcap, 0.0);
  EXPECT_EQ(gptqtool::block_sliding_window(c, 0), 0);
  j["hidden_activation"] = "gelu";
  EXPECT_NE(error_of(j).find("hidden_activation \"gelu\" is not supported"), std::string::npos);
  j["hidden_activation"] = "gelu_pytorch_tanh";
  j["use_bidirectional_attention"] = true;
  EXPECT_NE(error_of(j).find("use_bidirectional_attention"), std::string::npos);
  j["use_bidirectional_attention"] = false;
  j["final_logit_softcapping"] = -1.0;
  EXPECT_NE(error_of(j).find("final_logit_softcapping"), std::string::npos);
  // A LLaMA may use tanh GELU too (its MLP takes any of transformers' acts).
  json l = llama();
  l["hidden_act"] = "gelu_pytorch_tanh";
  EXPECT_EQ(parse(l).hidden_act, "gelu_pytorch_tanh");
  l["hidden_act"] = "relu";
  EXPECT_NE(error_of(l).find("hidden_act \"relu\" is not supported"), std::string::npos);
}

// Gemma 3 as transformers 4 writes it (rope_theta, rope_local_base_freq,
// rope_scaling, sliding_window_pattern) and as transformers 5 saves the same
// config (rope_parameters per layer type, layer_types): the same model, with
// every 6th layer full attention on the scaled global RoPE and the others
// windowed on the local base; q/k norms, no score cap, no final cap.
TEST(ConfigDefaults, Gemma3) {
  const LlamaConfig a = parse(read(kDir + "gemma3/gemma3_4b_text_tf4.json"));
  const LlamaConfig b = parse(read(kDir + "gemma3/gemma3_4b_text_tf5.json"));
  expect_same(a, b, "gemma3");
  for (const LlamaConfig *c : {&a, &b}) {
    EXPECT_TRUE(c->qk_norm && c->gemma_norms && c->sandwich_norms && c->tie_word_embeddings);
    EXPECT_EQ(c->rope_type, "linear");
    EXPECT_EQ(c->rope_factor, 8.0);
    EXPECT_EQ(c->rope_theta, 1e6);
    EXPECT_EQ(c->rope_local_theta, 1e4);
    EXPECT_EQ(c->attn_softcap, 0.0);
    EXPECT_EQ(c->final_softcap, 0.0);
    EXPECT_EQ(c->attn_scale, 1.0 / 16.0);
    EXPECT_EQ(c->local_rope_layers, c->sliding_layers);
    ASSERT_EQ(c->local_rope_layers.size(), 34u);
    for (int64_t l = 0; l < 34; ++l) {
      const bool local = (l + 1) % 6 != 0;
      EXPECT_EQ(c->local_rope_layers[static_cast<size_t>(l)], local ? 1 : 0) << l;
      EXPECT_EQ(gptqtool::block_sliding_window(*c, l), local ? 1024 : 0) << l;
    }
  }
  // The local table is the default RoPE at its own base; the global one is
  // scaled.
  const gptqtool::Rope rope(a, 4);
  EXPECT_NE(&rope.for_layer(true), &rope);
  EXPECT_EQ(&rope.for_layer(false), &rope);

  // Gemma3TextConfig's defaults: no window pattern given means 6; no RoPE
  // keys mean thetas 1e6 and 1e4; a window longer than the model applies
  // nowhere but the local RoPE still follows the layer types.
  json j = family("Gemma3ForCausalLM", "gemma3_text");
  j["num_hidden_layers"] = 7;
  j["num_attention_heads"] = 8;
  j["max_position_embeddings"] = 1024;
  j["attn_logit_softcapping"] = 50.0;  // transformers' Gemma 3 never caps scores
  LlamaConfig c = parse(j);
  EXPECT_EQ(c.head_dim, 256);
  EXPECT_EQ(c.num_key_value_heads, 4);
  EXPECT_EQ(c.rope_theta, 1e6);
  EXPECT_EQ(c.rope_local_theta, 1e4);
  EXPECT_EQ(c.rope_type, "default");
  EXPECT_EQ(c.attn_softcap, 0.0);
  EXPECT_EQ(gptqtool::block_sliding_window(c, 0), 0);  // 4096 >= 1024 positions
  EXPECT_EQ(c.local_rope_layers, (std::vector<uint8_t>{1, 1, 1, 1, 1, 0, 1}));
  j["final_logit_softcapping"] = 30.0;
  j["sliding_window"] = 512;
  j["sliding_window_pattern"] = 2;
  c = parse(j);
  EXPECT_EQ(c.final_softcap, 30.0);
  EXPECT_EQ(gptqtool::block_sliding_window(c, 0), 512);
  EXPECT_EQ(gptqtool::block_sliding_window(c, 1), 0);
  // What is refused, by name.
  json bad = j;
  bad["rope_parameters"] = {{"full_attention", {{"rope_type", "default"}}},
                            {"sliding_attention", {{"rope_type", "linear"}, {"factor", 2.0}}}};
  EXPECT_NE(error_of(bad).find("sliding_attention layers is not supported"), std::string::npos);
  bad["rope_parameters"] = {{"full_attention", {{"rope_type", "default"}}},
                            {"chunked_attention", {{"rope_type", "default"}}}};
  EXPECT_NE(error_of(bad).find("chunked_attention"), std::string::npos);
  json vlm = j;
  vlm["architectures"] = {"Gemma3ForConditionalGeneration"};
  vlm["model_type"] = "gemma3";
  EXPECT_NE(error_of(vlm).find("Gemma3ForConditionalGeneration (model_type \"gemma3\") is Gemma 3 "
                               "with its vision tower"),
            std::string::npos);
  vlm.erase("architectures");
  EXPECT_NE(error_of(vlm).find("only the text-only Gemma3ForCausalLM"), std::string::npos);
}

// The mixtures' config classes' defaults and keys: Mixtral (8 experts, top
// 2, renormalized, experts of intermediate_size, no window by default),
// Qwen2-MoE (60 experts, top 4, moe_intermediate_size 1408, shared expert
// 5632, qkv_bias), Qwen3-MoE (128 experts, top 8, 768, q/k norms, the
// count under either key); decoder_sparse_step and mlp_only_layers that
// would make some blocks dense are refused by name.
TEST(ConfigDefaults, MixturesOfExperts) {
  json m = family("MixtralForCausalLM", "mixtral");
  m["num_key_value_heads"] = 2;
  LlamaConfig c = parse(m);
  EXPECT_TRUE(c.moe());
  EXPECT_EQ(c.num_experts, 8);
  EXPECT_EQ(c.num_experts_per_tok, 2);
  EXPECT_EQ(c.expert_intermediate_size, 128);
  EXPECT_TRUE(c.norm_topk_prob && c.mixtral_names);
  EXPECT_EQ(c.shared_expert_intermediate_size, 0);
  EXPECT_EQ(gptqtool::block_sliding_window(c, 0), 0);
  EXPECT_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_EQ(gptqtool::linear_name(c, 3, gptqtool::LinearId(gptqtool::LinearSlot::Up, 5)),
            "model.layers.3.block_sparse_moe.experts.5.w3");
  EXPECT_EQ(gptqtool::router_name(c, 3), "model.layers.3.block_sparse_moe.gate");
  EXPECT_EQ(gptqtool::block_linears(c).size(), 4u + 8u * 3u);
  m["num_experts"] = 4;  // transformers' alias
  m.erase("num_local_experts");
  EXPECT_EQ(parse(m).num_experts, 4);
  m["num_local_experts"] = 8;
  EXPECT_NE(error_of(m).find("\"num_local_experts\" and \"num_experts\" disagree"),
            std::string::npos);
  m.erase("num_experts");
  m["num_experts_per_tok"] = 9;
  EXPECT_NE(error_of(m).find("num_experts_per_tok 9 is more than the 8 experts"),
            std::string::npos);
  m["num_experts_per_tok"] = 2;
  m["sliding_window"] = 64;
  EXPECT_EQ(gptqtool::block_sliding_window(parse(m), 1), 64);

  json q = family("Qwen2MoeForCausalLM", "qwen2_moe");
  q["num_key_value_heads"] = 2;
  c = parse(q);
  EXPECT_EQ(c.num_experts, 60);
  EXPECT_EQ(c.num_experts_per_tok, 4);
  EXPECT_EQ(c.expert_intermediate_size, 1408);
  EXPECT_EQ(c.shared_expert_intermediate_size, 5632);
  EXPECT_FALSE(c.norm_topk_prob || c.mixtral_names || c.qk_norm);
  EXPECT_TRUE(c.attention_bias);
  EXPECT_FALSE(c.o_proj_bias);
  EXPECT_EQ(gptqtool::linear_name(c, 0, gptqtool::LinearId(gptqtool::LinearSlot::Down, 59)),
            "model.layers.0.mlp.experts.59.down_proj");
  EXPECT_EQ(gptqtool::linear_name(c, 0, gptqtool::LinearSlot::SharedUp),
            "model.layers.0.mlp.shared_expert.up_proj");
  EXPECT_EQ(gptqtool::block_linears(c).size(), 7u + 60u * 3u);
  q["qkv_bias"] = false;
  EXPECT_FALSE(parse(q).attention_bias);
  q["decoder_sparse_step"] = 2;
  EXPECT_NE(error_of(q).find("decoder_sparse_step 2 is not supported"), std::string::npos);
  q["decoder_sparse_step"] = 1;
  q["mlp_only_layers"] = {1};
  EXPECT_NE(error_of(q).find("mlp_only_layers [1] is not supported"), std::string::npos);
  q["mlp_only_layers"] = json::array();
  EXPECT_NO_THROW(parse(q));

  json t = family("Qwen3MoeForCausalLM", "qwen3_moe");
  t["num_key_value_heads"] = 2;
  c = parse(t);
  EXPECT_EQ(c.num_experts, 128);
  EXPECT_EQ(c.num_experts_per_tok, 8);
  EXPECT_EQ(c.expert_intermediate_size, 768);
  EXPECT_TRUE(c.qk_norm);
  EXPECT_EQ(c.head_dim, 16);  // hidden / heads: Qwen3MoeConfig has no head_dim default
  EXPECT_FALSE(c.norm_topk_prob);
  t["num_local_experts"] = 16;  // as transformers 5 writes it
  t["norm_topk_prob"] = true;
  t["use_sliding_window"] = true;
  t["sliding_window"] = 32;
  c = parse(t);
  EXPECT_EQ(c.num_experts, 16);
  EXPECT_TRUE(c.norm_topk_prob);
  EXPECT_EQ(gptqtool::block_sliding_window(c, 0), 32);
  EXPECT_EQ(gptqtool::block_sliding_window(c, 1), 32);
}

// Qwen2's layer_types (written by transformers 4.53 on) decide which layers
// are windowed; max_window_layers only stands in when they are absent.
TEST(ConfigDefaults, Qwen2LayerTypes) {
  json j = family("Qwen2ForCausalLM", "qwen2");
  j["num_key_value_heads"] = 2;
  j["num_hidden_layers"] = 4;
  j["use_sliding_window"] = true;
  j["sliding_window"] = 256;
  j["max_window_layers"] = 2;
  j["layer_types"] = {"sliding_attention", "full_attention", "sliding_attention",
                      "full_attention"};
  const LlamaConfig c = parse(j);
  const int64_t want[] = {256, 0, 256, 0};
  for (int l = 0; l < 4; ++l) EXPECT_EQ(gptqtool::block_sliding_window(c, l), want[l]) << l;
  j["layer_types"] = {"full_attention", "full_attention"};
  EXPECT_NE(error_of(j).find("must list one type per layer (4)"), std::string::npos);
  j["layer_types"] = {"full_attention", "chunked_attention", "full_attention", "full_attention"};
  EXPECT_NE(error_of(j).find("layer type \"chunked_attention\" is not supported"),
            std::string::npos);
  j["layer_types"] = {"full_attention", "sliding_attention", "full_attention", "full_attention"};
  j["use_sliding_window"] = false;
  EXPECT_NE(error_of(j).find("no sliding window is in effect"), std::string::npos);
  j["layer_types"] = {"full_attention", "full_attention", "full_attention", "full_attention"};
  EXPECT_EQ(gptqtool::block_sliding_window(parse(j), 3), 0);
  // Mistral ignores layer_types, as transformers does: every layer windowed.
  json m = family("MistralForCausalLM", "mistral");
  m["num_key_value_heads"] = 2;
  m["sliding_window"] = 128;
  m["layer_types"] = {"full_attention", "full_attention"};
  EXPECT_EQ(gptqtool::block_sliding_window(parse(m), 1), 128);
}

// Qwen3Config's defaults: head_dim 128 whatever hidden / heads is, 32 KV
// heads, no biases unless attention_bias (then on o as well), and the
// per-head q/k norms.
TEST(ConfigDefaults, Qwen3) {
  json j = family("Qwen3ForCausalLM", "qwen3");
  j["hidden_size"] = 1024;
  j["num_attention_heads"] = 16;
  j["num_key_value_heads"] = 8;
  j.erase("max_position_embeddings");
  LlamaConfig c = parse(j);
  EXPECT_TRUE(c.qk_norm);
  EXPECT_EQ(c.head_dim, 128);  // not 1024 / 16
  EXPECT_EQ(c.q_dim(), 2048);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_FALSE(c.o_proj_bias);
  EXPECT_EQ(c.max_position_embeddings, 32768);
  j["attention_bias"] = true;
  j["head_dim"] = 64;
  c = parse(j);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_TRUE(c.attention_bias);
  EXPECT_TRUE(c.o_proj_bias);
  j.erase("num_key_value_heads");
  j["num_attention_heads"] = 64;
  EXPECT_EQ(parse(j).num_key_value_heads, 32);
  json qwen2 = family("Qwen2ForCausalLM", "qwen2");
  qwen2["num_key_value_heads"] = 2;
  EXPECT_FALSE(parse(qwen2).qk_norm);
  json mixed = family("Qwen3ForCausalLM", "qwen2");
  EXPECT_NE(error_of(mixed).find("Qwen3ForCausalLM"), std::string::npos);  // refused
}

}  // namespace
