// Checked access to tokenizer.json fields; see tokenizer_json_reader.h.
#include "tokenizer/tokenizer_json_reader.h"

#include <cstdint>

#include "common/json_number.h"
#include "common/tool_error.h"
#include "tokenizer/tokenizer_chars.h"

namespace gptqtool {
namespace tok {

void Reader::fail(const std::string &what) const { throw ToolError(origin_ + ": " + what); }

const Reader::json &Reader::member(const json &obj, const char *key,
                                   const std::string &where) const {
  auto it = obj.find(key);
  if (it == obj.end()) fail(where + " has no \"" + key + "\"");
  return *it;
}

std::string Reader::str(const json &obj, const char *key, const std::string &where,
                        const std::string *fallback) const {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    if (fallback) return *fallback;
    fail(where + "." + key + " is missing");
  }
  if (!it->is_string()) fail(where + "." + key + " must be a string");
  return it->get<std::string>();
}

bool Reader::boolean(const json &obj, const char *key, const std::string &where,
                     bool fallback) const {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) fail(where + "." + key + " must be true or false");
  return it->get<bool>();
}

int64_t Reader::integer(const json &v, int64_t lo, int64_t hi, const std::string &where) const {
  return json_integer(v, lo, hi, origin_ + ": " + where);
}

int32_t Reader::id(const json &v, const std::string &where) const {
  return static_cast<int32_t>(integer(v, 0, INT32_MAX, where + " (a token id)"));
}

std::string Reader::type_of(const json &obj, const std::string &where) const {
  if (!obj.is_object()) fail(where + " must be an object");
  return str(obj, "type", where);
}

std::pair<bool, std::string> Reader::pattern(const json &obj, const std::string &where) const {
  const json &p = member(obj, "pattern", where);
  if (p.is_object() && p.size() == 1) {
    if (p.contains("String") && p["String"].is_string()) return {false, p["String"]};
    if (p.contains("Regex") && p["Regex"].is_string()) return {true, p["Regex"]};
  }
  fail(where + ".pattern must be {\"String\": ...} or {\"Regex\": ...}");
}

std::string Reader::one_char(const json &obj, const char *key, const std::string &where,
                             const std::string &fallback) const {
  const std::string s = str(obj, key, where, &fallback);
  if (s.empty() || split_chars(s).size() != 1) fail(where + "." + key + " must be one character");
  return s;
}

PrependScheme Reader::prepend_scheme(const json &obj, const std::string &where) const {
  PrependScheme scheme = PrependScheme::kAlways;
  auto it = obj.find("prepend_scheme");
  if (it != obj.end() && !it->is_null()) {
    const std::string s = str(obj, "prepend_scheme", where);
    if (s == "always") {
      scheme = PrependScheme::kAlways;
    } else if (s == "first") {
      scheme = PrependScheme::kFirst;
    } else if (s == "never") {
      scheme = PrependScheme::kNever;
    } else {
      fail(where + ".prepend_scheme \"" + s + "\" is not always, first or never");
    }
  }
  // Files written before prepend_scheme existed say add_prefix_space.
  if (!boolean(obj, "add_prefix_space", where, true)) scheme = PrependScheme::kNever;
  return scheme;
}

}  // namespace tok
}  // namespace gptqtool
