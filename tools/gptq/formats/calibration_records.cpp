// Records are parsed strictly: a dataset whose field is misnamed would
// otherwise calibrate on nothing, or on JSON syntax, without a word.
#include "formats/calibration_records.h"

#include <nlohmann/json.hpp>

#include "common/interrupt.h"
#include "common/tool_error.h"
#include "formats/token_data.h"
#include "tokenizer/tokenizer.h"

namespace gptqtool {
namespace {

using nlohmann::json;

std::string where(const std::string &path, int64_t line) {
  return path + ":" + std::to_string(line);
}

std::string field_list(const json &object) {
  std::string s;
  for (const auto &item : object.items()) {
    if (!s.empty()) s += ", ";
    s += "\"" + item.key() + "\"";
    if (s.size() > 200) return s + ", ...";
  }
  return s.empty() ? "none" : s;
}

CalibrationRecord record_from_json(const json &value, const std::string &path, int64_t line,
                                   const std::string &text_field) {
  CalibrationRecord r;
  r.line = line;
  const std::string at = where(path, line);
  if (value.is_string()) {
    r.text = value.get<std::string>();
    return r;
  }
  if (!value.is_object()) {
    throw ToolError(at + ": a record must be an object or a string, not " +
                    std::string(value.type_name()));
  }
  if (value.contains(text_field)) {
    const json &t = value[text_field];
    if (!t.is_string()) {
      throw ToolError(at + ": field \"" + text_field + "\" is " + std::string(t.type_name()) +
                      ", not a string");
    }
    r.text = t.get<std::string>();
    return r;
  }
  if (value.contains("messages")) {
    const json &m = value["messages"];
    if (!m.is_array() || m.empty()) {
      throw ToolError(at + ": \"messages\" must be a non-empty list of {\"role\", \"content\"}");
    }
    for (const json &message : m) {
      if (!message.is_object() || !message.contains("role") || !message["role"].is_string() ||
          !message.contains("content") || !message["content"].is_string()) {
        throw ToolError(at + ": each of \"messages\" must be an object with string \"role\" and "
                        "\"content\", not " + message.dump().substr(0, 120));
      }
      r.messages.push_back({message["role"].get<std::string>(),
                            message["content"].get<std::string>()});
    }
    r.chat = true;
    return r;
  }
  throw ToolError(at + ": the record has no \"" + text_field + "\" field and no \"messages\" (its "
                  "fields: " + field_list(value) + "); name the text field with --text-field");
}

}  // namespace

std::vector<CalibrationRecord> read_calibration_records(const std::string &path,
                                                        const std::string &text_field) {
  const std::string data = read_text_maybe_gzip(path);
  std::vector<CalibrationRecord> records;
  const size_t first = data.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) throw ToolError(path + " holds no records (it is empty)");
  if (data[first] == '[') {
    json array;
    try {
      array = json::parse(data);
    } catch (const json::exception &e) {
      throw ToolError(path + ": not a valid JSON array: " + e.what());
    }
    int64_t index = 0;
    for (const json &value : array) {
      // Records in an array are named by their index, as "line" 1, 2, ...
      records.push_back(record_from_json(value, path + " record", ++index, text_field));
    }
  } else {
    int64_t line = 0;
    size_t pos = 0;
    while (pos < data.size()) {
      size_t end = data.find('\n', pos);
      if (end == std::string::npos) end = data.size();
      ++line;
      const std::string text = data.substr(pos, end - pos);
      pos = end + 1;
      if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
      if (line % 4096 == 0) throw_if_interrupted();
      json value;
      try {
        value = json::parse(text);
      } catch (const json::exception &e) {
        throw ToolError(where(path, line) + ": not a JSON value (JSON Lines needs one record per "
                        "line): " + e.what());
      }
      records.push_back(record_from_json(value, path, line, text_field));
    }
  }
  if (records.empty()) throw ToolError(path + " holds no records");
  return records;
}

bool any_chat_record(const std::vector<CalibrationRecord> &records) {
  for (const CalibrationRecord &r : records) {
    if (r.chat) return true;
  }
  return false;
}

std::vector<int32_t> tokenize_calibration_records(const std::vector<CalibrationRecord> &records,
                                                  const Tokenizer &tokenizer,
                                                  const ChatTemplate *chat_template,
                                                  const std::string &path) {
  std::vector<int32_t> stream;
  for (const CalibrationRecord &r : records) {
    throw_if_interrupted();
    std::string text = r.text;
    if (r.chat) {
      if (chat_template == nullptr) {
        throw ToolError(where(path, r.line) + ": a chat record (\"messages\") needs the model's "
                        "chat template, and none was given");
      }
      try {
        text = chat_template->render(r.messages, false);
      } catch (const ToolError &e) {
        throw ToolError(where(path, r.line) + ": " + e.what());
      }
    }
    const std::vector<int32_t> ids = tokenizer.encode(text);
    stream.insert(stream.end(), ids.begin(), ids.end());
  }
  if (stream.empty()) throw ToolError(path + ": its records hold no text");
  return stream;
}

}  // namespace gptqtool
