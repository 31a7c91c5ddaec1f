#include "formats/output_guard.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/tool_error.h"
#include "formats/file_util.h"

namespace gptqtool {

namespace fs = std::filesystem;

namespace {

// The path with every existing component's links resolved and the rest
// normalized; the path as given when even that fails.
fs::path resolved(const std::string &p) {
  std::error_code ec;
  fs::path r = fs::weakly_canonical(fs::absolute(p, ec), ec);
  if (ec) r = fs::path(p);
  r = r.lexically_normal();
  if (r.filename().empty() && r != r.root_path()) r = r.parent_path();  // "out/" -> "out"
  return r;
}

// Whether `inner` is `outer` or lies below it, component by component.
bool within(const fs::path &inner, const fs::path &outer) {
  auto i = inner.begin();
  for (auto o = outer.begin(); o != outer.end(); ++o, ++i) {
    if (i == inner.end() || *i != *o) return false;
  }
  return true;
}

bool same_file(const std::string &a, const std::string &b) {
  struct stat sa, sb;
  return ::stat(a.c_str(), &sa) == 0 && ::stat(b.c_str(), &sb) == 0 && sa.st_dev == sb.st_dev &&
         sa.st_ino == sb.st_ino;
}

}  // namespace

void check_apart_from_inputs(const std::string &option, const std::string &out,
                             const std::vector<std::string> &inputs) {
  const fs::path o = resolved(out);
  for (const std::string &input : inputs) {
    const fs::path in = resolved(input);
    if (o == in || same_file(out, input)) {
      throw ToolError(option + " " + out + " is the input " + input +
                      "; choose an output apart from every input");
    }
    if (within(in, o)) {
      throw ToolError(option + " " + out + " contains the input " + input +
                      "; choose an output apart from every input");
    }
    if (within(o, in)) {
      throw ToolError(option + " " + out + " lies inside the input " + input +
                      "; choose an output apart from every input");
    }
  }
}

void check_output_parent(const std::string &option, const std::string &out) {
  fs::path parent = fs::path(out).lexically_normal();
  if (parent.filename().empty()) parent = parent.parent_path();  // "out/" -> "out"
  parent = parent.parent_path();
  if (parent.empty()) parent = ".";
  struct stat st;
  if (::stat(parent.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    throw ToolError(option + " " + out + ": the directory " + parent.string() +
                    " does not exist");
  }
  if (::access(parent.c_str(), W_OK | X_OK) != 0) {
    throw ToolError(option + " " + out + ": the directory " + parent.string() +
                    " is not writable");
  }
}

bool is_checkpoint_we_wrote(const std::string &dir, std::string *why_not) {
  struct stat st;
  if (::lstat(dir.c_str(), &st) != 0) {
    *why_not = "it cannot be examined";
    return false;
  }
  if (S_ISLNK(st.st_mode)) {
    *why_not = "it is a symbolic link";
    return false;
  }
  if (!S_ISDIR(st.st_mode)) {
    *why_not = "it is a file, not a directory";
    return false;
  }
  const std::string report = dir + "/quantize_report.json";
  if (::lstat(report.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    *why_not = "it has no quantize_report.json";
    return false;
  }
  nlohmann::json config;
  try {
    config = nlohmann::json::parse(read_text_file(dir + "/config.json"));
  } catch (const std::exception &) {
    *why_not = "it has no readable config.json";
    return false;
  }
  const auto *q = config.is_object() && config.contains("quantization_config")
                      ? &config["quantization_config"]
                      : nullptr;
  const bool gptq = q != nullptr && q->is_object() && q->contains("quant_method") &&
                    (*q)["quant_method"] == "gptq";
  bool ours = false;
  if (gptq && q->contains("meta") && (*q)["meta"].is_object() &&
      (*q)["meta"].contains("quantizer") && (*q)["meta"]["quantizer"].is_array()) {
    for (const auto &name : (*q)["meta"]["quantizer"]) {
      ours = ours || (name.is_string() && name.get<std::string>().rfind("libgptq:", 0) == 0);
    }
  }
  if (!ours) {
    *why_not = "its config.json does not name a GPTQ checkpoint written by libgptq";
    return false;
  }
  return true;
}

void check_checkpoint_output(const std::string &out, bool overwrite) {
  if (!path_exists(out)) return;
  std::string why_not;
  const bool ours = is_checkpoint_we_wrote(out, &why_not);
  if (!ours) {
    throw ToolError(out + " already exists and is not a checkpoint this tool wrote (" + why_not +
                    "); --overwrite replaces only those. Choose another --out");
  }
  if (!overwrite) {
    throw ToolError(out + " already exists; choose another --out or pass --overwrite to "
                          "replace that checkpoint");
  }
}

}  // namespace gptqtool
