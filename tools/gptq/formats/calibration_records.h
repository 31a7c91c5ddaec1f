// Structured calibration data: JSON Lines (one record per line) or a JSON
// array of records, the forms datasets are exported in. A record is an
// object with a text field (--text-field, default "text"), an object with a
// "messages" list of {role, content} (chat format, rendered through the
// model's chat template), or a bare string.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tokenizer/chat_template.h"

namespace gptqtool {

class Tokenizer;

struct CalibrationRecord {
  int64_t line = 0;   // 1-based line of the record's start, for messages
  std::string text;   // a text record
  std::vector<ChatMessage> messages;  // a chat record (text empty)
  bool chat = false;
};

// Reads `path` (a .gz name is decompressed): a JSON array when its first
// non-blank character is '[', JSON Lines otherwise (blank lines skipped).
// Throws ToolError naming the file and line for invalid JSON, a record
// without the text field or messages (listing the fields it has), a field
// of the wrong type, and a file with no records.
std::vector<CalibrationRecord> read_calibration_records(const std::string &path,
                                                        const std::string &text_field);

// Whether any record is a chat record (and so needs the chat template).
bool any_chat_record(const std::vector<CalibrationRecord> &records);

// The records tokenized one by one (a chat record after rendering it with
// `chat_template`, without a generation prompt) and concatenated in order;
// each record is its own document, so no token spans two records. Throws
// ToolError when a chat record has no template or the template refuses it,
// and when the records hold no tokens at all.
std::vector<int32_t> tokenize_calibration_records(const std::vector<CalibrationRecord> &records,
                                                  const Tokenizer &tokenizer,
                                                  const ChatTemplate *chat_template,
                                                  const std::string &path);

}  // namespace gptqtool
