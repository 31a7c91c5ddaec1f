// config.json parsing and Hugging Face model directories: a tiny LLaMA
// (hidden 8, 2 layers, 2 heads, 1 KV head) written as one file, as shards
// with an index, and broken in each way a download or a conversion can
// break it.
#include <gtest/gtest.h>

#include <stdlib.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/tool_error.h"
#include "formats/safetensors.h"
#include "model/embedding_table.h"
#include "model/model_config.h"
#include "model/model_dir.h"

namespace gptqtool {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Shape = std::vector<int64_t>;

#define EXPECT_HAS(message, part) \
  EXPECT_NE(std::string(message).find(part), std::string::npos) << "message: " << (message)

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "gptq_md_XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const std::string &path() const { return path_; }
  std::string file(const std::string &name) const { return (fs::path(path_) / name).string(); }

 private:
  std::string path_;
};

json tiny_config() {
  return json{{"architectures", {"LlamaForCausalLM"}},
              {"model_type", "llama"},
              {"hidden_size", 8},
              {"intermediate_size", 16},
              {"num_hidden_layers", 2},
              {"num_attention_heads", 2},
              {"num_key_value_heads", 1},
              {"vocab_size", 10},
              {"torch_dtype", "float16"}};
}

// Every tensor of the tiny LLaMA with its shape, in checkpoint order.
std::vector<std::pair<std::string, Shape>> tiny_tensors() {
  std::vector<std::pair<std::string, Shape>> t = {{"model.embed_tokens.weight", {10, 8}}};
  for (int i = 0; i < 2; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    t.push_back({p + "input_layernorm.weight", {8}});
    t.push_back({p + "self_attn.q_proj.weight", {8, 8}});
    t.push_back({p + "self_attn.k_proj.weight", {4, 8}});
    t.push_back({p + "self_attn.v_proj.weight", {4, 8}});
    t.push_back({p + "self_attn.o_proj.weight", {8, 8}});
    t.push_back({p + "post_attention_layernorm.weight", {8}});
    t.push_back({p + "mlp.gate_proj.weight", {16, 8}});
    t.push_back({p + "mlp.up_proj.weight", {16, 8}});
    t.push_back({p + "mlp.down_proj.weight", {8, 16}});
  }
  t.push_back({"model.norm.weight", {8}});
  t.push_back({"lm_head.weight", {10, 8}});
  return t;
}

int64_t numel(const Shape &s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

// F32 data whose values encode the position, so loads can be checked.
std::vector<uint8_t> f32_bytes(const Shape &s, float base) {
  std::vector<float> v(static_cast<size_t>(numel(s)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = base + 0.25f * static_cast<float>(i);
  std::vector<uint8_t> b(v.size() * 4);
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

void write_json(const std::string &path, const json &j) {
  std::ofstream out(path);
  out << j.dump(2);
  ASSERT_TRUE(out.good());
}

// Writes `tensors` into `file` in dir as F32, except those named in `dtypes`.
void write_shard(const TempDir &dir, const std::string &file,
                 const std::vector<std::pair<std::string, Shape>> &tensors,
                 const std::map<std::string, TensorDType> &dtypes = {}) {
  SafetensorsWriter w;
  w.set_metadata("format", "pt");
  float base = 0;
  for (const auto &t : tensors) {
    const auto it = dtypes.find(t.first);
    if (it == dtypes.end()) {
      w.add(t.first, TensorDType::F32, t.second, f32_bytes(t.second, base));
    } else {
      w.add(t.first, it->second, t.second,
            std::vector<uint8_t>(numel(t.second) * dtype_size(it->second), 0));
    }
    base += 100;
  }
  w.write(dir.file(file));
}

void write_single(const TempDir &dir, const json &config = tiny_config(),
                  const std::vector<std::pair<std::string, Shape>> &tensors = tiny_tensors(),
                  const std::map<std::string, TensorDType> &dtypes = {}) {
  write_json(dir.file("config.json"), config);
  write_shard(dir, "model.safetensors", tensors, dtypes);
}

std::string open_error(const TempDir &dir) {
  try {
    ModelDir::open(dir.path());
  } catch (const ToolError &e) {
    return e.what();
  }
  return "";
}

std::string check_error(const TempDir &dir) {
  auto model = ModelDir::open(dir.path());
  try {
    check_llama_tensors(*model);
  } catch (const ToolError &e) {
    return e.what();
  }
  return "";
}

std::string config_error(const json &config) {
  try {
    parse_llama_config(config, "x/config.json");
  } catch (const ToolError &e) {
    return e.what();
  }
  return "";
}

// ---- config.json ----

TEST(LlamaConfig, TransformersDefaults) {
  json j = tiny_config();
  j.erase("num_key_value_heads");
  j.erase("torch_dtype");
  const LlamaConfig c = parse_llama_config(j, "config.json");
  EXPECT_EQ(c.architecture, "LlamaForCausalLM");
  EXPECT_EQ(c.model_type, "llama");
  EXPECT_EQ(c.hidden_size, 8);
  EXPECT_EQ(c.intermediate_size, 16);
  EXPECT_EQ(c.num_hidden_layers, 2);
  EXPECT_EQ(c.num_attention_heads, 2);
  EXPECT_EQ(c.num_key_value_heads, 2);
  EXPECT_EQ(c.head_dim, 4);
  EXPECT_EQ(c.vocab_size, 10);
  EXPECT_EQ(c.max_position_embeddings, 2048);
  EXPECT_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_EQ(c.rope_theta, 10000.0);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_FALSE(c.o_proj_bias);
  EXPECT_FALSE(c.mlp_bias);
  EXPECT_EQ(c.rope_type, "default");
  EXPECT_EQ(c.torch_dtype, "");
  EXPECT_EQ(c.sliding_window, 0);
}

TEST(LlamaConfig, Llama3WithEverythingSet) {
  json j = tiny_config();
  j["head_dim"] = 6;  // explicit head_dim need not be hidden / heads
  j["rms_norm_eps"] = 1e-5;
  j["rope_theta"] = 500000.0;
  j["max_position_embeddings"] = 131072;
  j["tie_word_embeddings"] = true;
  j["attention_bias"] = true;
  j["mlp_bias"] = true;
  j["torch_dtype"] = "bfloat16";
  j["rope_scaling"] = {{"rope_type", "llama3"},
                       {"factor", 8.0},
                       {"low_freq_factor", 1.0},
                       {"high_freq_factor", 4.0},
                       {"original_max_position_embeddings", 8192}};
  const LlamaConfig c = parse_llama_config(j, "config.json");
  EXPECT_EQ(c.head_dim, 6);
  EXPECT_EQ(c.num_key_value_heads, 1);
  EXPECT_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_EQ(c.rope_theta, 500000.0);
  EXPECT_EQ(c.max_position_embeddings, 131072);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_TRUE(c.attention_bias);
  EXPECT_TRUE(c.o_proj_bias);
  EXPECT_TRUE(c.mlp_bias);
  EXPECT_EQ(c.torch_dtype, "bfloat16");
  EXPECT_EQ(c.rope_type, "llama3");
  EXPECT_EQ(c.rope_factor, 8.0);
  EXPECT_EQ(c.rope_low_freq_factor, 1.0);
  EXPECT_EQ(c.rope_high_freq_factor, 4.0);
  EXPECT_EQ(c.rope_original_max_pos, 8192);

  j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};  // the older key
  const LlamaConfig lin = parse_llama_config(j, "config.json");
  EXPECT_EQ(lin.rope_type, "linear");
  EXPECT_EQ(lin.rope_factor, 2.0);
  j["rope_scaling"] = {{"rope_type", "default"}};
  EXPECT_EQ(parse_llama_config(j, "config.json").rope_type, "default");
}

TEST(LlamaConfig, Qwen2AndMistralBiasesAndSlidingWindow) {
  json q = tiny_config();
  q["architectures"] = {"Qwen2ForCausalLM"};
  q["model_type"] = "qwen2";
  q["attention_bias"] = false;  // ignored: Qwen2 always has q/k/v biases
  q["sliding_window"] = 1024;
  q["use_sliding_window"] = false;
  LlamaConfig c = parse_llama_config(q, "config.json");
  EXPECT_TRUE(c.attention_bias);
  EXPECT_FALSE(c.o_proj_bias);
  EXPECT_FALSE(c.mlp_bias);
  EXPECT_EQ(c.max_position_embeddings, 32768);
  EXPECT_EQ(c.sliding_window, 0);
  q["use_sliding_window"] = true;
  q["max_window_layers"] = 1;
  c = parse_llama_config(q, "config.json");
  EXPECT_EQ(c.sliding_window, 1024);
  EXPECT_EQ(c.max_window_layers, 1);

  json m = tiny_config();
  m["architectures"] = {"MistralForCausalLM"};
  m["model_type"] = "mistral";
  m["max_position_embeddings"] = 32768;
  m["sliding_window"] = 4096;
  c = parse_llama_config(m, "config.json");
  EXPECT_EQ(c.sliding_window, 4096);
  EXPECT_FALSE(c.attention_bias);
  m["sliding_window"] = nullptr;  // Mistral v0.2+: no window
  EXPECT_EQ(parse_llama_config(m, "config.json").sliding_window, 0);
  m["sliding_window"] = 32768;  // a window as long as the context is none
  EXPECT_EQ(parse_llama_config(m, "config.json").sliding_window, 0);
  m.erase("sliding_window");  // transformers' default
  EXPECT_EQ(parse_llama_config(m, "config.json").sliding_window, 4096);
}

TEST(LlamaConfig, RefusesOtherArchitectures) {
  json j = tiny_config();
  j["architectures"] = {"GPT2LMHeadModel"};
  j["model_type"] = "gpt2";
  const std::string msg = config_error(j);
  EXPECT_HAS(msg, "x/config.json");
  EXPECT_HAS(msg, "GPT2LMHeadModel is not a LLaMA-family architecture; supported: "
                  "LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM");
  j["architectures"] = {"LlamaForSequenceClassification"};
  j["model_type"] = "llama";
  EXPECT_HAS(config_error(j), "LlamaForSequenceClassification is not supported");
  j["architectures"] = {"LlamaForCausalLM"};
  j["model_type"] = "mistral";
  EXPECT_HAS(config_error(j), "does not match model_type \"mistral\"");
  j.erase("architectures");
  j.erase("model_type");
  EXPECT_HAS(config_error(j), "cannot tell the model family");
  EXPECT_HAS(config_error(json::array()), "not a JSON object");
}

TEST(LlamaConfig, RefusesMissingAndBadFields) {
  json j = tiny_config();
  j.erase("hidden_size");
  EXPECT_HAS(config_error(j), "required field \"hidden_size\" is missing");
  j = tiny_config();
  j["vocab_size"] = nullptr;
  EXPECT_HAS(config_error(j), "required field \"vocab_size\" is missing");
  j = tiny_config();
  j["num_hidden_layers"] = 0;
  EXPECT_HAS(config_error(j), "\"num_hidden_layers\" is 0; it must be");
  j = tiny_config();
  j["intermediate_size"] = "16";
  EXPECT_HAS(config_error(j), "\"intermediate_size\" is \"16\", not an integer");
  j = tiny_config();
  j["tie_word_embeddings"] = 1;
  EXPECT_HAS(config_error(j), "\"tie_word_embeddings\" is 1, not true/false");
  j = tiny_config();
  j["hidden_size"] = 9;
  j["num_attention_heads"] = 3;
  j["num_key_value_heads"] = 3;
  j["hidden_size"] = 10;
  EXPECT_HAS(config_error(j), "hidden_size 10 is not divisible by num_attention_heads 3");
  j = tiny_config();
  j["num_attention_heads"] = 4;
  j["num_key_value_heads"] = 3;
  EXPECT_HAS(config_error(j), "num_attention_heads 4 is not a multiple of num_key_value_heads 3");
  j = tiny_config();
  j["hidden_act"] = "gelu";
  EXPECT_HAS(config_error(j), "hidden_act \"gelu\" is not supported");
  j = tiny_config();
  j["rms_norm_eps"] = -1;
  EXPECT_HAS(config_error(j), "rms_norm_eps");
}

// Integers are range-checked as they are read: a float where an integer
// belongs (converting 9.2e19 to an integer is undefined behaviour) or an
// integer beyond int64 is refused with the field named.
TEST(LlamaConfig, RefusesIntegersOutOfRange) {
  json j = tiny_config();
  j["vocab_size"] = 9.2e19;
  EXPECT_HAS(config_error(j), "x/config.json: \"vocab_size\" is 9.2e+19, not an integer");
  j = tiny_config();
  j["num_hidden_layers"] = 2.0;
  EXPECT_HAS(config_error(j), "\"num_hidden_layers\" is 2.0, not an integer");
  j = tiny_config();
  j["hidden_size"] = 18446744073709551615ULL;
  EXPECT_HAS(config_error(j), "\"hidden_size\" is 18446744073709551615; it must be");
  // Sizes are bounded (tensors, BLAS and token ids index with 32 bits) and
  // the q and k/v widths are products checked before use.
  j = tiny_config();
  j["num_attention_heads"] = int64_t{1} << 62;
  j["num_key_value_heads"] = int64_t{1} << 62;
  j["head_dim"] = 4;
  EXPECT_HAS(config_error(j), "\"num_attention_heads\" is 4611686018427387904; it must be in "
                              "[1, 2147483647]");
  j = tiny_config();
  j["num_attention_heads"] = 1 << 20;
  j["num_key_value_heads"] = 1 << 19;
  j["head_dim"] = 4096;
  EXPECT_HAS(config_error(j), "num_attention_heads 1048576 x head_dim 4096 is larger than "
                              "2147483647");
  j["num_attention_heads"] = 1 << 19;
  j["num_key_value_heads"] = 1 << 19;
  j["head_dim"] = 4096;
  EXPECT_HAS(config_error(j), "num_attention_heads 524288 x head_dim 4096");
  j = tiny_config();
  j["max_position_embeddings"] = int64_t{1} << 40;
  EXPECT_HAS(config_error(j), "\"max_position_embeddings\" is 1099511627776; it must be in");
  j = tiny_config();
  j["num_hidden_layers"] = 1 << 30;
  EXPECT_HAS(config_error(j), "\"num_hidden_layers\" is 1073741824; it must be in [1, 65536]");
  j = tiny_config();
  j["sliding_window"] = -5;
  j["architectures"] = {"MistralForCausalLM"};
  j["model_type"] = "mistral";
  EXPECT_HAS(config_error(j), "\"sliding_window\" is -5; it must be >= 0");
}

TEST(LlamaConfig, RefusesUnsupportedRopeScaling) {
  json j = tiny_config();
  j["rope_scaling"] = {{"rope_type", "longrope"}, {"factor", 4.0}};
  EXPECT_HAS(config_error(j), "RoPE type \"longrope\" is not supported (supported: default, "
                              "linear, dynamic, yarn, llama3)");
  j["rope_scaling"] = {{"rope_type", "linear"}};
  EXPECT_HAS(config_error(j), "RoPE of type linear has no \"rope_scaling\".factor");
  j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0}};
  EXPECT_HAS(config_error(j), "has no \"rope_scaling\".high_freq_factor");
  j["rope_scaling"] = {{"rope_type", "llama3"},
                       {"factor", 8.0},
                       {"low_freq_factor", 4.0},
                       {"high_freq_factor", 4.0},
                       {"original_max_position_embeddings", 8192}};
  EXPECT_HAS(config_error(j), "low_freq_factor < high_freq_factor");
}

// ---- model directories ----

TEST(ModelDir, SingleFile) {
  TempDir dir;
  write_single(dir);
  auto model = ModelDir::open(dir.path());
  EXPECT_EQ(model->path(), dir.path());
  EXPECT_EQ(model->config().hidden_size, 8);
  EXPECT_EQ(model->config_json()["torch_dtype"], "float16");
  const auto expected = tiny_tensors();
  const std::vector<std::string> names = model->tensor_names();
  ASSERT_EQ(names.size(), expected.size());
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  EXPECT_EQ(names.front(), "lm_head.weight");
  EXPECT_TRUE(model->has("model.norm.weight"));
  EXPECT_FALSE(model->has("model.norm.bias"));
  EXPECT_EQ(model->file_of("model.norm.weight").path(), dir.file("model.safetensors"));
  EXPECT_EQ(model->info("model.layers.1.mlp.down_proj.weight").shape, (Shape{8, 16}));
  check_llama_tensors(*model);

  // model.layers.0.self_attn.k_proj.weight is the 4th tensor written: base 300.
  const std::vector<float> k = model->load_f32("model.layers.0.self_attn.k_proj.weight", {4, 8});
  ASSERT_EQ(k.size(), 32u);
  EXPECT_EQ(k[0], 300.0f);
  EXPECT_EQ(k[31], 300.0f + 0.25f * 31);
  try {
    model->info("model.layers.7.mlp.up_proj.weight");
    FAIL() << "unknown tensor found";
  } catch (const ToolError &e) {
    EXPECT_HAS(e.what(), "tensor model.layers.7.mlp.up_proj.weight not found in " + dir.path());
  }
  EXPECT_THROW(model->file_of("nope"), ToolError);
}

TEST(ModelDir, ShardedWithIndex) {
  TempDir dir;
  write_json(dir.file("config.json"), tiny_config());
  const auto all = tiny_tensors();
  const std::vector<std::pair<std::string, Shape>> first(all.begin(), all.begin() + 7);
  const std::vector<std::pair<std::string, Shape>> second(all.begin() + 7, all.end());
  write_shard(dir, "model-00001-of-00002.safetensors", first);
  write_shard(dir, "model-00002-of-00002.safetensors", second);
  // A stray file not in the index must not be read (it would duplicate).
  write_shard(dir, "consolidated.safetensors", all);
  json map = json::object();
  for (const auto &t : first) map[t.first] = "model-00001-of-00002.safetensors";
  for (const auto &t : second) map[t.first] = "model-00002-of-00002.safetensors";
  write_json(dir.file("model.safetensors.index.json"),
             json{{"metadata", {{"total_size", 1234}}}, {"weight_map", map}});

  auto model = ModelDir::open(dir.path());
  EXPECT_EQ(model->tensor_names().size(), all.size());
  EXPECT_EQ(model->files().size(), 2u);
  EXPECT_EQ(model->file_of("model.embed_tokens.weight").path(),
            dir.file("model-00001-of-00002.safetensors"));
  EXPECT_EQ(model->file_of("lm_head.weight").path(), dir.file("model-00002-of-00002.safetensors"));
  check_llama_tensors(*model);
  // lm_head is the last of `second`, written 8th there: base 100 * (size - 1).
  const std::vector<float> head = model->load_f32("lm_head.weight", {10, 8});
  EXPECT_EQ(head[1], 100.0f * static_cast<float>(second.size() - 1) + 0.25f);
}

TEST(ModelDir, MissingShard) {
  TempDir dir;
  write_json(dir.file("config.json"), tiny_config());
  write_shard(dir, "model-00001-of-00002.safetensors", {{"model.norm.weight", {8}}});
  write_json(dir.file("model.safetensors.index.json"),
             json{{"weight_map",
                   {{"model.norm.weight", "model-00001-of-00002.safetensors"},
                    {"lm_head.weight", "model-00002-of-00002.safetensors"}}}});
  EXPECT_HAS(open_error(dir), "shard model-00002-of-00002.safetensors listed in "
                              "model.safetensors.index.json is missing");
}

TEST(ModelDir, IndexMapsTensorToWrongShard) {
  TempDir dir;
  write_json(dir.file("config.json"), tiny_config());
  write_shard(dir, "a.safetensors", {{"model.norm.weight", {8}}});
  write_shard(dir, "b.safetensors", {{"lm_head.weight", {10, 8}}});
  write_json(dir.file("model.safetensors.index.json"),
             json{{"weight_map",
                   {{"model.norm.weight", "b.safetensors"}, {"lm_head.weight", "b.safetensors"}}}});
  // Only b is named, so model.norm.weight is nowhere.
  EXPECT_HAS(open_error(dir), "maps tensor model.norm.weight to shard b.safetensors, but that "
                              "shard does not contain it");
  write_json(dir.file("model.safetensors.index.json"),
             json{{"weight_map",
                   {{"model.norm.weight", "b.safetensors"}, {"lm_head.weight", "a.safetensors"}}}});
  EXPECT_HAS(open_error(dir), "maps tensor lm_head.weight to shard a.safetensors");
  write_json(dir.file("model.safetensors.index.json"), json{{"weight_map", {{"x", "../a.safetensors"}}}});
  EXPECT_HAS(open_error(dir), "not a file name in the directory");
  write_json(dir.file("model.safetensors.index.json"), json{{"metadata", json::object()}});
  EXPECT_HAS(open_error(dir), "has no \"weight_map\" object");
}

TEST(ModelDir, TensorInTwoShards) {
  TempDir dir;
  write_json(dir.file("config.json"), tiny_config());
  write_shard(dir, "a.safetensors", {{"model.norm.weight", {8}}, {"x", {1}}});
  write_shard(dir, "b.safetensors", {{"model.norm.weight", {8}}});
  const std::string msg = open_error(dir);
  EXPECT_HAS(msg, "tensor model.norm.weight is in two files");
  EXPECT_HAS(msg, dir.file("a.safetensors"));
  EXPECT_HAS(msg, dir.file("b.safetensors"));
}

TEST(ModelDir, NoSafetensorsFiles) {
  TempDir dir;
  write_json(dir.file("config.json"), tiny_config());
  write_json(dir.file("model.safetensors.json"), json::object());  // not a *.safetensors
  EXPECT_HAS(open_error(dir), "no *.safetensors files in " + dir.path());
}

TEST(ModelDir, MissingOrBrokenConfig) {
  TempDir dir;
  write_shard(dir, "model.safetensors", {{"model.norm.weight", {8}}});
  EXPECT_HAS(open_error(dir), dir.path() + ": no config.json");
  std::ofstream(dir.file("config.json")) << "{\"hidden_size\": ";
  EXPECT_HAS(open_error(dir), "config.json: not valid JSON");
  json j = tiny_config();
  j["architectures"] = {"GPT2LMHeadModel"};
  j["model_type"] = "gpt2";
  write_json(dir.file("config.json"), j);
  EXPECT_HAS(open_error(dir), "GPT2LMHeadModel is not a LLaMA-family architecture");
  j = tiny_config();
  j.erase("num_attention_heads");
  write_json(dir.file("config.json"), j);
  EXPECT_HAS(open_error(dir), "required field \"num_attention_heads\" is missing");
  TempDir other;
  EXPECT_HAS(open_error(other), "no config.json");
  const std::string missing = other.file("absent");
  try {
    ModelDir::open(missing);
    FAIL();
  } catch (const ToolError &e) {
    EXPECT_HAS(e.what(), missing + ": not a directory (it does not exist)");
  }
}

TEST(ModelDir, CheckFindsWrongDtype) {
  TempDir dir;
  write_single(dir, tiny_config(), tiny_tensors(),
               {{"model.layers.0.mlp.up_proj.weight", TensorDType::I32}});
  EXPECT_HAS(check_error(dir),
             "model.layers.0.mlp.up_proj.weight has dtype I32; expected F32, F16 or BF16");
}

TEST(ModelDir, CheckFindsMissingAndMisshapenTensors) {
  {
    TempDir dir;
    auto tensors = tiny_tensors();
    tensors.erase(tensors.begin() + 3);  // model.layers.0.self_attn.k_proj.weight
    write_single(dir, tiny_config(), tensors);
    EXPECT_HAS(check_error(dir), "tensor model.layers.0.self_attn.k_proj.weight is missing");
  }
  {
    TempDir dir;
    auto tensors = tiny_tensors();
    tensors[4].second = {8, 8};  // v_proj with 2 KV heads instead of 1
    write_single(dir, tiny_config(), tensors);
    EXPECT_HAS(check_error(dir),
               "model.layers.0.self_attn.v_proj.weight has shape [8, 8]; expected [4, 8]");
  }
  {
    TempDir dir;  // untied model without lm_head
    auto tensors = tiny_tensors();
    tensors.pop_back();
    write_single(dir, tiny_config(), tensors);
    EXPECT_HAS(check_error(dir), "tensor lm_head.weight is missing");
    json tied = tiny_config();
    tied["tie_word_embeddings"] = true;
    write_json(dir.file("config.json"), tied);
    EXPECT_EQ(check_error(dir), "");
  }
  {
    TempDir dir;  // Qwen2 needs q/k/v biases
    json q = tiny_config();
    q["architectures"] = {"Qwen2ForCausalLM"};
    q["model_type"] = "qwen2";
    write_single(dir, q);
    EXPECT_HAS(check_error(dir), "tensor model.layers.0.self_attn.q_proj.bias is missing");
    auto tensors = tiny_tensors();
    for (int i = 0; i < 2; ++i) {
      const std::string p = "model.layers." + std::to_string(i) + ".self_attn.";
      tensors.push_back({p + "q_proj.bias", {8}});
      tensors.push_back({p + "k_proj.bias", {4}});
      tensors.push_back({p + "v_proj.bias", {4}});
    }
    write_single(dir, q, tensors);
    EXPECT_EQ(check_error(dir), "");
  }
}

// Weights the config does not account for are refused, not dropped: a
// config naming fewer layers than the files hold was quantized (and exited
// 0) as a smaller model.
TEST(ModelDir, CheckRefusesTensorsTheConfigDoesNotUse) {
  {
    TempDir dir;
    json one_layer = tiny_config();
    one_layer["num_hidden_layers"] = 1;
    write_single(dir, one_layer);
    const std::string m = check_error(dir);
    EXPECT_HAS(m, "tensor model.layers.1.input_layernorm.weight is not used: config.json's "
                  "num_hidden_layers is 1 but the weights hold layer 1 (8 more unused tensors)");
  }
  {
    TempDir dir;  // a bias the config does not give (attention_bias false)
    auto tensors = tiny_tensors();
    tensors.push_back({"model.layers.0.self_attn.q_proj.bias", {8}});
    write_single(dir, tiny_config(), tensors);
    EXPECT_HAS(check_error(dir), "tensor model.layers.0.self_attn.q_proj.bias is not used: it is "
                                 "not part of a LlamaForCausalLM as config.json describes it "
                                 "(config.json gives this layer no bias)");
  }
  {
    TempDir dir;  // anything else
    auto tensors = tiny_tensors();
    tensors.push_back({"model.layers.0.self_attn.q_norm.weight", {4}});
    write_single(dir, tiny_config(), tensors);
    EXPECT_HAS(check_error(dir), "tensor model.layers.0.self_attn.q_norm.weight is not used");
  }
  {
    TempDir dir;  // RoPE buffers of older transformers are recomputed, not refused
    auto tensors = tiny_tensors();
    tensors.push_back({"model.layers.0.self_attn.rotary_emb.inv_freq", {2}});
    tensors.push_back({"model.layers.1.self_attn.rotary_emb.inv_freq", {2}});
    write_single(dir, tiny_config(), tensors);
    EXPECT_EQ(check_error(dir), "");
  }
}

// Tied, transformers uses the embeddings as lm_head whatever lm_head.weight
// holds; the tool used the stored lm_head.weight. A copy of the embeddings
// is accepted (and ignored); anything else is two different models.
TEST(ModelDir, TiedLmHeadMustBeTheEmbeddings) {
  json tied = tiny_config();
  tied["tie_word_embeddings"] = true;
  {
    TempDir dir;
    write_single(dir, tied);  // lm_head.weight holds other values than embed_tokens
    EXPECT_HAS(check_error(dir), "lm_head.weight differs from model.embed_tokens.weight");
  }
  {
    TempDir dir;
    write_json(dir.file("config.json"), tied);
    SafetensorsWriter w;
    float base = 0;
    for (const auto &t : tiny_tensors()) {
      const bool head = t.first == "lm_head.weight";
      w.add(t.first, TensorDType::F32, t.second, f32_bytes(t.second, head ? 0.0f : base));
      base += 100;
    }
    w.write(dir.file("model.safetensors"));
    EXPECT_EQ(check_error(dir), "");
  }
}

TEST(ModelDir, CheckAcceptsQuantizedLinears) {
  TempDir dir;
  auto tensors = tiny_tensors();
  std::map<std::string, TensorDType> dtypes;
  for (auto &t : tensors) {
    if (t.first == "model.layers.1.mlp.down_proj.weight") {
      t.first = "model.layers.1.mlp.down_proj.qweight";
      t.second = {2, 8};  // 4-bit codes of 16 inputs, packed 8 per int32
      dtypes[t.first] = TensorDType::I32;
    }
  }
  write_single(dir, tiny_config(), tensors, dtypes);
  EXPECT_EQ(check_error(dir), "");
}

TEST(ModelDir, LoadF32ChecksShapeAndDtypeAndConverts) {
  TempDir dir;
  write_json(dir.file("config.json"), tiny_config());
  SafetensorsWriter w;
  w.add("w.f32", TensorDType::F32, {16, 8}, f32_bytes({16, 8}, 1.0f));
  const std::vector<uint16_t> bf16 = {0x3f80, 0xc040};  // 1, -3
  const std::vector<uint16_t> f16 = {0x3800, 0x0001};   // 0.5, 2^-24
  std::vector<uint8_t> b(4), h(4);
  std::memcpy(b.data(), bf16.data(), 4);
  std::memcpy(h.data(), f16.data(), 4);
  w.add("w.bf16", TensorDType::BF16, {1, 2}, b);
  w.add("w.f16", TensorDType::F16, {2}, h);
  w.add("w.i8", TensorDType::I8, {2}, {1, 2});
  w.write(dir.file("model.safetensors"));
  auto model = ModelDir::open(dir.path());

  try {
    model->load_f32("w.f32", {8, 16});
    FAIL() << "transposed shape accepted";
  } catch (const ToolError &e) {
    EXPECT_HAS(e.what(), dir.file("model.safetensors"));
    EXPECT_HAS(e.what(), "w.f32 has shape [16, 8]; expected [8, 16]");
  }
  EXPECT_THROW(model->load_f32("w.f32", {128}), ToolError);
  try {
    model->load_f32("w.i8", {2});
    FAIL() << "I8 loaded as float";
  } catch (const ToolError &e) {
    EXPECT_HAS(e.what(), "w.i8 has dtype I8; expected F32, F16 or BF16");
  }
  EXPECT_THROW(model->load_f32("w.absent", {2}), ToolError);
  EXPECT_EQ(model->load_f32("w.bf16", {1, 2}), (std::vector<float>{1.0f, -3.0f}));
  EXPECT_EQ(model->load_f32("w.f16", {2}), (std::vector<float>{0.5f, 5.9604644775390625e-8f}));
  EXPECT_EQ(model->load_f32("w.f32", {16, 8})[5], 2.25f);
}

// Embeddings stay in their stored dtype and their rows widen exactly: the
// table gives what load_f32 gives, row by row and whole.
TEST(ModelDir, EmbeddingTableKeepsTheStoredDtype) {
  TempDir dir;
  write_json(dir.file("config.json"), tiny_config());
  SafetensorsWriter w;
  // Three rows of two: normal, subnormal and negative values, inf, a NaN.
  const std::vector<uint16_t> bf16 = {0x3f80, 0xc040, 0x0001, 0x8000, 0x7f80, 0x7fc1};
  const std::vector<uint16_t> f16 = {0x3800, 0x0001, 0xbc00, 0x7bff, 0x7c00, 0x7e01};
  std::vector<uint8_t> b(12), h(12);
  std::memcpy(b.data(), bf16.data(), 12);
  std::memcpy(h.data(), f16.data(), 12);
  w.add("e.bf16", TensorDType::BF16, {3, 2}, b);
  w.add("e.f16", TensorDType::F16, {3, 2}, h);
  w.add("e.f32", TensorDType::F32, {3, 2}, f32_bytes({3, 2}, 1.0f));
  w.add("e.i8", TensorDType::I8, {3, 2}, std::vector<uint8_t>(6, 1));
  w.write(dir.file("model.safetensors"));
  auto model = ModelDir::open(dir.path());

  const auto as_vector = [](const HugePageVector<uint16_t> &v) {
    return std::vector<uint16_t>(v.begin(), v.end());
  };
  EXPECT_EQ(as_vector(model->load_16bit("e.bf16", {3, 2})), bf16);
  EXPECT_EQ(as_vector(model->load_16bit("e.f16", {3, 2})), f16);
  try {
    model->load_16bit("e.f32", {3, 2});
    FAIL() << "F32 loaded as 16-bit";
  } catch (const ToolError &e) {
    EXPECT_HAS(e.what(), "e.f32 has dtype F32; expected F16 or BF16");
  }
  EXPECT_THROW(model->load_16bit("e.bf16", {2, 3}), ToolError);
  for (const std::string name : {"e.bf16", "e.f16", "e.f32"}) {
    SCOPED_TRACE(name);
    const EmbeddingTable table = EmbeddingTable::load(*model, name, 3, 2);
    const std::vector<float> want = model->load_f32(name, {3, 2});
    // The table holds the rows in the stored dtype, and only those.
    EXPECT_EQ(table.half_rows() != nullptr, name != "e.f32");
    EXPECT_EQ(table.f32_rows() != nullptr, name == "e.f32");
    if (table.f32_rows() != nullptr) {
      EXPECT_EQ(*table.f32_rows(), want);
    }
    for (int64_t id = 0; id < 3; ++id) {
      float row[2] = {-1.0f, -1.0f};
      table.row(id, row);
      EXPECT_EQ(std::memcmp(row, want.data() + 2 * id, sizeof row), 0) << "row " << id;
    }
  }
  EXPECT_THROW(EmbeddingTable::load(*model, "e.i8", 3, 2), ToolError);
  EXPECT_THROW(EmbeddingTable::load(*model, "e.bf16", 2, 3), ToolError);
  EXPECT_THROW(EmbeddingTable::load(*model, "e.absent", 3, 2), ToolError);
}

}  // namespace
}  // namespace gptqtool
