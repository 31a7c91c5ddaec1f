#include "formats/gguf_tokenizer.h"

#include <map>
#include <nlohmann/json.hpp>
#include <vector>

#include "common/tool_error.h"
#include "formats/file_util.h"
#include "tokenizer/tokenizer_split_regex.h"

namespace gptqtool {

namespace {

using nlohmann::json;

// llama.cpp's token types (llama_token_type in its GGUF files).
constexpr int32_t kNormal = 1, kControl = 3, kUserDefined = 4, kUnused = 5;

json read_json(const std::string &path) {
  try {
    return json::parse(read_text_file(path));
  } catch (const json::exception &e) {
    throw ToolError(path + " is not valid JSON: " + e.what());
  }
}

bool is_type(const json &j, const char *type) {
  return j.is_object() && j.value("type", std::string()) == type;
}

bool byte_level_with_regex(const json &j, bool use_regex) {
  return is_type(j, "ByteLevel") && j.value("use_regex", true) == use_regex;
}

bool split_with(const json &j, const char *pattern) {
  return is_type(j, "Split") && j.contains("pattern") && j["pattern"].is_object() &&
         j["pattern"].value("Regex", std::string()) == pattern;
}

// llama.cpp picks its pre-tokenizer regexes by name; the name for each
// pre_tokenizer these byte-level tokenizers use, or "" when there is none.
std::string pre_tokenizer_name(const json &pre) {
  if (byte_level_with_regex(pre, true)) return "gpt-2";
  if (!is_type(pre, "Sequence") || !pre.contains("pretokenizers")) return "";
  const json &steps = pre["pretokenizers"];
  if (!steps.is_array() || steps.size() != 2) return "";
  if (is_type(steps[0], "Digits") && steps[0].value("individual_digits", false) &&
      byte_level_with_regex(steps[1], true))
    return "smollm";
  if (split_with(steps[0], tok::kLlama3Pattern) && byte_level_with_regex(steps[1], false))
    return "llama-bpe";
  if (split_with(steps[0], tok::kQwen2Pattern) && byte_level_with_regex(steps[1], false)) return "qwen2";
  return "";
}

// A special token named in tokenizer_config.json: a string or {"content": s}.
std::string token_text(const json &v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string())
    return v["content"].get<std::string>();
  return "";
}

}  // namespace

void add_gguf_tokenizer(const std::string &model_dir, int64_t vocab_size, GgufFile &file) {
  const std::string tok_path = model_dir + "/tokenizer.json";
  if (!path_exists(tok_path))
    throw ToolError(model_dir + " has no tokenizer.json; GGUF needs the tokenizer");
  const json tok = read_json(tok_path);
  const json &model = tok.contains("model") ? tok["model"] : json();
  if (!is_type(model, "BPE") || !model.contains("vocab") || !model["vocab"].is_object() ||
      !model.contains("merges") || !model["merges"].is_array())
    throw ToolError(tok_path + ": the model is not BPE with vocab and merges, which llama.cpp's "
                    "\"gpt2\" tokenizer model needs (SentencePiece tokenizers are not written)");
  const std::string pre =
      pre_tokenizer_name(tok.contains("pre_tokenizer") ? tok["pre_tokenizer"] : json());
  if (pre.empty())
    throw ToolError(tok_path + ": the pre_tokenizer is not one llama.cpp has a name for here "
                    "(byte-level GPT-2, SmolLM digits + byte-level, or the Llama 3 / Qwen2 "
                    "split + byte-level); it would tokenize differently, so no GGUF is written");

  std::vector<std::string> tokens(static_cast<size_t>(vocab_size));
  std::vector<int32_t> types(static_cast<size_t>(vocab_size), kUnused);
  std::vector<bool> filled(static_cast<size_t>(vocab_size), false);
  auto place = [&](int64_t id, const std::string &text, int32_t type) {
    if (id < 0 || id >= vocab_size)
      throw ToolError(tok_path + ": token '" + text + "' has id " + std::to_string(id) +
                      ", outside the model's vocab_size " + std::to_string(vocab_size));
    tokens[id] = text;
    types[id] = type;
    filled[id] = true;
  };
  for (auto it = model["vocab"].begin(); it != model["vocab"].end(); ++it)
    place(it.value().get<int64_t>(), it.key(), kNormal);
  if (tok.contains("added_tokens") && tok["added_tokens"].is_array())
    for (const json &a : tok["added_tokens"])
      place(a.at("id").get<int64_t>(), a.at("content").get<std::string>(),
            a.value("special", false) ? kControl : kUserDefined);
  for (int64_t id = 0; id < vocab_size; ++id)
    if (!filled[id]) tokens[id] = "[PAD" + std::to_string(id) + "]";

  std::vector<std::string> merges;
  merges.reserve(model["merges"].size());
  for (const json &m : model["merges"]) {
    if (m.is_string()) {
      merges.push_back(m.get<std::string>());
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      merges.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
    } else {
      throw ToolError(tok_path + ": a merge is neither \"a b\" nor [\"a\", \"b\"]");
    }
  }

  file.add_string("tokenizer.ggml.model", "gpt2");
  file.add_string("tokenizer.ggml.pre", pre);
  file.add_string_array("tokenizer.ggml.tokens", tokens);
  file.add_i32_array("tokenizer.ggml.token_type", types);
  file.add_string_array("tokenizer.ggml.merges", merges);

  // Special ids: tokenizer_config.json's tokens, else config.json's ids.
  std::map<std::string, int32_t> ids;
  for (int64_t id = 0; id < vocab_size; ++id)
    if (filled[id]) ids.emplace(tokens[id], static_cast<int32_t>(id));
  const std::string config_path = model_dir + "/tokenizer_config.json";
  const json tcfg = path_exists(config_path) ? read_json(config_path) : json::object();
  const json mcfg = read_json(model_dir + "/config.json");
  const struct {
    const char *config_key, *model_key, *gguf_key;
  } specials[] = {{"bos_token", "bos_token_id", "tokenizer.ggml.bos_token_id"},
                  {"eos_token", "eos_token_id", "tokenizer.ggml.eos_token_id"},
                  {"unk_token", nullptr, "tokenizer.ggml.unknown_token_id"},
                  {"pad_token", "pad_token_id", "tokenizer.ggml.padding_token_id"}};
  for (const auto &s : specials) {
    int64_t id = -1;
    if (tcfg.contains(s.config_key)) {
      const auto found = ids.find(token_text(tcfg[s.config_key]));
      if (found != ids.end()) id = found->second;
    }
    if (id < 0 && s.model_key != nullptr && mcfg.contains(s.model_key) &&
        mcfg[s.model_key].is_number_integer())
      id = mcfg[s.model_key].get<int64_t>();
    if (id >= 0 && id < vocab_size) file.add_u32(s.gguf_key, static_cast<uint32_t>(id));
  }
  for (const char *flag : {"add_bos_token", "add_eos_token"})
    if (tcfg.contains(flag) && tcfg[flag].is_boolean())
      file.add_bool(std::string("tokenizer.ggml.") + flag, tcfg[flag].get<bool>());

  // The chat template: chat_template.jinja, else tokenizer_config.json's
  // (a string, or a list of named templates whose "default" is used).
  std::string chat;
  if (path_exists(model_dir + "/chat_template.jinja")) {
    chat = read_text_file(model_dir + "/chat_template.jinja");
  } else if (tcfg.contains("chat_template")) {
    const json &t = tcfg["chat_template"];
    if (t.is_string()) chat = t.get<std::string>();
    if (t.is_array())
      for (const json &named : t)
        if (named.is_object() && named.value("name", std::string()) == "default" &&
            named.contains("template") && named["template"].is_string())
          chat = named["template"].get<std::string>();
  }
  if (!chat.empty()) file.add_string("tokenizer.chat_template", chat);
}

}  // namespace gptqtool
