// A Hugging Face model directory: config.json plus the weights, in one
// *.safetensors file or in shards listed by model.safetensors.index.json.
// Every shard is opened (mapped) up front and every tensor name resolved to
// its file, so a missing shard or a duplicated tensor is reported before
// any work starts, not hours into quantization.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/huge_page_allocator.h"

#include <nlohmann/json.hpp>

#include "formats/safetensors.h"
#include "model/model_config.h"

namespace gptqtool {

class ModelDir {
 public:
  static std::unique_ptr<ModelDir> open(const std::string &dir);  // throws ToolError

  const std::string &path() const { return path_; }
  const nlohmann::json &config_json() const { return config_json_; }  // config.json as read
  const LlamaConfig &config() const { return config_; }
  bool has(const std::string &tensor) const { return tensors_.count(tensor) != 0; }
  const TensorInfo &info(const std::string &tensor) const;  // throws "tensor X not found in DIR"
  const SafetensorsFile &file_of(const std::string &tensor) const;
  std::vector<std::string> tensor_names() const;  // sorted
  // A float tensor (F32/F16/BF16) as float32, after checking its dtype and
  // that its shape is `expected_shape`; throws ToolError naming the tensor,
  // its file, and the expected and actual shape or dtype.
  std::vector<float> load_f32(const std::string &tensor,
                              const std::vector<int64_t> &expected_shape) const;
  // The same checks, for a tensor stored as F16 or BF16: its values' bits
  // as stored (info(tensor).dtype says which); ToolError for other dtypes.
  HugePageVector<uint16_t> load_16bit(const std::string &tensor,
                                   const std::vector<int64_t> &expected_shape) const;
  const std::vector<std::unique_ptr<SafetensorsFile>> &files() const { return files_; }
  // SafetensorsFile::release_pages for every file.
  void release_pages() const;

 private:
  struct Location {
    const SafetensorsFile *file;
    const TensorInfo *info;
  };
  ModelDir() = default;
  void add_file(std::unique_ptr<SafetensorsFile> file);

  std::string path_;
  nlohmann::json config_json_;
  LlamaConfig config_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, Location> tensors_;
};

// Checks that every tensor a LlamaForCausalLM with this config needs is
// present with the right shape and a float dtype, and that the files hold
// nothing else (a config naming fewer layers than the weights, or a bias it
// does not give, would otherwise drop weights silently; old RoPE buffers,
// rotary_emb.inv_freq, are the one exception). Throws ToolError on the
// first problem. A linear layer may instead be GPTQ-quantized
// (<name>.qweight present, no <name>.weight); the caller validates those.
void check_llama_tensors(const ModelDir &model);

}  // namespace gptqtool
