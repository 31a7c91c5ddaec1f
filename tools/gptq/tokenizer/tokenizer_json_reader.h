// Checked access to the fields of a tokenizer.json (internal to
// tokenizer*.cpp): each getter fails with a ToolError that names the file
// and the JSON path of what is missing or of the wrong type, so that the
// loaders in tokenizer.cpp stay a plain list of what they read.
#pragma once

#include <cstdint>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "tokenizer/tokenizer_pre_tokenizer.h"

namespace gptqtool {
namespace tok {

class Reader {
 public:
  using json = nlohmann::json;

  explicit Reader(std::string origin) : origin_(std::move(origin)) {}

  [[noreturn]] void fail(const std::string &what) const;

  const json &member(const json &obj, const char *key, const std::string &where) const;
  std::string str(const json &obj, const char *key, const std::string &where,
                  const std::string *fallback = nullptr) const;
  bool boolean(const json &obj, const char *key, const std::string &where, bool fallback) const;
  // An integer in [lo, hi] (json_integer).
  int64_t integer(const json &v, int64_t lo, int64_t hi, const std::string &where) const;
  int32_t id(const json &v, const std::string &where) const;
  std::string type_of(const json &obj, const std::string &where) const;
  // {"String": "..."} or {"Regex": "..."}: returns (is_regex, text).
  std::pair<bool, std::string> pattern(const json &obj, const std::string &where) const;
  // A single character given as a string (Metaspace, Strip).
  std::string one_char(const json &obj, const char *key, const std::string &where,
                       const std::string &fallback) const;
  // Metaspace's prepend_scheme, or the add_prefix_space of older files.
  PrependScheme prepend_scheme(const json &obj, const std::string &where) const;

 private:
  std::string origin_;
};

}  // namespace tok
}  // namespace gptqtool
