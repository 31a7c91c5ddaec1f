// Chat templates against transformers' own rendering
// (data/chat_templates/expected.json, made by make_fixtures.py there), and
// the templates that must be refused.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/tool_error.h"
#include "tiny_model.h"
#include "tokenizer/chat_template.h"

using namespace gptqtool;

namespace {

nlohmann::json fixtures() {
  std::ifstream in(std::string(GPTQ_TOOL_DATA_DIR) + "/chat_templates/expected.json");
  return nlohmann::json::parse(in);
}

std::string refusal(const std::string &jinja) {
  try {
    ChatTemplate::recognise(jinja, "<s>", "</s>");
  } catch (const ToolError &e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(ChatTemplate, RendersAsTransformers) {
  const nlohmann::json f = fixtures();
  int checked = 0;
  for (const auto &c : f["cases"]) {
    const std::string name = c["template"];
    const ChatTemplate t =
        ChatTemplate::recognise(f["templates"][name].get<std::string>(), "<s>", "</s>");
    std::vector<ChatMessage> messages;
    for (const auto &m : f["conversations"][c["conversation"].get<std::string>()]) {
      messages.push_back({m["role"], m["content"]});
    }
    const std::string what = name + " / " + c["conversation"].get<std::string>();
    if (c["expected"].is_null()) {
      EXPECT_THROW(t.render(messages, c["add_generation_prompt"]), ToolError) << what;
    } else {
      EXPECT_EQ(t.render(messages, c["add_generation_prompt"]), c["expected"].get<std::string>())
          << what;
    }
    ++checked;
  }
  EXPECT_EQ(checked, 24);
}

TEST(ChatTemplate, RecognisesTheFamilies) {
  const nlohmann::json f = fixtures();
  auto family = [&](const char *name) {
    return ChatTemplate::recognise(f["templates"][name].get<std::string>(), "<s>", "</s>");
  };
  EXPECT_EQ(family("chatml_system").family(), ChatTemplate::Family::ChatMl);
  EXPECT_EQ(family("chatml_system").default_system(), "You are a \"tiny\" model.");
  EXPECT_EQ(family("chatml_plain").default_system(), "");
  EXPECT_EQ(family("llama3").family(), ChatTemplate::Family::Llama3);
  EXPECT_EQ(family("mistral").family(), ChatTemplate::Family::Mistral);
}

TEST(ChatTemplate, OtherTemplatesAreRefusedByName) {
  // ChatML with tools: one extra branch is enough to be refused.
  const std::string tools =
      "{% if tools %}{{ '<|im_start|>system\\n# Tools' }}{% endif %}{% for message in messages "
      "%}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n'}}"
      "{% endfor %}";
  EXPECT_NE(refusal(tools).find("ChatML"), std::string::npos) << refusal(tools);
  const std::string llama31 =
      "{{- bos_token }}{%- set date_string = \"26 Jul 2024\" %}{{- "
      "'<|start_header_id|>system<|end_header_id|>\\n\\n' }}{{- \"Cutting Knowledge Date\" }}";
  EXPECT_NE(refusal(llama31).find("Llama 3"), std::string::npos);
  EXPECT_NE(refusal("{{ '[INST]' }}{{ messages[0]['content'] }}").find("Mistral"),
            std::string::npos);
  const std::string other = refusal("{% for m in messages %}### {{ m['content'] }}{% endfor %}");
  EXPECT_NE(other.find("unknown family"), std::string::npos) << other;
  EXPECT_NE(other.find("ChatML, Llama 3 and Mistral"), std::string::npos);
  EXPECT_NE(refusal("{{ 'unclosed }}").find("never closed"), std::string::npos);
  EXPECT_NE(refusal("{% for x in y").find("never closed"), std::string::npos);
}

TEST(ChatTemplate, FromModelDirectory) {
  const std::string dir = tinymodel::make_temp_dir("chat");
  // No template anywhere.
  EXPECT_THROW(ChatTemplate::from_model_dir(dir), ToolError);
  // The tiny chat model's ChatML, with its default system message.
  tinymodel::write_chat_model(dir);
  const ChatTemplate t = ChatTemplate::from_model_dir(dir);
  EXPECT_EQ(t.family(), ChatTemplate::Family::ChatMl);
  EXPECT_EQ(t.render({{"user", "Hi"}}, true),
            "<|im_start|>system\nYou are tiny.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\n");
  // A list of named templates: the default one; bos as an added-token object.
  const nlohmann::json f = fixtures();
  tinymodel::write_json(dir + "/tokenizer_config.json",
                        {{"bos_token", {{"content", "<s>"}, {"special", true}}},
                         {"eos_token", "</s>"},
                         {"chat_template", {{{"name", "tool_use"}, {"template", "{{ x }}"}},
                                            {{"name", "default"}, {"template", f["templates"]["llama3"]}}}}});
  EXPECT_EQ(ChatTemplate::from_model_dir(dir).render({{"user", " a "}}, false),
            "<s><|start_header_id|>user<|end_header_id|>\n\na<|eot_id|>");
  // chat_template.jinja beside a tokenizer_config.json without one.
  tinymodel::write_json(dir + "/tokenizer_config.json", {{"eos_token", "</s>"}});
  std::ofstream(dir + "/chat_template.jinja") << f["templates"]["chatml_plain"].get<std::string>();
  EXPECT_EQ(ChatTemplate::from_model_dir(dir).render({{"user", "a"}}, false),
            "<|im_start|>user\na<|im_end|>\n");
  std::filesystem::remove_all(dir);
}
