#include "pipeline/quant_spec.h"

#include <cstdlib>

#include "common/tool_error.h"

namespace gptqtool {

namespace {

int32_t parse_int(const std::string &value, const std::string &what) {
  char *end = nullptr;
  const long v = std::strtol(value.c_str(), &end, 10);
  if (value.empty() || *end != '\0' || v < -1000000 || v > 1000000) {
    throw ToolError("override: " + what + " needs an integer, got '" + value + "'");
  }
  return static_cast<int32_t>(v);
}

bool parse_bool(const std::string &value, const std::string &what) {
  if (value == "1" || value == "true" || value == "yes") return true;
  if (value == "0" || value == "false" || value == "no") return false;
  throw ToolError("override: " + what + " needs 0 or 1, got '" + value + "'");
}

}  // namespace

SpecOverride parse_override(const std::string &text) {
  const size_t colon = text.find(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size()) {
    throw ToolError("override '" + text +
                    "' is not PATTERN:SETTINGS (e.g. 'model.layers.0.*:bits=8' or "
                    "'*.down_proj:skip')");
  }
  SpecOverride o;
  o.text = text;
  o.pattern = text.substr(0, colon);
  std::string rest = text.substr(colon + 1);
  size_t pos = 0;
  while (pos <= rest.size()) {
    size_t comma = rest.find(',', pos);
    if (comma == std::string::npos) comma = rest.size();
    const std::string item = rest.substr(pos, comma - pos);
    pos = comma + 1;
    if (item == "skip") {
      o.skip = true;
      continue;
    }
    const size_t eq = item.find('=');
    if (eq == std::string::npos) {
      throw ToolError("override '" + text + "': '" + item + "' is not skip or KEY=VALUE");
    }
    const std::string key = item.substr(0, eq), value = item.substr(eq + 1);
    if (key == "bits") {
      o.bits = parse_int(value, key);
    } else if (key == "group" || key == "group_size" || key == "group-size") {
      o.group_size = parse_int(value, key);
    } else if (key == "sym") {
      o.sym = parse_bool(value, key);
    } else if (key == "act-order" || key == "act_order" || key == "desc_act") {
      o.act_order = parse_bool(value, key);
    } else if (key == "act-group-aware" || key == "act_group_aware") {
      o.act_group_aware = parse_bool(value, key);
    } else if (key == "mse") {
      o.mse = parse_bool(value, key);
    } else if (key == "damp") {
      char *end = nullptr;
      const double d = std::strtod(value.c_str(), &end);
      if (value.empty() || *end != '\0') throw ToolError("override: damp needs a number");
      o.damp_percent = d;
    } else {
      throw ToolError("override '" + text + "': unknown setting '" + key +
                      "' (known: skip, bits, group, sym, act-order, act-group-aware, damp, "
                      "mse)");
    }
  }
  if (o.act_order && *o.act_order && o.act_group_aware && *o.act_group_aware) {
    throw ToolError("override '" + text +
                    "': act-order and act-group-aware are two different column orders; "
                    "choose one");
  }
  return o;
}

bool glob_match(const std::string &pattern, const std::string &name) {
  // Iterative matcher with backtracking to the last '*'.
  size_t p = 0, n = 0, star = std::string::npos, mark = 0;
  while (n < name.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == name[n])) {
      ++p;
      ++n;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = n;
    } else if (star != std::string::npos) {
      p = star + 1;
      n = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

std::string glob_to_regex(const std::string &pattern) {
  std::string re = "^";
  for (char ch : pattern) {
    if (ch == '*') {
      re += ".*";
    } else if (ch == '?') {
      re += '.';
    } else if (std::string("\\^$.|+()[]{}").find(ch) != std::string::npos) {
      re += '\\';
      re += ch;
    } else {
      re += ch;
    }
  }
  return re + "$";
}

LayerQuantSpec spec_for(const LayerQuantSpec &base, const std::vector<SpecOverride> &overrides,
                        const std::string &layer_name) {
  LayerQuantSpec s = base;
  for (const SpecOverride &o : overrides) {
    if (!glob_match(o.pattern, layer_name)) continue;
    if (o.skip) s.skip = true;
    if (o.bits) s.bits = *o.bits;
    if (o.group_size) s.group_size = *o.group_size;
    if (o.sym) s.sym = *o.sym;
    if (o.act_order) {
      s.act_order = *o.act_order;
      if (*o.act_order) s.act_group_aware = false;
    }
    if (o.act_group_aware) {
      s.act_group_aware = *o.act_group_aware;
      if (*o.act_group_aware) s.act_order = false;
    }
    if (o.damp_percent) s.damp_percent = *o.damp_percent;
    if (o.mse) s.mse = *o.mse;
    if (o.grid) s.grid = *o.grid;
  }
  return s;
}

bool storable_bits(int32_t bits) { return bits == 2 || bits == 3 || bits == 4 || bits == 8; }

void check_storable_bits(int32_t bits, const std::string &what) {
  if (storable_bits(bits)) return;
  throw ToolError(what + ": " + std::to_string(bits) +
                  "-bit weights cannot be written: GPTQ checkpoints store 2, 3, 4 and 8 bits "
                  "only (the packed layout transformers, vLLM and GPTQModel read has no 5-, "
                  "6- or 7-bit form)");
}

void validate_spec(const LayerQuantSpec &s, const std::string &layer) {
  if (s.skip) return;
  if (s.bits < 2 || s.bits > 8) {
    throw ToolError(layer + ": bits must be 2..8, got " + std::to_string(s.bits));
  }
  if (s.group_size == 0 || s.group_size < -1) {
    throw ToolError(layer + ": group size must be -1 or >= 1, got " +
                    std::to_string(s.group_size));
  }
  if (!(s.damp_percent >= 0.0 && s.damp_percent < 1.0)) {
    throw ToolError(layer + ": damping must be in [0, 1), got " + std::to_string(s.damp_percent));
  }
  if (s.act_order && s.act_group_aware) {
    throw ToolError(layer + ": act-order and act-group-aware are two different column orders; "
                            "choose one");
  }
}

}  // namespace gptqtool
