// Command-line parsing for the gptq tool: "--name value", "--name=value",
// flags, repeatable options, and errors that say which option was wrong.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace gptqtool {

class CliArgs {
 public:
  // `valued` take a value, `flags` do not; anything else is an error.
  CliArgs(int argc, char **argv, int first, const std::set<std::string> &valued,
          const std::set<std::string> &flags);
  bool flag(const std::string &name) const;
  bool has(const std::string &name) const;
  std::string get(const std::string &name, const std::string &fallback) const;
  std::string required(const std::string &name) const;
  std::vector<std::string> all(const std::string &name) const;
  int64_t get_int(const std::string &name, int64_t fallback, int64_t lo, int64_t hi) const;
  double get_double(const std::string &name, double fallback, double lo, double hi) const;

 private:
  std::map<std::string, std::vector<std::string>> values_;
  std::set<std::string> flags_;
};

// A size as transformers' max_shard_size writes it: an integer number of
// bytes, optionally followed by B, KB, MB, GB, TB (powers of 1000) or KiB,
// MiB, GiB, TiB (powers of 1024), in any case: "4GB", "500MiB", "1000".
// Throws ToolError naming `option` for anything else, zero included.
uint64_t parse_byte_size(const std::string &text, const std::string &option);

}  // namespace gptqtool
