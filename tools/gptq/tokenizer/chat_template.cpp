#include "tokenizer/chat_template.h"

#include <nlohmann/json.hpp>

#include <cctype>
#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>

#include "common/tool_error.h"

namespace gptqtool {

namespace {

// ------------------------------------------------------------ reading Jinja

struct Piece {
  bool tag = false;          // a {{ }} or {% %} tag; otherwise raw text
  bool block = false;        // {% %}
  bool trim_left = false;    // {{- / {%-
  bool trim_right = false;   // -}} / -%}
  std::string text;          // raw text, or the tag's inside
};

bool is_word_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_';
}

// Splits the template into raw text and tags; comments are dropped (with
// their whitespace control, which acts as a tag's would).
std::vector<Piece> split_tags(const std::string &t) {
  std::vector<Piece> out;
  size_t i = 0;
  std::string text;
  auto flush_text = [&]() {
    Piece p;
    p.text = text;
    out.push_back(p);
    text.clear();
  };
  while (i < t.size()) {
    if (t[i] == '{' && i + 1 < t.size() && (t[i + 1] == '{' || t[i + 1] == '%' || t[i + 1] == '#')) {
      const char kind = t[i + 1];
      const std::string close = kind == '{' ? "}}" : kind == '%' ? "%}" : "#}";
      // The tag ends at the first closing pair outside a string literal.
      size_t j = i + 2;
      char quote = 0;
      for (; j + 1 < t.size(); ++j) {
        if (quote) {
          if (t[j] == '\\') ++j;
          else if (t[j] == quote) quote = 0;
        } else if (kind != '#' && (t[j] == '\'' || t[j] == '"')) {
          quote = t[j];
        } else if (t.compare(j, 2, close) == 0) {
          break;
        }
      }
      if (j + 1 >= t.size()) throw ToolError("chat template: a tag opened with '{" +
                                             std::string(1, kind) + "' is never closed");
      flush_text();
      Piece p;
      p.tag = true;
      p.block = kind != '{';
      std::string inside = t.substr(i + 2, j - i - 2);
      if (!inside.empty() && inside.front() == '-') p.trim_left = true, inside.erase(0, 1);
      if (!inside.empty() && inside.front() == '+') inside.erase(0, 1);
      if (!inside.empty() && inside.back() == '-') p.trim_right = true, inside.pop_back();
      if (!inside.empty() && inside.back() == '+') inside.pop_back();
      p.text = kind == '#' ? std::string() : inside;
      if (kind == '#') p.text = "#";  // marks a comment, removed below
      out.push_back(p);
      i = j + 2;
    } else {
      text += t[i++];
    }
  }
  flush_text();
  return out;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

// Applies whitespace control, trim_blocks and lstrip_blocks (transformers
// compiles templates with both) to the raw text between tags.
void apply_whitespace_control(std::vector<Piece> *pieces) {
  std::vector<Piece> &p = *pieces;
  for (size_t i = 0; i < p.size(); ++i) {
    if (!p[i].tag) continue;
    if (i > 0 && !p[i - 1].tag) {
      std::string &before = p[i - 1].text;
      if (p[i].trim_left) {
        while (!before.empty() && is_space(before.back())) before.pop_back();
      } else if (p[i].block) {
        // lstrip_blocks: spaces and tabs from the start of the line.
        size_t k = before.size();
        while (k > 0 && (before[k - 1] == ' ' || before[k - 1] == '\t')) --k;
        if (k == 0 ? i - 1 == 0 : before[k - 1] == '\n') before.erase(k);
      }
    }
    if (i + 1 < p.size() && !p[i + 1].tag) {
      std::string &after = p[i + 1].text;
      if (p[i].trim_right) {
        size_t k = 0;
        while (k < after.size() && is_space(after[k])) ++k;
        after.erase(0, k);
      } else if (p[i].block) {
        // trim_blocks: the first newline after a block tag.
        if (after.compare(0, 1, "\n") == 0) after.erase(0, 1);
        else if (after.compare(0, 2, "\r\n") == 0) after.erase(0, 2);
      }
    }
  }
}

// A string literal in canonical form: single quotes, with \\, \' and \n.
std::string quote_literal(const std::string &value) {
  std::string out = "'";
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '\'') out += "\\'";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out + "'";
}

// The inside of a tag: literals canonical, adjacent literals joined,
// x.role / x.content as x['role'] / x['content'], whitespace only where it
// separates two words.
std::string normalize_expression(const std::string &e) {
  struct Token {
    bool literal;
    std::string text;  // the value of a literal, else the code
  };
  std::vector<Token> tokens;
  std::string code;
  auto flush_code = [&]() {
    if (!code.empty()) tokens.push_back({false, code});
    code.clear();
  };
  for (size_t i = 0; i < e.size();) {
    const char c = e[i];
    if (c == '\'' || c == '"') {
      std::string value;
      size_t j = i + 1;
      for (; j < e.size() && e[j] != c; ++j) {
        if (e[j] == '\\' && j + 1 < e.size()) {
          const char n = e[++j];
          value += n == 'n' ? '\n' : n == 't' ? '\t' : n == 'r' ? '\r' : n;
        } else {
          value += e[j];
        }
      }
      if (j >= e.size()) throw ToolError("chat template: a string literal is never closed");
      flush_code();
      tokens.push_back({true, value});
      i = j + 1;
    } else if (is_space(c)) {
      size_t j = i;
      while (j < e.size() && is_space(e[j])) ++j;
      if (!code.empty() && is_word_char(code.back()) && j < e.size() && is_word_char(e[j])) code += ' ';
      i = j;
    } else {
      code += c;
      ++i;
    }
  }
  flush_code();
  // 'a' + 'b' -> 'ab'
  std::vector<Token> joined;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i].literal && !joined.empty() && joined.back().literal == false &&
        joined.back().text == "+" && joined.size() >= 2 && joined[joined.size() - 2].literal) {
      joined.pop_back();
      joined.back().text += tokens[i].text;
    } else {
      joined.push_back(tokens[i]);
    }
  }
  std::string out;
  for (const Token &t : joined) {
    if (t.literal) {
      out += quote_literal(t.text);
    } else {
      static const std::regex attribute(R"(\b(message|messages\[0\])\.(role|content)\b)");
      out += std::regex_replace(t.text, attribute, "$1['$2']");
    }
  }
  return out;
}

// ------------------------------------------------------------ known forms

// Normalized forms. @SYSTEM@ stands for a literal's text (a default system
// message), @ANY@ for an error message the template raises.
const char kChatMlLoop[] =
    "{{'<|im_start|>'+message['role']+'\\n'+message['content']+'<|im_end|>\\n'}}"
    "{%endfor%}{%if add_generation_prompt%}{{'<|im_start|>assistant\\n'}}{%endif%}";
const char kChatMlPlainHead[] = "{%for message in messages%}";
const char kChatMlSystemHead[] =
    "{%for message in messages%}{%if loop.first and messages[0]['role']!='system'%}"
    "{{'<|im_start|>system\\n@SYSTEM@<|im_end|>\\n'}}{%endif%}";
const char kLlama3[] =
    "{%set loop_messages=messages%}{%for message in loop_messages%}"
    "{%set content='<|start_header_id|>'+message['role']+'<|end_header_id|>\\n\\n'"
    "+message['content']|trim+'<|eot_id|>'%}{%if loop.index0==0%}"
    "{%set content=bos_token+content%}{%endif%}{{content}}{%endfor%}"
    "{%if add_generation_prompt%}{{'<|start_header_id|>assistant<|end_header_id|>\\n\\n'}}"
    "{%endif%}";
const char kMistral[] =
    "{{bos_token}}{%for message in messages%}"
    "{%if(message['role']=='user')!=(loop.index0%2==0)%}{{raise_exception('@ANY@')}}{%endif%}"
    "{%if message['role']=='user'%}{{'[INST] '+message['content']+' [/INST]'}}"
    "{%elif message['role']=='assistant'%}{{message['content']+eos_token}}"
    "{%else%}{{raise_exception('@ANY@')}}{%endif%}{%endfor%}";

// Matches a normalized template against a form; *captured gets @SYSTEM@'s
// literal text (still quoted-escaped).
bool matches(const std::string &normalized, const std::string &form, std::string *captured) {
  std::string pattern;
  for (size_t i = 0; i < form.size();) {
    if (form.compare(i, 8, "@SYSTEM@") == 0) {
      pattern += R"(((?:[^'\\]|\\.)*))";
      i += 8;
    } else if (form.compare(i, 5, "@ANY@") == 0) {
      pattern += R"((?:[^'\\]|\\.)*)";
      i += 5;
    } else {
      const char c = form[i++];
      if (std::strchr(R"(\^$.|?*+()[]{})", c) != nullptr) pattern += '\\';
      pattern += c;
    }
  }
  std::smatch m;
  if (!std::regex_match(normalized, m, std::regex(pattern))) return false;
  if (captured != nullptr && m.size() > 1) *captured = m[1].str();
  return true;
}

std::string unescape_literal(const std::string &quoted_body) {
  std::string out;
  for (size_t i = 0; i < quoted_body.size(); ++i) {
    if (quoted_body[i] == '\\' && i + 1 < quoted_body.size()) {
      const char n = quoted_body[++i];
      out += n == 'n' ? '\n' : n;
    } else {
      out += quoted_body[i];
    }
  }
  return out;
}

// Python's str.strip() on ASCII whitespace (Jinja's trim filter).
std::string trim(const std::string &s) {
  size_t a = 0, b = s.size();
  while (a < b && (is_space(s[a]) || s[a] == '\x1c' || s[a] == '\x1d' || s[a] == '\x1e' || s[a] == '\x1f')) ++a;
  while (b > a && (is_space(s[b - 1]) || s[b - 1] == '\x1c' || s[b - 1] == '\x1d' ||
                   s[b - 1] == '\x1e' || s[b - 1] == '\x1f')) --b;
  return s.substr(a, b - a);
}

// bos_token / eos_token in tokenizer_config.json: a string or an added-token
// object with "content".
std::string token_text(const nlohmann::json &config, const char *key) {
  if (!config.contains(key) || config[key].is_null()) return "";
  const nlohmann::json &v = config[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string())
    return v["content"].get<std::string>();
  throw ToolError(std::string("tokenizer_config.json: ") + key + " is neither text nor a token");
}

std::string read_all(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool file_exists(const std::string &path) { return std::ifstream(path).good(); }

}  // namespace

std::string normalize_chat_template(const std::string &jinja) {
  std::vector<Piece> pieces = split_tags(jinja);
  apply_whitespace_control(&pieces);
  std::string out;
  for (const Piece &p : pieces) {
    if (!p.tag) {
      if (!p.text.empty()) out += "{{" + quote_literal(p.text) + "}}";
    } else if (p.text != "#") {
      out += (p.block ? "{%" : "{{") + normalize_expression(p.text) + (p.block ? "%}" : "}}");
    }
  }
  return out;
}

ChatTemplate ChatTemplate::recognise(const std::string &jinja, const std::string &bos_token,
                                     const std::string &eos_token) {
  const std::string n = normalize_chat_template(jinja);
  ChatTemplate t;
  t.bos_ = bos_token;
  t.eos_ = eos_token;
  std::string system;
  if (matches(n, std::string(kChatMlPlainHead) + kChatMlLoop, nullptr)) {
    t.family_ = Family::ChatMl;
    return t;
  }
  if (matches(n, std::string(kChatMlSystemHead) + kChatMlLoop, &system)) {
    t.family_ = Family::ChatMl;
    t.default_system_ = unescape_literal(system);
    return t;
  }
  if (matches(n, kLlama3, nullptr)) {
    if (bos_token.empty()) throw ToolError("the Llama 3 chat template needs a bos_token");
    t.family_ = Family::Llama3;
    return t;
  }
  if (matches(n, kMistral, nullptr)) {
    if (bos_token.empty() || eos_token.empty())
      throw ToolError("the Mistral chat template needs a bos_token and an eos_token");
    t.family_ = Family::Mistral;
    return t;
  }
  std::string resembles = "an unknown family";
  if (n.find("<|im_start|>") != std::string::npos) resembles = "ChatML";
  else if (n.find("<|start_header_id|>") != std::string::npos) resembles = "Llama 3 (such as Llama 3.1's, with tools and dates)";
  else if (n.find("[INST]") != std::string::npos) resembles = "Mistral (such as v0.3's, with system prompts and tools)";
  std::string head = jinja.substr(0, 80);
  for (char &c : head) if (c == '\n') c = ' ';
  throw ToolError("the chat template (\"" + head + (jinja.size() > 80 ? "..." : "") +
                  "\") is of " + resembles + " in a form this tool cannot render: it renders "
                  "only the plain ChatML, Llama 3 and Mistral v0.1/v0.2 templates exactly, and "
                  "runs no general Jinja");
}

ChatTemplate ChatTemplate::from_model_dir(const std::string &dir) {
  const std::string config_path = dir + "/tokenizer_config.json";
  nlohmann::json config = nlohmann::json::object();
  if (file_exists(config_path)) {
    try {
      config = nlohmann::json::parse(read_all(config_path));
    } catch (const nlohmann::json::exception &e) {
      throw ToolError(config_path + ": not valid JSON (" + e.what() + ")");
    }
  }
  std::string jinja;
  const nlohmann::json *tmpl = config.contains("chat_template") ? &config["chat_template"] : nullptr;
  nlohmann::json side;
  if (tmpl == nullptr && file_exists(dir + "/chat_template.json")) {
    try {
      side = nlohmann::json::parse(read_all(dir + "/chat_template.json"));
    } catch (const nlohmann::json::exception &e) {
      throw ToolError(dir + "/chat_template.json: not valid JSON (" + e.what() + ")");
    }
    if (side.contains("chat_template")) tmpl = &side["chat_template"];
  }
  if (tmpl != nullptr && tmpl->is_string()) {
    jinja = tmpl->get<std::string>();
  } else if (tmpl != nullptr && tmpl->is_array()) {
    // Named templates: the one called "default".
    for (const auto &entry : *tmpl) {
      if (entry.is_object() && entry.value("name", "") == "default" && entry.contains("template") &&
          entry["template"].is_string()) {
        jinja = entry["template"].get<std::string>();
      }
    }
    if (jinja.empty()) throw ToolError(config_path + ": chat_template lists no template named \"default\"");
  } else if (tmpl != nullptr) {
    throw ToolError(config_path + ": chat_template is neither text nor a list of named templates");
  } else if (file_exists(dir + "/chat_template.jinja")) {
    jinja = read_all(dir + "/chat_template.jinja");
  } else {
    throw ToolError(dir + " has no chat template (tokenizer_config.json has no chat_template, "
                          "and there is no chat_template.jinja or chat_template.json); "
                          "run without --chat");
  }
  return recognise(jinja, token_text(config, "bos_token"), token_text(config, "eos_token"));
}

const char *ChatTemplate::family_name() const {
  switch (family_) {
    case Family::ChatMl: return "ChatML";
    case Family::Llama3: return "Llama 3";
    case Family::Mistral: return "Mistral";
  }
  return "?";
}

std::string ChatTemplate::render(const std::vector<ChatMessage> &messages,
                                 bool add_generation_prompt) const {
  std::string out;
  switch (family_) {
    case Family::ChatMl:
      for (size_t i = 0; i < messages.size(); ++i) {
        if (i == 0 && !default_system_.empty() && messages[0].role != "system") {
          out += "<|im_start|>system\n" + default_system_ + "<|im_end|>\n";
        }
        out += "<|im_start|>" + messages[i].role + "\n" + messages[i].content + "<|im_end|>\n";
      }
      if (add_generation_prompt) out += "<|im_start|>assistant\n";
      return out;
    case Family::Llama3:
      for (size_t i = 0; i < messages.size(); ++i) {
        if (i == 0) out += bos_;
        out += "<|start_header_id|>" + messages[i].role + "<|end_header_id|>\n\n" +
               trim(messages[i].content) + "<|eot_id|>";
      }
      if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
      return out;
    case Family::Mistral:
      out += bos_;
      for (size_t i = 0; i < messages.size(); ++i) {
        const std::string &role = messages[i].role;
        if ((role == "user") != (i % 2 == 0)) {
          throw ToolError("the Mistral chat template needs the roles to alternate user / "
                          "assistant from a user message (it has no system role)");
        }
        if (role == "user") {
          out += "[INST] " + messages[i].content + " [/INST]";
        } else if (role == "assistant") {
          out += messages[i].content + eos_;
        } else {
          throw ToolError("the Mistral chat template knows only the user and assistant roles, "
                          "not '" + role + "'");
        }
      }
      // The template has no generation prompt: the [/INST] opens the turn.
      return out;
  }
  return out;
}

}  // namespace gptqtool
