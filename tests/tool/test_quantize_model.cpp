// The whole-model pipeline on a tiny random LLaMA: true-sequential GPTQ
// (checked against direct library calls on activations recomputed through the
// quantized layers), the checkpoint it writes (re-imported exactly, configs,
// per-layer overrides), and atomic writing.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <cstring>
#include <nlohmann/json.hpp>

#include "common/interrupt.h"
#include "formats/checkpoint_reader.h"
#include "formats/checkpoint_writer.h"
#include "formats/file_util.h"
#include "formats/float_formats.h"
#include "formats/safetensors.h"
#include "formats/token_data.h"
#include "model/llama_forward.h"
#include "model/model_dir.h"
#include "pipeline/quantize_model.h"
#include "tiny_model.h"

using namespace gptqtool;
namespace fs = std::filesystem;

namespace {

std::vector<std::vector<int32_t>> calibration(int64_t vocab, int sequences) {
  std::vector<std::vector<int32_t>> out;
  uint32_t state = 12345;
  for (int s = 0; s < sequences; ++s) {
    std::vector<int32_t> seq;
    const int len = 20 + 7 * s;  // different lengths: no padding anywhere
    for (int t = 0; t < len; ++t) {
      state = state * 1664525u + 1013904223u;
      seq.push_back(static_cast<int32_t>((state >> 8) % static_cast<uint32_t>(vocab)));
    }
    out.push_back(seq);
  }
  return out;
}

std::vector<uint8_t> codes_of(const gptq_qtensor *q, int64_t n) {
  std::vector<uint8_t> c(static_cast<size_t>(n));
  EXPECT_EQ(gptq_qtensor_codes(q, c.data(), n), GPTQ_OK);
  return c;
}

nlohmann::json read_json(const std::string &path) {
  return nlohmann::json::parse(read_text_file(path));
}

class Pipeline : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = tinymodel::make_temp_dir("pipeline");
    model_ = root_ + "/model";
    tinymodel::write_model(model_, spec_);
    // A tokenizer file to be copied along (content irrelevant here).
    std::ofstream(model_ + "/tokenizer.json") << "{}";
  }
  void TearDown() override { fs::remove_all(root_); }

  // Names left in root_ other than the model and expected outputs.
  std::vector<std::string> stray_entries(const std::set<std::string> &expected) const {
    std::vector<std::string> out;
    for (const auto &e : fs::directory_iterator(root_)) {
      const std::string name = e.path().filename().string();
      if (name != "model" && !expected.count(name)) out.push_back(name);
    }
    return out;
  }

  tinymodel::TinySpec spec_;
  std::string root_, model_;
};

TEST_F(Pipeline, CheckpointReimportsExactlyWithRightConfig) {
  auto dir = ModelDir::open(model_);
  QuantizeOptions qo;
  qo.base.group_size = 32;
  qo.base.act_order = true;
  const auto calib = calibration(spec_.vocab, 5);
  const QuantizeResult r = quantize_model(*dir, calib, qo, {});
  ASSERT_EQ(r.layers.size(), 14u);
  EXPECT_EQ(r.calibration_sequences, 5);
  EXPECT_EQ(r.layers[0].name, "model.layers.0.self_attn.q_proj");
  EXPECT_EQ(r.layers[3].name, "model.layers.0.self_attn.o_proj");
  EXPECT_EQ(r.layers[6].name, "model.layers.0.mlp.down_proj");
  for (const LayerResult &l : r.layers) {
    EXPECT_EQ(l.hessian_samples, 5) << l.name;
    EXPECT_GT(l.stats.loss, 0.0) << l.name;
    EXPECT_EQ(l.stats.fell_back_to_rtn, 0) << l.name;
  }

  const std::string out = root_ + "/out";
  write_gptq_checkpoint(*dir, r, qo, {}, out);
  auto ck = ModelDir::open(out);
  ASSERT_TRUE(is_gptq_checkpoint(*ck));
  const GptqCheckpointConfig qc = read_gptq_checkpoint_config(*ck);
  EXPECT_EQ(qc.base.bits, 4);
  EXPECT_EQ(qc.base.group_size, 32);
  EXPECT_TRUE(qc.base.act_order);
  EXPECT_EQ(qc.format, GPTQ_FORMAT_V1);
  for (const LayerResult &l : r.layers) {
    EXPECT_FALSE(ck->has(l.name + ".weight")) << l.name;
    auto q = load_quantized_linear(*ck, qc, l.name, l.out_features, l.in_features);
    EXPECT_EQ(dequantized(q.get()), dequantized(l.qtensor.get())) << l.name;
    EXPECT_EQ(codes_of(q.get(), l.out_features * l.in_features),
              codes_of(l.qtensor.get(), l.out_features * l.in_features))
        << l.name;
  }
  // Unquantized tensors of a float32 model are written as float16 (the GPTQ
  // convention), each value rounded to nearest.
  const std::vector<std::string> unquantized{"model.embed_tokens.weight", "model.norm.weight",
                                             "lm_head.weight",
                                             "model.layers.1.input_layernorm.weight"};
  for (const std::string &name : unquantized) {
    const TensorInfo &a = dir->info(name), &b = ck->info(name);
    EXPECT_EQ(b.dtype, TensorDType::F16) << name;
    ASSERT_EQ(a.shape, b.shape) << name;
    const std::vector<float> src = to_float32(dir->file_of(name), a);
    const std::vector<float> got = to_float32(ck->file_of(name), b);
    for (size_t i = 0; i < src.size(); ++i) {
      bool overflow = false;
      ASSERT_EQ(float_to_f16(got[i], &overflow), float_to_f16(src[i], &overflow)) << name << i;
      ASSERT_LE(std::fabs(got[i] - src[i]), std::fabs(src[i]) * 0x1p-11f + 0x1p-25f) << name;
    }
  }
  // --dtype f32 keeps them byte for byte.
  CheckpointOptions f32;
  f32.dtype = CheckpointOptions::DType::F32;
  write_gptq_checkpoint(*dir, r, qo, f32, root_ + "/out32");
  auto ck32 = ModelDir::open(root_ + "/out32");
  for (const std::string &name : unquantized) {
    const TensorInfo &a = dir->info(name), &b = ck32->info(name);
    ASSERT_EQ(a.nbytes, b.nbytes) << name;
    EXPECT_EQ(0, std::memcmp(dir->file_of(name).data(a), ck32->file_of(name).data(b), a.nbytes));
    EXPECT_EQ(b.dtype, TensorDType::F32);
  }
  EXPECT_EQ(read_json(root_ + "/out32/config.json")["torch_dtype"], "float32");
  // The f16 checkpoint computes what its tensors say: our reader takes the
  // f16 embeddings and norms back, and its logits stay close to the f32 one's.
  {
    const LlamaModel m16 = load_model(*ck), m32 = load_model(*ck32);
    const std::vector<int32_t> ids{1, 5, 9, 2, 44, 17};
    SequenceBatch batch;
    batch.add(static_cast<int64_t>(ids.size()));
    const Rope rope(m16.config, static_cast<int64_t>(ids.size()));
    const std::vector<float> a = model_logits(m16, rope, ids, batch);
    const std::vector<float> b = model_logits(m32, rope, ids, batch);
    double diff = 0, norm = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      diff += (a[i] - b[i]) * double(a[i] - b[i]);
      norm += b[i] * double(b[i]);
    }
    EXPECT_GT(diff, 0.0);  // the f16 tensors were really used
    EXPECT_LT(std::sqrt(diff / norm), 2e-3);
  }
  const auto config = read_json(out + "/config.json");
  EXPECT_EQ(config["torch_dtype"], "float16");
  const auto &q = config["quantization_config"];
  EXPECT_EQ(q["quant_method"], "gptq");
  EXPECT_EQ(q["bits"], 4);
  EXPECT_EQ(q["group_size"], 32);
  EXPECT_EQ(q["desc_act"], true);
  EXPECT_EQ(q["sym"], true);
  EXPECT_EQ(q["static_groups"], false);
  EXPECT_EQ(q["true_sequential"], true);
  EXPECT_EQ(q["checkpoint_format"], "gptq");
  EXPECT_NEAR(q["damp_percent"].get<double>(), 0.01, 1e-12);
  EXPECT_FALSE(q.contains("dynamic"));
  EXPECT_EQ(config["hidden_size"], spec_.hidden);  // the model's own fields kept
  const auto qcfg = read_json(out + "/quantize_config.json");
  EXPECT_EQ(qcfg["bits"], 4);
  EXPECT_EQ(qcfg["checkpoint_format"], "gptq");
  EXPECT_TRUE(path_exists(out + "/tokenizer.json"));
  const auto report = read_json(out + "/quantize_report.json");
  ASSERT_EQ(report["layers"].size(), 14u);
  EXPECT_EQ(report["layers"][0]["name"], "model.layers.0.self_attn.q_proj");
  EXPECT_TRUE(report["layers"][0].contains("damp_percent_used"));
  EXPECT_TRUE(report["layers"][0].contains("fell_back_to_rtn"));
  EXPECT_EQ(stray_entries({"out", "out32"}), std::vector<std::string>{});

  // The checkpoint runs: its logits equal those of the dequantized model
  // within matmul rounding.
  const LlamaModel qm = load_model(*ck);
  EXPECT_TRUE(qm.blocks[0].q.quantized());
}

// Phi-3's fused qkv_proj and gate_up_proj are each quantized as one layer
// with one Hessian. GPTQ treats every row on its own given the Hessian, so
// where both models feed a layer the same inputs (block 0's qkv) the fused
// codes are the separate LLaMA layers' codes stacked, bit for bit. Further
// on, the fused and the separate matmuls may round differently (OpenBLAS
// picks its kernels by shape and CPU: on an AVX-512 machine 27% of block 1's
// down_proj codes differed), and GPTQ's feedback spreads such last-bit
// changes through a row; the loss each layer reaches must still agree. The
// checkpoint keeps the fused names and runs.
TEST_F(Pipeline, Phi3FusedLayersQuantizeAsTheSeparateLayersStacked) {
  tinymodel::TinySpec phi_spec = spec_;
  phi_spec.phi3 = true;
  const std::string phi_dir = root_ + "/phi3";
  tinymodel::write_model(phi_dir, phi_spec);
  std::ofstream(phi_dir + "/tokenizer.json") << "{}";
  auto llama = ModelDir::open(model_);
  auto phi = ModelDir::open(phi_dir);
  QuantizeOptions qo;
  qo.base.group_size = 32;
  qo.base.act_order = true;
  const auto calib = calibration(spec_.vocab, 5);
  const QuantizeResult a = quantize_model(*llama, calib, qo, {});
  const QuantizeResult b = quantize_model(*phi, calib, qo, {});
  ASSERT_EQ(a.layers.size(), 14u);
  ASSERT_EQ(b.layers.size(), 8u);
  EXPECT_EQ(b.layers[0].name, "model.layers.0.self_attn.qkv_proj");
  EXPECT_EQ(b.layers[2].name, "model.layers.0.mlp.gate_up_proj");
  int64_t differ = 0, total = 0;
  double worst_loss_ratio = 1.0;
  // Per block: qkv = q, k, v; o = o; gate_up = gate, up; down = down.
  const std::vector<std::vector<size_t>> parts{{0, 1, 2}, {3}, {4, 5}, {6}};
  for (int64_t blk = 0; blk < spec_.layers; ++blk) {
    for (size_t f = 0; f < parts.size(); ++f) {
      const LayerResult &fused = b.layers[static_cast<size_t>(blk) * 4 + f];
      std::vector<uint8_t> stacked;
      double separate_loss = 0;
      for (size_t part : parts[f]) {
        const LayerResult &l = a.layers[static_cast<size_t>(blk) * 7 + part];
        const auto c = codes_of(l.qtensor.get(), l.out_features * l.in_features);
        stacked.insert(stacked.end(), c.begin(), c.end());
        separate_loss += l.stats.loss;
      }
      ASSERT_GT(separate_loss, 0.0) << fused.name;
      const double ratio = fused.stats.loss / separate_loss;
      EXPECT_NEAR(ratio, 1.0, 0.1) << fused.name << ": fused loss " << fused.stats.loss
                                   << ", separate " << separate_loss;
      worst_loss_ratio = std::max({worst_loss_ratio, ratio, 1.0 / ratio});
      const auto got = codes_of(fused.qtensor.get(), fused.out_features * fused.in_features);
      ASSERT_EQ(got.size(), stacked.size()) << fused.name;
      for (size_t i = 0; i < got.size(); ++i) differ += got[i] != stacked[i];
      total += static_cast<int64_t>(got.size());
      if (blk == 0 && f == 0) {
        EXPECT_EQ(got, stacked) << "identical inputs, identical codes";
        EXPECT_NEAR(fused.stats.loss, separate_loss, 1e-5 * separate_loss);  // summed apart
      }
    }
  }
  std::printf("fused against separate layers: %lld of %lld codes differ, losses within %.2f%%\n",
              static_cast<long long>(differ), static_cast<long long>(total),
              100.0 * (worst_loss_ratio - 1.0));

  const std::string out = root_ + "/phi3-out";
  write_gptq_checkpoint(*phi, b, qo, {}, out);
  auto ck = ModelDir::open(out);
  EXPECT_TRUE(ck->has("model.layers.1.self_attn.qkv_proj.qweight"));
  EXPECT_TRUE(ck->has("model.layers.1.mlp.gate_up_proj.scales"));
  const LlamaModel m = load_model(*ck);
  EXPECT_TRUE(m.blocks[1].qkv.quantized());
  EXPECT_TRUE(m.blocks[1].gate_up.quantized());
  EXPECT_EQ(m.blocks[1].qkv.out_features(), 64 + 2 * 32);
}

// Every architecture quantizes, writes a checkpoint that loads, and runs:
// at 8 bits the checkpoint's logits stay close to the float model's (a
// layer wired to the wrong input or name would not).
TEST_F(Pipeline, EveryArchitectureQuantizesWritesAndRuns) {
  struct Case {
    const char *name;
    tinymodel::TinySpec spec;
  };
  std::vector<Case> cases(10, Case{"", spec_});
  cases[0].name = "llama";
  cases[1].name = "mistral";
  cases[1].spec.mistral = true;
  cases[1].spec.sliding_window = 9;
  cases[2].name = "qwen2";
  cases[2].spec.qwen2 = true;
  cases[3].name = "qwen3";
  cases[3].spec.qwen3 = true;
  cases[3].spec.head_dim = 24;
  cases[4].name = "phi3";
  cases[4].spec.phi3 = true;
  cases[5].name = "gemma2";
  cases[5].spec.gemma2 = true;
  cases[5].spec.tied = true;
  cases[5].spec.sliding_window = 9;
  cases[6].name = "gemma3";
  cases[6].spec.gemma3 = true;
  cases[6].spec.tied = true;
  cases[6].spec.head_dim = 24;
  cases[6].spec.sliding_window = 9;
  cases[7].name = "mixtral";
  cases[7].spec.mixtral = true;
  cases[8].name = "qwen2_moe";
  cases[8].spec.qwen2_moe = true;
  cases[9].name = "qwen3_moe";
  cases[9].spec.qwen3_moe = true;
  cases[9].spec.norm_topk_prob = true;
  for (const Case &k : cases) {
    const std::string dir = root_ + "/arch-" + k.name;
    tinymodel::write_model(dir, k.spec);
    std::ofstream(dir + "/tokenizer.json") << "{}";
    auto md = ModelDir::open(dir);
    QuantizeOptions qo;
    qo.base.bits = 8;
    qo.base.group_size = 32;
    qo.base.act_order = true;
    const QuantizeResult r = quantize_model(*md, calibration(k.spec.vocab, 4), qo, {});
    EXPECT_EQ(r.layers.size(), static_cast<size_t>(k.spec.layers) * block_linears(md->config()).size())
        << k.name;
    const std::string out = dir + "-gptq";
    write_gptq_checkpoint(*md, r, qo, {}, out);
    const LlamaModel q = load_model(*ModelDir::open(out));
    ASSERT_TRUE(has_quantized_layers(q)) << k.name;
    const LlamaModel f = load_model(*md);
    const std::vector<int32_t> ids{3, 14, 15, 92, 65, 35, 89, 79, 32, 38, 46, 26, 43};
    SequenceBatch batch;
    batch.add(static_cast<int64_t>(ids.size()));
    const Rope rope(f.config, static_cast<int64_t>(ids.size()));
    const std::vector<float> a = model_logits(q, rope, ids, batch);
    const std::vector<float> b = model_logits(f, rope, ids, batch);
    double diff = 0, norm = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      diff += (a[i] - b[i]) * double(a[i] - b[i]);
      norm += b[i] * double(b[i]);
    }
    EXPECT_GT(diff, 0.0) << k.name;  // the quantized layers were really used
    EXPECT_LT(std::sqrt(diff / norm), 0.02) << k.name;
  }
}

// A mixture of experts: each expert's Hessian comes only from the tokens the
// router sends it (redone here by hand: the MoE input of block 0, whose
// attention is left in full precision, routed in double precision, the
// expert's rows gathered, direct library calls); experts under the share
// are rounded to nearest and say so; the shared expert sees every token;
// the router and shared_expert_gate stay in full precision and the
// checkpoint keeps the model's names, with loader rules for them.
TEST_F(Pipeline, ExpertHessiansComeFromTheirRoutedTokens) {
  tinymodel::TinySpec ms = spec_;
  ms.qwen2_moe = true;
  ms.experts = 6;
  const std::string model = root_ + "/qwen2moe";
  tinymodel::write_model(model, ms);
  std::ofstream(model + "/tokenizer.json") << "{}";
  auto dir = ModelDir::open(model);
  const LlamaConfig &c = dir->config();
  QuantizeOptions qo;
  qo.base.group_size = 32;
  qo.overrides.push_back(parse_override("model.layers.0.self_attn.*:skip"));
  qo.expert_min_share = 1.0;  // every expert below its fair share is rounded
  const auto calib = calibration(ms.vocab, 4);
  const QuantizeResult r = quantize_model(*dir, calib, qo, {});

  SequenceBatch batch;
  std::vector<int32_t> ids;
  for (const auto &s : calib) {
    batch.add(static_cast<int64_t>(s.size()));
    ids.insert(ids.end(), s.begin(), s.end());
  }
  const int64_t T = batch.tokens(), H = c.hidden_size;
  LlamaModel outer;
  load_dense_outer(*dir, &outer);
  std::vector<float> h = embed_tokens(outer, ids);
  const LlamaBlock b0 = load_dense_block(*dir, 0);
  const Rope rope(c, 64);
  std::vector<float> x(static_cast<size_t>(T * H)), attn(static_cast<size_t>(T * c.q_dim()));
  rms_norm(h.data(), b0.input_norm, T, H, c.rms_norm_eps, x.data());
  attention_core(c, rope, b0, x.data(), batch, attn.data());
  std::vector<float> o(static_cast<size_t>(T * H));
  b0.o.forward(attn.data(), T, o.data());
  for (size_t i = 0; i < h.size(); ++i) h[i] += o[i];
  rms_norm(h.data(), b0.post_norm, T, H, c.rms_norm_eps, x.data());

  // Routing by hand: the top 2 of the softmax of the router's logits.
  const std::vector<float> &R = b0.router.weight();
  std::vector<std::vector<int64_t>> rows(static_cast<size_t>(c.num_experts));
  for (int64_t t = 0; t < T; ++t) {
    std::vector<std::pair<double, int64_t>> logit;
    for (int64_t e = 0; e < c.num_experts; ++e) {
      double s = 0;
      for (int64_t i = 0; i < H; ++i) s += double(x[t * H + i]) * R[e * H + i];
      logit.push_back({s, e});
    }
    std::sort(logit.begin(), logit.end(), std::greater<>());
    rows[logit[0].second].push_back(t);
    rows[logit[1].second].push_back(t);
  }
  const double fair = double(T) * 2 / double(c.num_experts);
  EXPECT_EQ(r.expert_min_tokens, static_cast<int64_t>(std::ceil(fair)));
  int64_t rounded = 0, gptq = 0;
  for (int64_t e = 0; e < c.num_experts; ++e) {
    const std::string name = linear_name(c, 0, LinearId(LinearSlot::Gate, e));
    const auto it = std::find_if(r.layers.begin(), r.layers.end(),
                                 [&](const LayerResult &l) { return l.name == name; });
    ASSERT_NE(it, r.layers.end()) << name;
    const auto n = static_cast<int64_t>(rows[e].size());
    EXPECT_EQ(it->expert, e);
    EXPECT_EQ(it->routed_tokens, n) << name;
    const Linear &gate = b0.experts[static_cast<size_t>(e)].gate;
    const int64_t count = gate.out_features() * H;
    std::shared_ptr<gptq_qtensor> want;
    if (n < r.expert_min_tokens) {
      ++rounded;
      EXPECT_TRUE(it->under_calibrated) << name;
      want = quantize_rtn(gate.weight(), gate.out_features(), H, it->spec, 0, nullptr);
    } else {
      ++gptq;
      EXPECT_FALSE(it->under_calibrated) << name;
      std::vector<float> xs;
      for (int64_t t : rows[e]) xs.insert(xs.end(), x.begin() + t * H, x.begin() + (t + 1) * H);
      gptq_config cfg = library_config(qo.base, 0);
      gptq_ctx *ctx = nullptr;
      ASSERT_EQ(gptq_ctx_create(gate.out_features(), H, &cfg, &ctx), GPTQ_OK);
      ASSERT_EQ(gptq_add_batch(ctx, xs.data(), GPTQ_DTYPE_F32, n, H, n), GPTQ_OK);
      gptq_qtensor *q = nullptr;
      ASSERT_EQ(gptq_quantize(ctx, gate.weight().data(), GPTQ_DTYPE_F32, gate.out_features(), H,
                              &q, nullptr),
                GPTQ_OK);
      gptq_ctx_destroy(ctx);
      want.reset(q, QTensorDeleter());
    }
    EXPECT_EQ(codes_of(want.get(), count), codes_of(it->qtensor.get(), count)) << name;
  }
  EXPECT_GT(rounded, 0);  // below the mean: some expert must be
  EXPECT_GT(gptq, 0);
  const auto shared = std::find_if(r.layers.begin(), r.layers.end(), [](const LayerResult &l) {
    return l.name == "model.layers.0.mlp.shared_expert.gate_proj";
  });
  ASSERT_NE(shared, r.layers.end());
  EXPECT_EQ(shared->expert, -1);
  EXPECT_FALSE(shared->under_calibrated);

  const std::string out = root_ + "/qwen2moe-gptq";
  write_gptq_checkpoint(*dir, r, qo, {}, out);
  auto ck = ModelDir::open(out);
  EXPECT_TRUE(ck->has("model.layers.1.mlp.experts.5.down_proj.qweight"));
  EXPECT_TRUE(ck->has("model.layers.1.mlp.shared_expert.up_proj.qweight"));
  EXPECT_EQ(ck->info("model.layers.1.mlp.gate.weight").dtype, TensorDType::F16);
  EXPECT_TRUE(ck->has("model.layers.1.mlp.shared_expert_gate.weight"));
  const auto cfg = read_json(out + "/config.json");
  const auto &dynamic = cfg["quantization_config"]["dynamic"];
  EXPECT_TRUE(dynamic.contains("-:" + glob_to_regex("model.layers.1.mlp.gate")));
  EXPECT_TRUE(dynamic.contains("-:" + glob_to_regex("model.layers.1.mlp.shared_expert_gate")));
  const auto report = read_json(out + "/quantize_report.json");
  ASSERT_TRUE(report.contains("experts"));
  EXPECT_EQ(report["experts"]["min_tokens"], r.expert_min_tokens);
  EXPECT_EQ(report["experts"]["under_calibrated"].size(), static_cast<size_t>(rounded) +
                static_cast<size_t>(std::count_if(r.layers.begin(), r.layers.end(), [](const LayerResult &l) {
                  return l.block == 1 && l.under_calibrated && l.name.find("gate_proj") != std::string::npos;
                })));
  const LlamaModel m = load_model(*ck);
  EXPECT_TRUE(m.blocks[1].experts[5].down.quantized());
  EXPECT_FALSE(m.blocks[1].router.quantized());
}

// Mixtral written under GPTQModel's names (--expert-names gptqmodel): the
// experts and router renamed in the tensors, the dynamic map and the
// report, and the checkpoint read back by those names to the same logits.
TEST_F(Pipeline, MixtralUnderGptqmodelNamesReadsBack) {
  tinymodel::TinySpec ms = spec_;
  ms.mixtral = true;
  const std::string model = root_ + "/mixtral";
  tinymodel::write_model(model, ms);
  auto dir = ModelDir::open(model);
  QuantizeOptions qo;
  qo.base.group_size = 32;
  const QuantizeResult r = quantize_model(*dir, calibration(ms.vocab, 4), qo, {});
  write_gptq_checkpoint(*dir, r, qo, {}, root_ + "/own");
  CheckpointOptions co;
  co.gptqmodel_expert_names = true;
  write_gptq_checkpoint(*dir, r, qo, co, root_ + "/gm");
  auto own = ModelDir::open(root_ + "/own");
  auto gm = ModelDir::open(root_ + "/gm");
  EXPECT_TRUE(own->has("model.layers.1.block_sparse_moe.experts.3.w2.qweight"));
  EXPECT_TRUE(gm->has("model.layers.1.mlp.experts.3.down_proj.qweight"));
  EXPECT_TRUE(gm->has("model.layers.1.mlp.experts.0.gate_proj.scales"));
  EXPECT_TRUE(gm->has("model.layers.1.mlp.experts.0.up_proj.g_idx"));
  EXPECT_TRUE(gm->has("model.layers.1.mlp.gate.weight"));
  EXPECT_FALSE(gm->config().mixtral_names);
  check_llama_tensors(*gm);
  const auto dynamic = read_json(root_ + "/gm/config.json")["quantization_config"]["dynamic"];
  EXPECT_TRUE(dynamic.contains("-:" + glob_to_regex("model.layers.0.mlp.gate")));
  EXPECT_EQ(read_json(root_ + "/gm/quantize_report.json")["layers"][4]["name"],
            "model.layers.0.mlp.experts.0.gate_proj");
  const LlamaModel a = load_model(*own), b = load_model(*gm);
  ASSERT_TRUE(b.blocks[1].experts[3].down.quantized());
  const std::vector<int32_t> ids{3, 14, 15, 92, 65, 35, 89, 79, 32};
  SequenceBatch batch;
  batch.add(static_cast<int64_t>(ids.size()));
  const Rope rope(a.config, 9);
  EXPECT_EQ(model_logits(a, rope, ids, batch), model_logits(b, rope, ids, batch));
}

// An expert count that does not match the weights is named as such.
TEST_F(Pipeline, ExpertCountMismatchIsNamed) {
  tinymodel::TinySpec ms = spec_;
  ms.mixtral = true;
  const std::string model = root_ + "/mixtral";
  tinymodel::write_model(model, ms);
  nlohmann::json config = read_json(model + "/config.json");
  config["num_local_experts"] = 3;
  std::ofstream(model + "/config.json") << config.dump();
  std::string error;
  try {
    check_llama_tensors(*ModelDir::open(model));
  } catch (const ToolError &e) {
    error = e.what();
  }
  EXPECT_NE(error.find("config.json's num_local_experts is 3 but the router "
                       "model.layers.0.block_sparse_moe.gate.weight has 4 rows"),
            std::string::npos)
      << error;
  // The router agrees but block 0's experts stop at experts.2.
  config["num_local_experts"] = 4;
  std::ofstream(model + "/config.json") << config.dump();
  SafetensorsWriter w;
  for (const auto &t : tinymodel::random_tensors(ms)) {
    if (t.first.find("layers.0.block_sparse_moe.experts.3.") != std::string::npos) continue;
    const std::vector<float> &v = t.second.second;
    std::vector<uint8_t> bytes(v.size() * 4);
    std::memcpy(bytes.data(), v.data(), bytes.size());
    w.add(t.first, TensorDType::F32, t.second.first, bytes);
  }
  w.write(model + "/model.safetensors");
  error.clear();
  try {
    check_llama_tensors(*ModelDir::open(model));
  } catch (const ToolError &e) {
    error = e.what();
  }
  EXPECT_NE(error.find("config.json's num_local_experts is 4 but block 0's weights hold experts "
                       "0 to 2 (model.layers.0.block_sparse_moe.experts.N)"),
            std::string::npos)
      << error;
}

// Block 1's q/k/v Hessian must come from block 0's output recomputed through
// block 0's quantized layers, and o_proj's from attention over the quantized
// q/k/v: redo both by hand with direct library calls and compare codes.
// A bfloat16 model keeps bfloat16 (its tensors copied as they are), and
// --dtype overrides the choice either way.
TEST_F(Pipeline, CheckpointDtypeFollowsABfloat16Source) {
  tinymodel::TinySpec bf = spec_;
  bf.dtype = TensorDType::BF16;
  const std::string model = root_ + "/bf16";
  tinymodel::write_model(model, bf);
  auto dir = ModelDir::open(model);
  EXPECT_EQ(unquantized_dtype(*dir, CheckpointOptions::DType::Auto), TensorDType::BF16);
  EXPECT_EQ(unquantized_dtype(*dir, CheckpointOptions::DType::F16), TensorDType::F16);
  QuantizeOptions qo;
  qo.method = QuantMethod::Rtn;
  qo.base.group_size = 32;
  const QuantizeResult r = quantize_model(*dir, {}, qo, {});
  write_gptq_checkpoint(*dir, r, qo, {}, root_ + "/bfout");
  auto ck = ModelDir::open(root_ + "/bfout");
  const TensorInfo &a = dir->info("model.embed_tokens.weight");
  const TensorInfo &b = ck->info("model.embed_tokens.weight");
  EXPECT_EQ(b.dtype, TensorDType::BF16);
  ASSERT_EQ(a.nbytes, b.nbytes);
  EXPECT_EQ(0, std::memcmp(dir->file_of(a.name).data(a), ck->file_of(b.name).data(b), a.nbytes));
  EXPECT_EQ(read_json(root_ + "/bfout/config.json")["torch_dtype"], "bfloat16");
  EXPECT_EQ(ck->info("model.layers.0.self_attn.q_proj.scales").dtype, TensorDType::F16);

  // A source config with transformers 5's "dtype" key gets it rewritten too;
  // without any key, the weights decide.
  nlohmann::json config = read_json(model + "/config.json");
  config.erase("torch_dtype");
  std::ofstream(model + "/config.json") << config.dump();
  dir = ModelDir::open(model);
  EXPECT_EQ(unquantized_dtype(*dir, CheckpointOptions::DType::Auto), TensorDType::BF16);
  config["dtype"] = "float32";
  std::ofstream(model + "/config.json") << config.dump();
  dir = ModelDir::open(model);
  EXPECT_EQ(unquantized_dtype(*dir, CheckpointOptions::DType::Auto), TensorDType::F16);
  CheckpointOptions co;
  co.dtype = CheckpointOptions::DType::F32;
  write_gptq_checkpoint(*dir, r, qo, co, root_ + "/bfout32");
  const auto written = read_json(root_ + "/bfout32/config.json");
  EXPECT_EQ(written["dtype"], "float32");
  EXPECT_FALSE(written.contains("torch_dtype"));
  EXPECT_EQ(ModelDir::open(root_ + "/bfout32")->info("model.norm.weight").dtype, TensorDType::F32);
}

// --max-shard-size: the weights split in order into numbered shards with an
// index (as transformers writes them), read back as the same model; and a
// sharded source model quantizes to the same checkpoint as the unsharded one.
TEST_F(Pipeline, ShardedCheckpointsAndShardedSources) {
  auto dir = ModelDir::open(model_);
  QuantizeOptions qo;
  qo.base.group_size = 32;
  const QuantizeResult r = quantize_model(*dir, calibration(spec_.vocab, 3), qo, {});
  write_gptq_checkpoint(*dir, r, qo, {}, root_ + "/whole");
  CheckpointOptions co;
  co.max_shard_bytes = 10000;
  write_gptq_checkpoint(*dir, r, qo, co, root_ + "/sharded");

  EXPECT_FALSE(path_exists(root_ + "/sharded/model.safetensors"));
  const auto index = read_json(root_ + "/sharded/model.safetensors.index.json");
  std::set<std::string> files;
  for (const auto &item : index["weight_map"].items()) files.insert(item.value().get<std::string>());
  ASSERT_GE(files.size(), 3u);
  const std::string last = "model-0000" + std::to_string(files.size()) + "-of-0000" +
                           std::to_string(files.size()) + ".safetensors";
  EXPECT_TRUE(files.count("model-00001-of-0000" + std::to_string(files.size()) + ".safetensors"));
  EXPECT_TRUE(files.count(last));
  uint64_t total = 0;
  for (const std::string &f : files) {
    auto shard = SafetensorsFile::open(root_ + "/sharded/" + f);
    uint64_t bytes = 0;
    for (const TensorInfo &t : shard->tensors()) bytes += t.nbytes;
    // Over the limit only as a single tensor larger than it.
    EXPECT_TRUE(bytes <= co.max_shard_bytes || shard->tensors().size() == 1) << f << " " << bytes;
    total += bytes;
  }
  EXPECT_EQ(index["metadata"]["total_size"].get<uint64_t>(), total);

  auto whole = ModelDir::open(root_ + "/whole");
  auto sharded = ModelDir::open(root_ + "/sharded");
  ASSERT_EQ(whole->tensor_names(), sharded->tensor_names());
  for (const std::string &name : whole->tensor_names()) {
    const TensorInfo &a = whole->info(name), &b = sharded->info(name);
    ASSERT_EQ(a.nbytes, b.nbytes) << name;
    EXPECT_EQ(0, std::memcmp(whole->file_of(name).data(a), sharded->file_of(name).data(b),
                             a.nbytes)) << name;
  }
  check_llama_tensors(*sharded);
  check_gptq_tensors(*sharded, read_gptq_checkpoint_config(*sharded));
  const LlamaModel m = load_model(*sharded);
  EXPECT_TRUE(m.blocks[0].q.quantized());

  // A source model in shards (three files and an index): the same
  // checkpoint as from the single file.
  const std::string src = root_ + "/src_sharded";
  fs::create_directories(src);
  fs::copy_file(model_ + "/config.json", src + "/config.json");
  std::vector<SafetensorsWriter> parts(3);
  nlohmann::json weight_map;
  int i = 0;
  for (const std::string &name : dir->tensor_names()) {
    const TensorInfo &t = dir->info(name);
    const uint8_t *p = dir->file_of(name).data(t);
    parts[i % 3].add(name, t.dtype, t.shape, std::vector<uint8_t>(p, p + t.nbytes));
    weight_map[name] = "part" + std::to_string(i % 3) + ".safetensors";
    ++i;
  }
  for (int k = 0; k < 3; ++k) parts[k].write(src + "/part" + std::to_string(k) + ".safetensors");
  std::ofstream(src + "/model.safetensors.index.json")
      << nlohmann::json{{"weight_map", weight_map}}.dump();
  auto sdir = ModelDir::open(src);
  EXPECT_EQ(sdir->files().size(), 3u);
  const QuantizeResult r2 = quantize_model(*sdir, calibration(spec_.vocab, 3), qo, {});
  write_gptq_checkpoint(*sdir, r2, qo, {}, root_ + "/from_sharded");
  auto from_sharded = ModelDir::open(root_ + "/from_sharded");
  for (const std::string &name : whole->tensor_names()) {
    const TensorInfo &a = whole->info(name), &b = from_sharded->info(name);
    ASSERT_EQ(a.nbytes, b.nbytes) << name;
    EXPECT_EQ(0, std::memcmp(whole->file_of(name).data(a), from_sharded->file_of(name).data(b),
                             a.nbytes)) << name;
  }
}

// A value too large for float16 in a tensor that stays unquantized is
// found before any work, by name; bfloat16 and float32 hold it.
TEST_F(Pipeline, UnquantizedTensorsThatDoNotFitAreRefusedFirst) {
  SafetensorsWriter w;
  for (const auto &t : tinymodel::random_tensors(spec_)) {
    std::vector<float> v = t.second.second;
    if (t.first == "model.layers.1.post_attention_layernorm.weight") v[3] = 70000.0f;
    if (t.first == "model.layers.0.mlp.up_proj.weight") v[0] = 1e6f;  // quantized: fine
    std::vector<uint8_t> bytes(v.size() * 4);
    std::memcpy(bytes.data(), v.data(), bytes.size());
    w.add(t.first, TensorDType::F32, t.second.first, bytes);
  }
  w.write(model_ + "/model.safetensors");
  auto dir = ModelDir::open(model_);
  try {
    check_unquantized_tensors_fit(*dir, TensorDType::F16);
    FAIL() << "70000 accepted as float16";
  } catch (const ToolError &e) {
    EXPECT_NE(std::string(e.what()).find("model.layers.1.post_attention_layernorm.weight"),
              std::string::npos) << e.what();
  }
  check_unquantized_tensors_fit(*dir, TensorDType::BF16);
  check_unquantized_tensors_fit(*dir, TensorDType::F32);
}

TEST_F(Pipeline, TrueSequentialInputsComeFromQuantizedLayers) {
  auto dir = ModelDir::open(model_);
  QuantizeOptions qo;
  qo.base.group_size = 32;
  const auto calib = calibration(spec_.vocab, 4);
  const QuantizeResult r = quantize_model(*dir, calib, qo, {});
  const LlamaConfig &c = dir->config();

  SequenceBatch batch;
  std::vector<int32_t> ids;
  int64_t longest = 0;
  for (const auto &s : calib) {
    batch.add(static_cast<int64_t>(s.size()));
    ids.insert(ids.end(), s.begin(), s.end());
    longest = std::max<int64_t>(longest, static_cast<int64_t>(s.size()));
  }
  LlamaModel outer;
  load_dense_outer(*dir, &outer);
  std::vector<float> h = embed_tokens(outer, ids);
  const Rope rope(c, longest);
  LlamaBlock b0 = load_dense_block(*dir, 0);
  for (size_t s = 0; s < block_slots(c).size(); ++s) {
    Linear &l = block_linear(b0, block_slots(c)[s]);
    l = Linear(l.out_features(), l.in_features(), dequantized(r.layers[s].qtensor.get()), l.bias());
  }
  const int64_t T = batch.tokens();
  auto quantize_direct = [&](const std::vector<float> &x, int64_t in, const Linear &orig_layer) {
    gptq_config cfg = library_config(qo.base, 0);
    gptq_ctx *ctx = nullptr;
    EXPECT_EQ(gptq_ctx_create(orig_layer.out_features(), in, &cfg, &ctx), GPTQ_OK);
    EXPECT_EQ(gptq_add_batch(ctx, x.data(), GPTQ_DTYPE_F32, T, in, batch.sequences()), GPTQ_OK);
    gptq_qtensor *q = nullptr;
    EXPECT_EQ(gptq_quantize(ctx, orig_layer.weight().data(), GPTQ_DTYPE_F32,
                            orig_layer.out_features(), in, &q, nullptr),
              GPTQ_OK);
    gptq_ctx_destroy(ctx);
    return QTensorPtr(q);
  };
  // o_proj of block 0: inputs from attention through quantized q/k/v.
  {
    std::vector<float> x(static_cast<size_t>(T * c.hidden_size));
    rms_norm(h.data(), b0.input_norm, T, c.hidden_size, c.rms_norm_eps, x.data());
    std::vector<float> attn(static_cast<size_t>(T * c.num_attention_heads * c.head_dim));
    attention_core(c, rope, b0, x.data(), batch, attn.data());
    const LlamaBlock orig0 = load_dense_block(*dir, 0);
    auto q = quantize_direct(attn, c.num_attention_heads * c.head_dim, orig0.o);
    const int64_t n = orig0.o.out_features() * orig0.o.in_features();
    EXPECT_EQ(codes_of(q.get(), n), codes_of(r.layers[3].qtensor.get(), n));
  }
  // q_proj of block 1: block 0's output through all its quantized layers.
  block_forward(c, rope, b0, batch, h.data());
  const LlamaBlock orig1 = load_dense_block(*dir, 1);
  std::vector<float> x(static_cast<size_t>(T * c.hidden_size));
  rms_norm(h.data(), orig1.input_norm, T, c.hidden_size, c.rms_norm_eps, x.data());
  auto q = quantize_direct(x, c.hidden_size, orig1.q);
  const int64_t n = orig1.q.out_features() * orig1.q.in_features();
  EXPECT_EQ(codes_of(q.get(), n), codes_of(r.layers[7].qtensor.get(), n));
  // ...and not from the unquantized block 0 (the test can tell the two apart).
  std::vector<float> h_plain = embed_tokens(outer, ids);
  block_forward(c, rope, load_dense_block(*dir, 0), batch, h_plain.data());
  EXPECT_NE(h_plain, h);
}

TEST_F(Pipeline, OverridesGiveMixedPrecisionAndSkippedLayers) {
  auto dir = ModelDir::open(model_);
  QuantizeOptions qo;
  qo.base.group_size = 32;
  qo.overrides.push_back(parse_override("model.layers.0.*:bits=8,group=-1"));
  qo.overrides.push_back(parse_override("*.down_proj:skip"));
  qo.overrides.push_back(parse_override("model.layers.1.mlp.*:bits=3"));
  const QuantizeResult r = quantize_model(*dir, calibration(spec_.vocab, 3), qo, {});
  const std::string out = root_ + "/mixed";
  write_gptq_checkpoint(*dir, r, qo, {}, out);
  auto ck = ModelDir::open(out);
  const GptqCheckpointConfig qc = read_gptq_checkpoint_config(*ck);
  EXPECT_EQ(checkpoint_spec_for(qc, "model.layers.0.self_attn.q_proj").bits, 8);
  EXPECT_EQ(checkpoint_spec_for(qc, "model.layers.0.self_attn.q_proj").group_size, -1);
  EXPECT_EQ(checkpoint_spec_for(qc, "model.layers.1.self_attn.q_proj").bits, 4);
  EXPECT_EQ(checkpoint_spec_for(qc, "model.layers.1.mlp.up_proj").bits, 3);
  EXPECT_TRUE(checkpoint_spec_for(qc, "model.layers.1.mlp.down_proj").skip);
  EXPECT_TRUE(ck->has("model.layers.0.mlp.down_proj.weight"));
  EXPECT_TRUE(ck->has("model.layers.1.mlp.down_proj.weight"));
  EXPECT_FALSE(ck->has("model.layers.1.mlp.down_proj.qweight"));
  // 8-bit qweight of a 64-input layer: 64·8/32 = 16 rows.
  EXPECT_EQ(ck->info("model.layers.0.self_attn.q_proj.qweight").shape[0], 16);
  EXPECT_EQ(ck->info("model.layers.1.mlp.up_proj.qweight").shape[0], 64 * 3 / 32);
  const auto dyn = read_json(out + "/config.json")["quantization_config"]["dynamic"];
  EXPECT_TRUE(dyn.contains("-:^model\\.layers\\.1\\.mlp\\.down_proj$"));
  const LlamaModel m = load_model(*ck);  // every layer imports with its own settings
  EXPECT_FALSE(m.blocks[1].down.quantized());
  EXPECT_TRUE(m.blocks[1].up.quantized());
}

TEST_F(Pipeline, AsymmetricRunsWriteV2AndRtnNeedsNoCalibration) {
  spec_.nonnegative_gate_row = true;
  fs::remove_all(model_);
  tinymodel::write_model(model_, spec_);
  auto dir = ModelDir::open(model_);
  QuantizeOptions qo;
  qo.base.sym = false;
  qo.base.group_size = 32;
  qo.method = QuantMethod::Rtn;
  const QuantizeResult r = quantize_model(*dir, {}, qo, {});
  const std::string out = root_ + "/rtn";
  write_gptq_checkpoint(*dir, r, qo, {}, out);
  EXPECT_EQ(read_json(out + "/config.json")["quantization_config"]["checkpoint_format"], "gptq_v2");
  auto ck = ModelDir::open(out);
  const GptqCheckpointConfig qc = read_gptq_checkpoint_config(*ck);
  // RTN: each layer equals quantize_rtn of its original weights.
  const LlamaBlock b = load_dense_block(*dir, 1);
  auto want = quantize_rtn(b.gate.weight(), b.gate.out_features(), b.gate.in_features(),
                           qo.base, 0, nullptr);
  auto got = load_quantized_linear(*ck, qc, "model.layers.1.mlp.gate_proj",
                                   b.gate.out_features(), b.gate.in_features());
  EXPECT_EQ(dequantized(got.get()), dequantized(want.get()));
  // Forcing v1 on asymmetric results fails before anything is written.
  CheckpointOptions v1;
  v1.format = CheckpointOptions::Format::V1;
  try {
    write_gptq_checkpoint(*dir, r, qo, v1, root_ + "/v1");
    FAIL() << "no error";
  } catch (const ToolError &e) {
    EXPECT_NE(std::string(e.what()).find("mlp.gate_proj"), std::string::npos) << e.what();
  }
  EXPECT_EQ(stray_entries({"rtn"}), std::vector<std::string>{});
}

TEST_F(Pipeline, InterruptedWritesLeaveNothingBehind) {
  auto dir = ModelDir::open(model_);
  QuantizeOptions qo;
  qo.method = QuantMethod::Rtn;
  qo.base.group_size = 32;
  const QuantizeResult r = quantize_model(*dir, {}, qo, {});
  for (const std::string stop : {"model.safetensors", "config.json", "tokenizer.json",
                                 "quantize_report.json", "rename"}) {
    CheckpointOptions co;
    co.before_file = [&](const std::string &file) {
      if (file == stop) throw ToolError("simulated failure before " + file);
    };
    EXPECT_THROW(write_gptq_checkpoint(*dir, r, qo, co, root_ + "/ck"), ToolError) << stop;
    EXPECT_EQ(stray_entries({}), std::vector<std::string>{}) << stop;
  }
  // Ctrl-C seen by the writer.
  std::atomic<bool> flag{true};
  CheckpointOptions co;
  co.interrupted = &flag;
  EXPECT_THROW(write_gptq_checkpoint(*dir, r, qo, co, root_ + "/ck"), ToolError);
  EXPECT_EQ(stray_entries({}), std::vector<std::string>{});
  // Ctrl-C seen by the pipeline.
  QuantizeOptions interrupted = qo;
  interrupted.method = QuantMethod::Gptq;
  interrupted.interrupted = &flag;
  try {
    quantize_model(*dir, calibration(spec_.vocab, 2), interrupted, {});
    FAIL() << "no error";
  } catch (const ToolError &e) {
    EXPECT_STREQ(e.what(), "interrupted");
  }
}

TEST_F(Pipeline, ExistingOutputIsKeptUnlessOverwriteAndThenReplacedWhole) {
  auto dir = ModelDir::open(model_);
  QuantizeOptions qo;
  qo.method = QuantMethod::Rtn;
  qo.base.group_size = 32;
  const QuantizeResult r = quantize_model(*dir, {}, qo, {});
  const std::string out = root_ + "/ck";
  write_gptq_checkpoint(*dir, r, qo, {}, out);
  std::ofstream(out + "/keep.txt") << "mine";
  try {
    write_gptq_checkpoint(*dir, r, qo, {}, out);
    FAIL() << "no error";
  } catch (const ToolError &e) {
    EXPECT_NE(std::string(e.what()).find("already exists; choose another --out or pass "
                                         "--overwrite"),
              std::string::npos)
        << e.what();
  }
  EXPECT_TRUE(path_exists(out + "/keep.txt"));
  CheckpointOptions co;
  co.overwrite = true;
  write_gptq_checkpoint(*dir, r, qo, co, out);
  EXPECT_FALSE(path_exists(out + "/keep.txt"));
  EXPECT_TRUE(path_exists(out + "/model.safetensors"));
  EXPECT_EQ(stray_entries({"ck"}), std::vector<std::string>{});
}

// --overwrite once replaced whatever stood at the output: the model itself
// (--out equal to --model), a directory of the user's, a file. Now only a
// checkpoint this tool wrote is replaced, and no output may be, hold or sit
// inside an input, however the path is spelled.
TEST_F(Pipeline, OverwriteNeverReplacesInputsOrForeignFiles) {
  auto dir = ModelDir::open(model_);
  QuantizeOptions qo;
  qo.method = QuantMethod::Rtn;
  qo.base.group_size = 32;
  const QuantizeResult r = quantize_model(*dir, {}, qo, {});
  CheckpointOptions co;
  co.overwrite = true;
  const std::string calib = root_ + "/calib.txt";
  std::ofstream(calib) << "text";
  co.inputs = {calib};
  fs::create_symlink(model_, root_ + "/link");
  fs::create_directories(root_ + "/mine");
  std::ofstream(root_ + "/mine/notes.txt") << "mine";
  std::ofstream(root_ + "/file.txt") << "mine";
  // A checkpoint of another tool: a config with quantization_config but not ours.
  fs::create_directories(root_ + "/theirs");
  std::ofstream(root_ + "/theirs/quantize_report.json") << "{}";
  std::ofstream(root_ + "/theirs/config.json")
      << R"({"quantization_config": {"quant_method": "gptq", "meta": {"quantizer": ["gptqmodel:4"]}}})";
  const std::pair<std::string, std::string> cases[] = {
      {model_, "is the input"},
      {root_ + "/link", "is the input"},
      {root_ + "/model/../model/", "is the input"},
      {root_ + "/model/out", "lies inside the input"},
      {root_ + "/link/out", "lies inside the input"},
      {root_, "contains the input"},
      {calib, "is the input"},
      {root_ + "/mine", "is not a checkpoint this tool wrote (it has no quantize_report.json)"},
      {root_ + "/file.txt", "(it is a file, not a directory)"},
      {root_ + "/theirs", "does not name a GPTQ checkpoint written by libgptq"},
  };
  for (const auto &c : cases) {
    try {
      write_gptq_checkpoint(*dir, r, qo, co, c.first);
      ADD_FAILURE() << c.first << ": no error";
    } catch (const ToolError &e) {
      EXPECT_NE(std::string(e.what()).find(c.second), std::string::npos) << e.what();
    }
  }
  EXPECT_TRUE(path_exists(model_ + "/model.safetensors"));
  EXPECT_TRUE(path_exists(model_ + "/config.json"));
  EXPECT_TRUE(path_exists(root_ + "/mine/notes.txt"));
  EXPECT_TRUE(path_exists(root_ + "/file.txt"));
  EXPECT_TRUE(path_exists(root_ + "/theirs/config.json"));
  EXPECT_EQ(stray_entries({"calib.txt", "link", "mine", "file.txt", "theirs"}),
            std::vector<std::string>{});
  // A symbolic link to a checkpoint of ours is not replaced either.
  write_gptq_checkpoint(*dir, r, qo, {}, root_ + "/ck");
  fs::create_symlink(root_ + "/ck", root_ + "/cklink");
  EXPECT_THROW(write_gptq_checkpoint(*dir, r, qo, co, root_ + "/cklink"), ToolError);
}

TEST_F(Pipeline, PlansThatCannotBeStoredFailBeforeAnyWork) {
  auto dir = ModelDir::open(model_);
  QuantizeOptions qo;
  auto plan_error = [&](const QuantizeOptions &o) {
    try {
      validate_plan(*dir, o);
    } catch (const ToolError &e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  // A width the checkpoint layout cannot hold is a global refusal, not a
  // complaint about the first layer.
  qo.base.bits = 5;
  std::string m = plan_error(qo);
  EXPECT_EQ(m.rfind("--bits 5: 5-bit weights cannot be written: GPTQ checkpoints store 2, 3, 4 "
                    "and 8 bits only",
                    0),
            0u)
      << m;
  EXPECT_EQ(m.find("q_proj"), std::string::npos) << m;
  qo.base.bits = 4;
  qo.overrides = {parse_override("*.o_proj:bits=6")};
  m = plan_error(qo);
  EXPECT_NE(m.find("--override '*.o_proj:bits=6': 6-bit weights cannot be written"),
            std::string::npos)
      << m;
  // An override that matches nothing was silently ignored.
  qo.overrides = {parse_override("*.down_proj:bits=8"), parse_override("model.layer.0.*:skip")};
  m = plan_error(qo);
  EXPECT_NE(m.find("--override 'model.layer.0.*:skip': the pattern 'model.layer.0.*' matches no "
                   "layer (names look like model.layers.0.self_attn.q_proj or "
                   "model.layers.0.mlp.down_proj; lm_head only with --quantize-lm-head)"),
            std::string::npos)
      << m;
  qo.overrides = {parse_override("lm_head:bits=8")};
  EXPECT_NE(plan_error(qo).find("matches no layer"), std::string::npos);
  qo.quantize_lm_head = true;
  EXPECT_EQ(plan_error(qo), "no error");
  qo.quantize_lm_head = false;
  qo.overrides.clear();
  // Static groups without act-order anywhere do nothing.
  qo.base.static_groups = true;
  m = plan_error(qo);
  EXPECT_EQ(m.rfind("--static-groups has no effect without an act-order", 0), 0u) << m;
  qo.overrides = {parse_override("*.q_proj:act-order=1")};
  EXPECT_EQ(plan_error(qo), "no error");
  qo.base.act_order = true;
  qo.overrides.clear();
  EXPECT_EQ(plan_error(qo), "no error");
  qo.base.act_order = false;
  qo.base.static_groups = false;
  qo.overrides.push_back(parse_override("*.o_proj:group=0"));
  EXPECT_THROW(validate_plan(*dir, qo), ToolError);
  EXPECT_THROW(parse_override("no-colon"), ToolError);
  EXPECT_THROW(parse_override("*:bits=x"), ToolError);
  EXPECT_THROW(parse_override("*:colour=red"), ToolError);
  EXPECT_THROW(quantize_model(*dir, {}, QuantizeOptions{}, {}), ToolError);  // GPTQ, no data
}

TEST_F(Pipeline, TiedLmHeadIsQuantizedOnRequestAndUntied) {
  spec_.tied = true;
  fs::remove_all(model_);
  tinymodel::write_model(model_, spec_);
  auto dir = ModelDir::open(model_);
  QuantizeOptions qo;
  qo.base.group_size = 32;
  qo.quantize_lm_head = true;
  qo.overrides.push_back(parse_override("lm_head:bits=8"));
  const QuantizeResult r = quantize_model(*dir, calibration(spec_.vocab, 3), qo, {});
  ASSERT_EQ(r.layers.size(), 15u);
  const LayerResult &head = r.layers.back();
  EXPECT_EQ(head.name, "lm_head");
  EXPECT_EQ(head.spec.bits, 8);
  EXPECT_EQ(head.out_features, spec_.vocab);
  EXPECT_EQ(head.hessian_samples, 3);
  const std::string out = root_ + "/head";
  write_gptq_checkpoint(*dir, r, qo, {}, out);
  const auto config = read_json(out + "/config.json");
  EXPECT_EQ(config["tie_word_embeddings"], false);
  EXPECT_EQ(config["quantization_config"]["lm_head"], true);
  auto ck = ModelDir::open(out);
  EXPECT_TRUE(ck->has("lm_head.qweight"));
  EXPECT_TRUE(ck->has("model.embed_tokens.weight"));
  const LlamaModel m = load_model(*ck);
  EXPECT_TRUE(m.lm_head.quantized());
  auto q = load_quantized_linear(*ck, read_gptq_checkpoint_config(*ck), "lm_head", spec_.vocab,
                                 spec_.hidden);
  EXPECT_EQ(dequantized(q.get()), dequantized(head.qtensor.get()));
  // The embeddings are the original ones (rounded to float16), not the
  // quantized head.
  const TensorInfo &a = dir->info("model.embed_tokens.weight");
  const TensorInfo &b = ck->info("model.embed_tokens.weight");
  const std::vector<float> src = to_float32(dir->file_of(a.name), a);
  const std::vector<float> got = to_float32(ck->file_of(b.name), b);
  ASSERT_EQ(src.size(), got.size());
  for (size_t i = 0; i < src.size(); ++i) {
    bool overflow = false;
    ASSERT_EQ(float_to_f16(src[i], &overflow), float_to_f16(got[i], &overflow)) << i;
  }

  // A tied model that also stores lm_head.weight (a copy of the
  // embeddings) is untied too: the checkpoint once kept
  // tie_word_embeddings true beside lm_head.qweight.
  {
    SafetensorsWriter w;
    for (const auto &t : tinymodel::random_tensors(spec_)) {
      std::vector<uint8_t> bytes(t.second.second.size() * 4);
      std::memcpy(bytes.data(), t.second.second.data(), bytes.size());
      if (t.first == "model.embed_tokens.weight") {
        w.add("lm_head.weight", TensorDType::F32, t.second.first, bytes);
      }
      w.add(t.first, TensorDType::F32, t.second.first, bytes);
    }
    w.write(model_ + "/model.safetensors");
  }
  dir = ModelDir::open(model_);
  ASSERT_TRUE(dir->has("lm_head.weight"));
  const QuantizeResult r2 = quantize_model(*dir, calibration(spec_.vocab, 3), qo, {});
  write_gptq_checkpoint(*dir, r2, qo, {}, root_ + "/head2");
  EXPECT_EQ(read_json(root_ + "/head2/config.json")["tie_word_embeddings"], false);
  EXPECT_TRUE(load_model(*ModelDir::open(root_ + "/head2")).lm_head.quantized());
}

// The checkpoint's integers are range-checked as read: a group size of
// 2^32 + 128 once wrapped to 128 in an int32 and was accepted; a float
// bits field was converted with undefined behaviour.
TEST_F(Pipeline, CheckpointConfigIntegersAreRangeChecked) {
  auto dir = ModelDir::open(model_);
  QuantizeOptions qo;
  qo.method = QuantMethod::Rtn;
  qo.base.group_size = 32;
  qo.overrides.push_back(parse_override("*.o_proj:bits=8"));
  const QuantizeResult r = quantize_model(*dir, {}, qo, {});
  const std::string out = root_ + "/ck";
  write_gptq_checkpoint(*dir, r, qo, {}, out);
  const nlohmann::json good = read_json(out + "/config.json");
  auto error_with = [&](const std::function<void(nlohmann::json &)> &edit) {
    nlohmann::json c = good;
    edit(c);
    write_file_synced(out + "/config.json", c.dump(2));
    try {
      read_gptq_checkpoint_config(*ModelDir::open(out));
    } catch (const ToolError &e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  auto &&contains = [](const std::string &s, const std::string &part) {
    return s.find(part) != std::string::npos;
  };
  std::string m = error_with([](nlohmann::json &c) { c["quantization_config"]["bits"] = 9.2e19; });
  EXPECT_TRUE(contains(m, "quantization_config.bits is 9.2e+19, not an integer")) << m;
  m = error_with(
      [](nlohmann::json &c) { c["quantization_config"]["group_size"] = 4294967424LL; });
  EXPECT_TRUE(contains(m, "quantization_config.group_size is 4294967424; it must be in")) << m;
  m = error_with([](nlohmann::json &c) {
    c["quantization_config"]["dynamic"]["+:^model\\.layers\\.0\\.self_attn\\.o_proj$"]["bits"] =
        -1e300;
  });
  EXPECT_TRUE(contains(m, "quantization_config.bits is -1e+300, not an integer")) << m;
  m = error_with([](nlohmann::json &c) { c["quantization_config"]["sym"] = 1; });
  EXPECT_TRUE(contains(m, "quantization_config.sym is 1, not true or false")) << m;
}

// A checkpoint's dynamic rules are untrusted patterns: deep nesting once
// overflowed std::regex's stack, (.*)*(.*)*Z ran for many minutes per
// layer, and a huge back-reference number was undefined behaviour in its
// compiler. Each is now refused or matched in bounded time.
TEST_F(Pipeline, HostileDynamicRulesAreRefusedOrMatchedQuickly) {
  auto dir = ModelDir::open(model_);
  QuantizeOptions qo;
  qo.method = QuantMethod::Rtn;
  qo.base.group_size = 32;
  const QuantizeResult r = quantize_model(*dir, {}, qo, {});
  const std::string out = root_ + "/ck";
  write_gptq_checkpoint(*dir, r, qo, {}, out);
  const nlohmann::json good = read_json(out + "/config.json");
  auto with_rule = [&](const std::string &rule) {
    nlohmann::json c = good;
    c["quantization_config"]["dynamic"] = {{rule, {{"bits", 8}}}};
    write_file_synced(out + "/config.json", c.dump(2));
    return ModelDir::open(out);
  };
  auto error_for = [&](const std::string &rule) {
    try {
      read_gptq_checkpoint_config(*with_rule(rule));
    } catch (const ToolError &e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  std::string m = error_for("+:" + std::string(100000, '(') + std::string(100000, ')'));
  EXPECT_NE(m.find("quantization_config.dynamic: regex '((((("), std::string::npos) << m;
  m = error_for("+:" + std::string(1000, '(') + std::string(1000, ')'));
  EXPECT_NE(m.find("groups nested deeper than 64"), std::string::npos) << m;
  m = error_for("+:(a)\\99999999999999999999");
  EXPECT_NE(m.find("back-references"), std::string::npos) << m;
  // Matched against every layer of the model, quickly, and matching none.
  const auto ck = with_rule("+:(.*)*(.*)*Z");
  const GptqCheckpointConfig qc = read_gptq_checkpoint_config(*ck);
  for (int64_t b = 0; b < spec_.layers; ++b) {
    for (const LinearSlot slot : block_slots(ck->config())) {
      EXPECT_EQ(checkpoint_spec_for(qc, linear_name(b, slot)).bits, 4);
    }
  }
  EXPECT_EQ(load_model(*ck).blocks.size(), static_cast<size_t>(spec_.layers));
}

// One SIGINT or SIGTERM must stop every long phase at its next check:
// loading a model, each block of a forward pass, reading id files,
// decompressing, and each tensor written (some never checked).
TEST_F(Pipeline, EveryLongPhaseStopsOnceASignalAsks) {
  struct ClearFlag {
    ~ClearFlag() { set_interrupted_for_testing(false); }
  } clear;
  auto dir = ModelDir::open(model_);
  const LlamaModel model = load_model(*dir);
  QuantizeOptions qo;
  qo.method = QuantMethod::Rtn;
  qo.base.group_size = 32;
  const QuantizeResult r = quantize_model(*dir, {}, qo, {});
  std::string ids_text;
  for (int i = 0; i < 70000; ++i) ids_text += "1 2 3\n";
  write_file_synced(root_ + "/ids.txt", ids_text);
  set_interrupted_for_testing(true);
  auto stops = [](const char *what, const std::function<void()> &phase) {
    try {
      phase();
      ADD_FAILURE() << what << " ran to its end";
    } catch (const ToolError &e) {
      EXPECT_EQ(std::string(e.what()).rfind("interrupted", 0), 0u) << what << ": " << e.what();
    }
  };
  stops("load_model", [&] { load_model(*dir); });
  stops("model_logits", [&] {
    SequenceBatch batch;
    batch.add(3);
    model_logits(model, Rope(model.config, 3), {1, 2, 3}, batch);
  });
  stops("read_id_file", [&] { read_id_file(root_ + "/ids.txt", spec_.vocab); });
  stops("write_gptq_checkpoint", [&] { write_gptq_checkpoint(*dir, r, qo, {}, root_ + "/ck"); });
  stops("SafetensorsWriter::write", [&] {
    SafetensorsWriter w;
    w.add("t", TensorDType::F32, {1}, {0, 0, 0, 0});
    w.write(root_ + "/t.safetensors");
  });
  EXPECT_EQ(stray_entries({"ids.txt"}), std::vector<std::string>{});
}

TEST(QuantSpec, GlobsAndRegexes) {
  EXPECT_TRUE(glob_match("model.layers.1*.mlp.*", "model.layers.12.mlp.up_proj"));
  EXPECT_FALSE(glob_match("model.layers.1.*", "model.layers.12.mlp.up_proj"));
  EXPECT_TRUE(glob_match("*.?_proj", "model.layers.0.self_attn.q_proj"));
  EXPECT_EQ(glob_to_regex("a.b*"), "^a\\.b.*$");
}

TEST(QuantSpec, OneActOrderPerLayerAndLaterRulesSwitchIt) {
  LayerQuantSpec base;
  base.act_group_aware = true;
  const std::vector<SpecOverride> rules = {parse_override("*.down_proj:act-order=1"),
                                           parse_override("model.layers.1.*:act-group-aware=1")};
  const LayerQuantSpec a = spec_for(base, rules, "model.layers.0.mlp.down_proj");
  EXPECT_TRUE(a.act_order);
  EXPECT_FALSE(a.act_group_aware);
  const LayerQuantSpec b = spec_for(base, rules, "model.layers.1.mlp.down_proj");
  EXPECT_FALSE(b.act_order);
  EXPECT_TRUE(b.act_group_aware);
  EXPECT_THROW(parse_override("*:act-order=1,act_group_aware=1"), ToolError);
  LayerQuantSpec both;
  both.act_order = both.act_group_aware = true;
  EXPECT_THROW(validate_spec(both, "x"), ToolError);
}

TEST(CalibrationWindows, RandomWindowsAreDisjointInOrderAndFixedBySeed) {
  std::vector<int32_t> stream(1000);
  for (size_t i = 0; i < stream.size(); ++i) stream[i] = static_cast<int32_t>(i);
  const auto a = random_windows(stream, 7, 100, 42);
  ASSERT_EQ(a.size(), 7u);
  int32_t end = 0;
  for (const auto &w : a) {
    ASSERT_EQ(w.size(), 100u);
    EXPECT_GE(w.front(), end);  // after the previous window: disjoint, in order
    EXPECT_EQ(w.back(), w.front() + 99);
    end = w.back() + 1;
  }
  EXPECT_LE(end, 1000);
  EXPECT_EQ(random_windows(stream, 7, 100, 42), a);
  EXPECT_NE(random_windows(stream, 7, 100, 43), a);
  // The generator's sequence is fixed by the standard, so these starts are
  // the same with every compiler and library.
  std::vector<int32_t> starts;
  for (const auto &w : a) starts.push_back(w.front());
  EXPECT_EQ(starts, (std::vector<int32_t>{5, 120, 325, 432, 551, 693, 806}));
  // More windows than fit: as many as cut_windows gives, packed.
  const auto packed = random_windows(stream, 50, 100, 1);
  ASSERT_EQ(packed.size(), 10u);
  for (size_t i = 0; i < packed.size(); ++i) {
    EXPECT_EQ(packed[i].front(), 100 * static_cast<int32_t>(i));
  }
  // A stream shorter than a window: one shorter window, as cut_windows.
  EXPECT_EQ(random_windows(std::vector<int32_t>(stream.begin(), stream.begin() + 50), 3, 100, 1),
            cut_windows(std::vector<int32_t>(stream.begin(), stream.begin() + 50), 3, 100));
  // Over many seeds the windows reach both ends of the stream: the first
  // starts at 0 and the last ends at the last token.
  int32_t first_lowest = 1000, last_highest = 0;
  for (uint64_t seed = 0; seed < 2000; ++seed) {
    const auto w = random_windows(stream, 7, 100, seed);
    first_lowest = std::min(first_lowest, w.front().front());
    last_highest = std::max(last_highest, w.back().back());
  }
  EXPECT_EQ(first_lowest, 0);
  EXPECT_EQ(last_highest, 999);
}

}  // namespace
