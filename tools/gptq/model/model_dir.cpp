// Opening a model directory resolves every tensor name once; later lookups
// are map finds. Shard names come from the index (when there is one) so a
// stray *.safetensors file next to a sharded checkpoint is not mistaken for
// part of it.
#include "model/model_dir.h"

#include <algorithm>
#include <cstdlib>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>

#include "common/tool_error.h"
#include "model/llama_model.h"

namespace gptqtool {
namespace {

namespace fs = std::filesystem;

constexpr const char *kIndexName = "model.safetensors.index.json";

std::string join(const std::string &dir, const std::string &name) {
  return (fs::path(dir) / name).string();
}

// The whole file as a string; `what` names it in errors ("config.json").
std::string read_text(const std::string &path, const std::string &what, const std::string &dir) {
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    throw ToolError(dir + ": no " + what + " (a Hugging Face model directory has one)");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ToolError(path + ": cannot open: " + std::strerror(errno));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw ToolError(path + ": read failed: " + std::strerror(errno));
  return text;
}

nlohmann::json parse_json(const std::string &text, const std::string &path) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception &e) {
    throw ToolError(path + ": not valid JSON: " + e.what());
  }
}

bool is_float_dtype(TensorDType d) {
  return d == TensorDType::F32 || d == TensorDType::F16 || d == TensorDType::BF16;
}

// The dtype and shape checks shared by load_f32 and check_llama_tensors.
void check_float_tensor(const ModelDir &model, const std::string &name,
                        const std::vector<int64_t> &expected_shape) {
  const TensorInfo &t = model.info(name);
  const std::string &file = model.file_of(name).path();
  if (!is_float_dtype(t.dtype)) {
    throw ToolError(file + ": " + name + " has dtype " + dtype_name(t.dtype) +
                    "; expected F32, F16 or BF16");
  }
  if (t.shape != expected_shape) {
    throw ToolError(file + ": " + name + " has shape " + shape_string(t.shape) + "; expected " +
                    shape_string(expected_shape));
  }
}

// A mixture of experts whose weights hold another number of experts than
// config.json names would otherwise fail on the first missing or unused
// tensor; say what the two counts are instead (the router's rows and the
// expert indices present in block `block`).
void check_expert_count(const ModelDir &model, int64_t block) {
  const LlamaConfig &c = model.config();
  const std::string router = router_name(c, block) + ".weight";
  const std::string key = c.model_type == "mixtral" ? "num_local_experts" : "num_experts";
  if (model.has(router)) {
    const std::vector<int64_t> &shape = model.info(router).shape;
    if (shape.size() == 2 && shape[0] != c.num_experts) {
      throw ToolError(model.path() + ": config.json's " + key + " is " +
                      std::to_string(c.num_experts) + " but the router " + router + " has " +
                      std::to_string(shape[0]) + " rows (one per expert)");
    }
  }
  // The prefix of the experts' names, up to the index.
  const std::string name = linear_name(c, block, LinearId(LinearSlot::Gate, 0));
  const std::string prefix = name.substr(0, name.find(".experts.") + 9);
  int64_t largest = -1;
  for (const std::string &t : model.tensor_names()) {
    if (t.compare(0, prefix.size(), prefix) != 0) continue;
    largest = std::max<int64_t>(largest, std::strtoll(t.c_str() + prefix.size(), nullptr, 10));
  }
  if (largest + 1 != c.num_experts) {
    throw ToolError(model.path() + ": config.json's " + key + " is " +
                    std::to_string(c.num_experts) + " but block " + std::to_string(block) +
                    "'s weights hold " +
                    (largest < 0 ? std::string("no experts")
                                 : "experts 0 to " + std::to_string(largest)) +
                    " (" + prefix + "N)");
  }
}

}  // namespace

std::unique_ptr<ModelDir> ModelDir::open(const std::string &dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    throw ToolError(dir + ": not a directory" +
                    (fs::exists(dir, ec) ? std::string() : std::string(" (it does not exist)")));
  }
  std::unique_ptr<ModelDir> model(new ModelDir());
  model->path_ = dir;

  const std::string config_path = join(dir, "config.json");
  model->config_json_ = parse_json(read_text(config_path, "config.json", dir), config_path);
  model->config_ = parse_llama_config(model->config_json_, config_path);

  const std::string index_path = join(dir, kIndexName);
  if (fs::exists(index_path, ec)) {
    const nlohmann::json index = parse_json(read_text(index_path, kIndexName, dir), index_path);
    if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object()) {
      throw ToolError(index_path + ": has no \"weight_map\" object");
    }
    const nlohmann::json &map = index["weight_map"];
    std::set<std::string> shards;
    for (auto it = map.begin(); it != map.end(); ++it) {
      if (!it.value().is_string()) {
        throw ToolError(index_path + ": weight_map entry for " + it.key() + " is " +
                        it.value().dump() + ", not a file name");
      }
      const std::string shard = it.value().get<std::string>();
      // Shards are plain names in the directory; a path could point anywhere.
      if (shard.empty() || shard.find('/') != std::string::npos || shard == "." || shard == "..") {
        throw ToolError(index_path + ": weight_map names \"" + shard + "\" for " + it.key() +
                        ", not a file name in the directory");
      }
      shards.insert(shard);
    }
    if (shards.empty()) throw ToolError(index_path + ": weight_map is empty");
    for (const auto &shard : shards) {
      const std::string shard_path = join(dir, shard);
      if (!fs::exists(shard_path, ec)) {
        throw ToolError(dir + ": shard " + shard + " listed in " + kIndexName + " is missing");
      }
      model->add_file(SafetensorsFile::open(shard_path));
    }
    for (auto it = map.begin(); it != map.end(); ++it) {
      const std::string shard = it.value().get<std::string>();
      const auto found = model->tensors_.find(it.key());
      if (found == model->tensors_.end() ||
          fs::path(found->second.file->path()).filename() != shard) {
        throw ToolError(index_path + ": maps tensor " + it.key() + " to shard " + shard +
                        ", but that shard does not contain it");
      }
    }
  } else {
    std::vector<std::string> names;
    const std::string ext = ".safetensors";
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      const std::string name = it->path().filename().string();
      std::error_code type_ec;  // a dangling link is skipped, not an error
      if (name.size() > ext.size() &&
          name.compare(name.size() - ext.size(), ext.size(), ext) == 0 &&
          it->is_regular_file(type_ec)) {
        names.push_back(name);
      }
    }
    if (ec) throw ToolError(dir + ": cannot list the directory: " + ec.message());
    if (names.empty()) throw ToolError("no *.safetensors files in " + dir);
    std::sort(names.begin(), names.end());
    for (const auto &name : names) model->add_file(SafetensorsFile::open(join(dir, name)));
  }
  // A Mixtral whose experts are stored as GPTQModel 7 writes them under
  // transformers 5 (mlp.experts.E.gate_proj, mlp.gate; --expert-names
  // gptqmodel) rather than as the checkpoint's own block_sparse_moe.experts.E.w1:
  // the weights say which.
  LlamaConfig &c = model->config_;
  if (c.mixtral_names) {
    const std::string unfused = "model.layers.0.mlp.experts.";
    for (const std::string &t : model->tensor_names()) {
      if (t.compare(0, unfused.size(), unfused) == 0) {
        c.mixtral_names = false;
        break;
      }
    }
  }
  return model;
}

void ModelDir::add_file(std::unique_ptr<SafetensorsFile> file) {
  for (const auto &t : file->tensors()) {
    const auto it = tensors_.find(t.name);
    if (it != tensors_.end()) {
      throw ToolError(path_ + ": tensor " + t.name + " is in two files, " +
                      it->second.file->path() + " and " + file->path());
    }
    tensors_[t.name] = Location{file.get(), &t};
  }
  files_.push_back(std::move(file));
}

const TensorInfo &ModelDir::info(const std::string &tensor) const {
  const auto it = tensors_.find(tensor);
  if (it == tensors_.end()) throw ToolError("tensor " + tensor + " not found in " + path_);
  return *it->second.info;
}

void ModelDir::release_pages() const {
  for (const auto &f : files_) f->release_pages();
}

const SafetensorsFile &ModelDir::file_of(const std::string &tensor) const {
  const auto it = tensors_.find(tensor);
  if (it == tensors_.end()) throw ToolError("tensor " + tensor + " not found in " + path_);
  return *it->second.file;
}

std::vector<std::string> ModelDir::tensor_names() const {
  std::vector<std::string> names;
  names.reserve(tensors_.size());
  for (const auto &kv : tensors_) names.push_back(kv.first);  // std::map: already sorted
  return names;
}

std::vector<float> ModelDir::load_f32(const std::string &tensor,
                                      const std::vector<int64_t> &expected_shape) const {
  check_float_tensor(*this, tensor, expected_shape);
  return to_float32(file_of(tensor), info(tensor));
}

HugePageVector<uint16_t> ModelDir::load_16bit(const std::string &tensor,
                                           const std::vector<int64_t> &expected_shape) const {
  check_float_tensor(*this, tensor, expected_shape);
  const TensorInfo &t = info(tensor);
  if (t.dtype != TensorDType::F16 && t.dtype != TensorDType::BF16) {
    throw ToolError(file_of(tensor).path() + ": " + tensor + " has dtype " + dtype_name(t.dtype) +
                    "; expected F16 or BF16");
  }
  // safetensors data is little-endian, as the host (safetensors.cpp).
  HugePageVector<uint16_t> bits(static_cast<size_t>(t.numel()));
  if (!bits.empty()) std::memcpy(bits.data(), file_of(tensor).data(t), bits.size() * 2);
  return bits;
}

void check_llama_tensors(const ModelDir &model) {
  const LlamaConfig &c = model.config();
  const int64_t hidden = c.hidden_size;
  std::set<std::string> used;

  auto need = [&](const std::string &name, std::vector<int64_t> shape) {
    if (!model.has(name)) {
      throw ToolError(model.path() + ": tensor " + name + " is missing (" + c.architecture +
                      " with " + std::to_string(c.num_hidden_layers) + " layers needs it)");
    }
    check_float_tensor(model, name, shape);
    used.insert(name);
  };
  // A linear is either float (.weight) or already GPTQ-quantized (.qweight
  // and its companions, whose shapes the checkpoint reader checks).
  auto linear = [&](const std::string &name, int64_t out, int64_t in, bool bias) {
    if (model.has(name + ".weight") || !model.has(name + ".qweight")) {
      need(name + ".weight", {out, in});
    } else {
      for (const char *part : {".qweight", ".qzeros", ".scales", ".g_idx"}) {
        if (model.has(name + part)) used.insert(name + part);
      }
    }
    if (bias) need(name + ".bias", {out});
  };

  need("model.embed_tokens.weight", {c.vocab_size, hidden});
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    need(p + "input_layernorm.weight", {hidden});
    need(p + "post_attention_layernorm.weight", {hidden});
    if (c.sandwich_norms) {
      need(p + "pre_feedforward_layernorm.weight", {hidden});
      need(p + "post_feedforward_layernorm.weight", {hidden});
    }
    if (c.moe()) {
      check_expert_count(model, i);
      need(router_name(c, i) + ".weight", {c.num_experts, hidden});
      if (c.shared_expert_intermediate_size > 0) need(shared_expert_gate_name(i) + ".weight", {1, hidden});
    }
    for (const LinearId id : block_linears(c)) {
      int64_t out = 0, in = 0;
      slot_shape(c, id, &out, &in);
      linear(linear_name(c, i, id), out, in, slot_has_bias(c, id));
    }
    if (c.qk_norm) {
      need(p + "self_attn.q_norm.weight", {c.head_dim});
      need(p + "self_attn.k_norm.weight", {c.head_dim});
    }
    // Older transformers saved RoPE's frequencies as a buffer; they are
    // recomputed from the config, as transformers itself does.
    used.insert(p + "self_attn.rotary_emb.inv_freq");
  }
  need("model.norm.weight", {hidden});
  if (!c.tie_word_embeddings || model.has("lm_head.qweight") || model.has("lm_head.weight")) {
    linear("lm_head", c.vocab_size, hidden, false);
  }
  // Tied, transformers makes lm_head the embeddings and ignores a stored
  // lm_head.weight; one that differs would mean two different models.
  if (c.tie_word_embeddings && model.has("lm_head.weight")) {
    const TensorInfo &e = model.info("model.embed_tokens.weight");
    const TensorInfo &h = model.info("lm_head.weight");
    if (e.dtype != h.dtype || e.nbytes != h.nbytes ||
        std::memcmp(model.file_of(e.name).data(e), model.file_of(h.name).data(h), e.nbytes) != 0) {
      throw ToolError(model.path() + ": config.json ties lm_head to the embeddings "
                      "(tie_word_embeddings), but lm_head.weight differs from "
                      "model.embed_tokens.weight; transformers would ignore lm_head.weight. Set "
                      "tie_word_embeddings to false if lm_head.weight is meant");
    }
  }
  used.insert("model.rotary_emb.inv_freq");

  // Every tensor of the files must be part of the model the config
  // describes: a config naming fewer layers than the weights hold, or a
  // bias the config does not mention, would otherwise be dropped silently
  // and the run would compute with a different model.
  std::vector<std::string> unused;
  for (const std::string &name : model.tensor_names()) {
    if (!used.count(name)) unused.push_back(name);
  }
  if (unused.empty()) return;
  const std::string &first = unused.front();
  std::string why = "it is not part of a " + c.architecture + " as config.json describes it";
  const std::string layers = "model.layers.";
  if (first.compare(0, layers.size(), layers) == 0) {
    const int64_t layer = std::strtoll(first.c_str() + layers.size(), nullptr, 10);
    if (layer >= c.num_hidden_layers) {
      why = "config.json's num_hidden_layers is " + std::to_string(c.num_hidden_layers) +
            " but the weights hold layer " + std::to_string(layer);
    }
  }
  if (first.size() > 5 && first.compare(first.size() - 5, 5, ".bias") == 0) {
    why += " (config.json gives this layer no bias)";
  }
  throw ToolError(model.path() + ": tensor " + first + " is not used: " + why +
                  (unused.size() > 1 ? " (" + std::to_string(unused.size() - 1) +
                                           " more unused tensors)"
                                     : std::string()) +
                  "; refusing to drop weights silently");
}

}  // namespace gptqtool
