#include "cli/cli_args.h"

#include <cctype>
#include <cstdlib>
#include <utility>

#include "common/tool_error.h"

namespace gptqtool {

CliArgs::CliArgs(int argc, char **argv, int first, const std::set<std::string> &valued,
                 const std::set<std::string> &flags) {
  for (int i = first; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0) {
      throw ToolError("unexpected argument '" + arg + "' (options start with --; see --help)");
    }
    std::string name = arg.substr(2), value;
    bool inline_value = false;
    const size_t eq = name.find('=');
    if (eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      inline_value = true;
    }
    if (flags.count(name)) {
      if (inline_value) throw ToolError("--" + name + " takes no value");
      flags_.insert(name);
    } else if (valued.count(name)) {
      if (!inline_value) {
        if (i + 1 >= argc) throw ToolError("--" + name + " needs a value");
        value = argv[++i];
      }
      values_[name].push_back(value);
    } else {
      throw ToolError("unknown option --" + name + " (see --help)");
    }
  }
}

bool CliArgs::flag(const std::string &name) const { return flags_.count(name) != 0; }
bool CliArgs::has(const std::string &name) const { return values_.count(name) != 0; }

std::string CliArgs::get(const std::string &name, const std::string &fallback) const {
  auto it = values_.find(name);
  return it == values_.end() ? fallback : it->second.back();
}

std::string CliArgs::required(const std::string &name) const {
  auto it = values_.find(name);
  if (it == values_.end()) throw ToolError("--" + name + " is required");
  return it->second.back();
}

std::vector<std::string> CliArgs::all(const std::string &name) const {
  auto it = values_.find(name);
  return it == values_.end() ? std::vector<std::string>{} : it->second;
}

int64_t CliArgs::get_int(const std::string &name, int64_t fallback, int64_t lo, int64_t hi) const {
  if (!has(name)) return fallback;
  const std::string v = get(name, "");
  char *end = nullptr;
  const long long x = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || x < lo || x > hi) {
    throw ToolError("--" + name + " needs an integer in [" + std::to_string(lo) + ", " +
                    std::to_string(hi) + "], got '" + v + "'");
  }
  return x;
}

double CliArgs::get_double(const std::string &name, double fallback, double lo, double hi) const {
  if (!has(name)) return fallback;
  const std::string v = get(name, "");
  char *end = nullptr;
  const double x = std::strtod(v.c_str(), &end);
  if (v.empty() || *end != '\0' || !(x >= lo && x <= hi)) {
    throw ToolError("--" + name + " needs a number in [" + std::to_string(lo) + ", " +
                    std::to_string(hi) + "], got '" + v + "'");
  }
  return x;
}

uint64_t parse_byte_size(const std::string &text, const std::string &option) {
  auto bad = [&]() -> ToolError {
    return ToolError(option + " needs a size such as 4GB, 500MB, 2GiB or a number of bytes, "
                              "not '" + text + "'");
  };
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  if (digits == 0 || digits > 19) throw bad();
  const uint64_t number = std::stoull(text.substr(0, digits));
  std::string unit = text.substr(digits);
  for (char &ch : unit) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  static const std::pair<const char *, uint64_t> kUnits[] = {
      {"", 1},           {"b", 1},
      {"kb", 1000ull},   {"mb", 1000ull * 1000},   {"gb", 1000ull * 1000 * 1000},
      {"tb", 1000ull * 1000 * 1000 * 1000},
      {"kib", 1ull << 10}, {"mib", 1ull << 20},     {"gib", 1ull << 30},
      {"tib", 1ull << 40},
  };
  for (const auto &[name, scale] : kUnits) {
    if (unit != name) continue;
    uint64_t bytes = 0;
    if (number == 0 || __builtin_mul_overflow(number, scale, &bytes)) throw bad();
    return bytes;
  }
  throw bad();
}

}  // namespace gptqtool
