// Integers read from JSON files (config.json, quantization_config,
// tokenizer.json, safetensors headers). A file may hold anything where an
// integer belongs: a float such as 9.2e19, whose conversion to an integer
// type is undefined behaviour when it does not fit, or an integer beyond
// the range the tool can use. Every JSON integer the tool reads goes
// through json_integer, which refuses both with the field named.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace gptqtool {

// v as an integer in [lo, hi]; throws ToolError "<what> is <v>, not an
// integer" or "<what> is <v>; it must be in [lo, hi]" (">= lo" when hi is
// INT64_MAX). Only JSON integers are accepted: 4.0 is a float, refused.
int64_t json_integer(const nlohmann::json &v, int64_t lo, int64_t hi, const std::string &what);

}  // namespace gptqtool
