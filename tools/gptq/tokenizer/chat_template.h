// A model's chat template (tokenizer_config.json's "chat_template", or
// chat_template.jinja / chat_template.json beside it), rendered exactly as
// transformers' apply_chat_template renders it, for the common families:
//
//   ChatML    <|im_start|>role\ncontent<|im_end|>\n per message, with or
//             without a default system message when the first is not one
//             (SmolLM2, Qwen2, many fine-tunes)
//   Llama 3   bos + <|start_header_id|>role<|end_header_id|>\n\n
//             trim(content)<|eot_id|> (Meta-Llama-3-*-Instruct)
//   Mistral   bos + [INST] user [/INST]assistant</s>..., roles alternating
//             from user (Mistral-7B-Instruct v0.1 / v0.2, Mixtral)
//
// There is no Jinja interpreter here: the template text is recognised. It is
// read as Jinja reads it (comments dropped, whitespace control "-" and
// transformers' trim_blocks / lstrip_blocks applied, string literals
// unescaped and re-quoted, adjacent literals joined, whitespace inside tags
// reduced to what separates words) and must then be one of the forms above,
// or it is refused with an error that names the family it resembles. A
// template recognised renders byte for byte what transformers renders.
#pragma once

#include <string>
#include <vector>

namespace gptqtool {

struct ChatMessage {
  std::string role;  // "system", "user", "assistant"
  std::string content;
};

class ChatTemplate {
 public:
  enum class Family { ChatMl, Llama3, Mistral };

  // Recognises a template; bos / eos are the tokenizer's bos_token and
  // eos_token text (the templates that use them need them). Throws
  // ToolError naming what the template is not.
  static ChatTemplate recognise(const std::string &jinja, const std::string &bos_token,
                                const std::string &eos_token);
  // The template of a model directory (see the top of this file).
  static ChatTemplate from_model_dir(const std::string &dir);

  Family family() const { return family_; }
  const char *family_name() const;
  // ChatML's default system message ("" when the template has none).
  const std::string &default_system() const { return default_system_; }

  // The prompt text; add_generation_prompt opens the assistant's turn.
  // Throws ToolError where the template would raise (Mistral: roles that do
  // not alternate user / assistant, or a system message).
  std::string render(const std::vector<ChatMessage> &messages, bool add_generation_prompt) const;

 private:
  Family family_ = Family::ChatMl;
  std::string default_system_, bos_, eos_;
};

// The template text read as Jinja reads it (see the top of this file); for
// the tests and for error messages.
std::string normalize_chat_template(const std::string &jinja);

}  // namespace gptqtool
