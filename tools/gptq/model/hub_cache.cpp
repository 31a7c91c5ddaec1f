// The cache layout is huggingface_hub's (file_download.py): a repository's
// folder is "models--" + its id with "/" replaced by "--"; refs/<revision>
// is a text file with the commit hash; snapshots/<hash>/ holds the files
// (links into blobs/). A revision that is itself a commit hash names its
// snapshot directly.
#include "model/hub_cache.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "common/tool_error.h"

namespace gptqtool {
namespace {

namespace fs = std::filesystem;

std::string env(const char *name) {
  const char *v = std::getenv(name);
  return v != nullptr ? std::string(v) : std::string();
}

// Hub names: letters, digits, '-', '_', '.'; neither starting nor ending
// with '-' or '.', and no "--" or ".." inside (huggingface_hub's
// validate_repo_id).
bool valid_name_part(const std::string &s) {
  if (s.empty() || s.size() > 96) return false;
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.';
    if (!ok) return false;
  }
  if (s.front() == '-' || s.front() == '.' || s.back() == '-' || s.back() == '.') return false;
  return s.find("--") == std::string::npos && s.find("..") == std::string::npos;
}

// A branch or tag (may hold '/', as "refs/pr/1" does) or a commit hash; no
// part may climb out of refs/.
bool valid_revision(const std::string &r) {
  if (r.empty() || r.front() == '/' || r.back() == '/') return false;
  size_t start = 0;
  while (start <= r.size()) {
    const size_t slash = r.find('/', start);
    const std::string part = r.substr(start, slash == std::string::npos ? std::string::npos
                                                                        : slash - start);
    if (part.empty() || part == "." || part == "..") return false;
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return true;
}

bool is_commit_hash(const std::string &r) {
  if (r.size() != 40) return false;
  for (char c : r) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

std::string trimmed_file(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) {
    text.pop_back();
  }
  return text;
}

}  // namespace

std::optional<HubModelRef> parse_hub_model_ref(const std::string &text) {
  HubModelRef ref;
  std::string id = text;
  const size_t at = text.find('@');
  if (at != std::string::npos) {
    id = text.substr(0, at);
    ref.revision = text.substr(at + 1);
    if (!valid_revision(ref.revision)) return std::nullopt;
  } else {
    ref.revision = "main";
  }
  const size_t slash = id.find('/');
  if (slash == std::string::npos) {
    if (!valid_name_part(id)) return std::nullopt;
  } else if (id.find('/', slash + 1) != std::string::npos ||
             !valid_name_part(id.substr(0, slash)) || !valid_name_part(id.substr(slash + 1))) {
    return std::nullopt;
  }
  ref.repo_id = id;
  return ref;
}

std::string hub_cache_dir() {
  for (const char *name : {"HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"}) {
    const std::string v = env(name);
    if (!v.empty()) return v;
  }
  std::string home = env("HF_HOME");
  if (home.empty()) {
    std::string xdg = env("XDG_CACHE_HOME");
    if (xdg.empty()) {
      const std::string user = env("HOME");
      if (user.empty()) return "";
      xdg = user + "/.cache";
    }
    home = xdg + "/huggingface";
  }
  return home + "/hub";
}

std::string resolve_model_path(const std::string &text, const std::string &option) {
  std::error_code ec;
  if (fs::exists(text, ec)) return text;
  const std::optional<HubModelRef> ref = parse_hub_model_ref(text);
  if (!ref) return text;  // not a repository id: the caller reports the missing path
  const std::string cache = hub_cache_dir();
  const std::string nothing =
      "; nothing is downloaded: fetch it first (for example `hf download " + ref->repo_id +
      (ref->revision != "main" ? " --revision " + ref->revision : std::string()) +
      "`) or pass a model directory";
  if (cache.empty()) {
    throw ToolError(option + " " + text + ": no such directory, and no Hugging Face cache to look "
                    "in (HF_HUB_CACHE, HF_HOME and HOME are unset)" + nothing);
  }
  std::string folder = "models--" + ref->repo_id;
  for (size_t p = folder.find('/'); p != std::string::npos; p = folder.find('/', p)) {
    folder.replace(p, 1, "--");
  }
  const std::string repo = cache + "/" + folder;
  if (!fs::is_directory(repo, ec)) {
    throw ToolError(option + " " + text + ": no such directory, and the Hugging Face cache " +
                    cache + " has no " + folder + nothing);
  }
  std::string commit;
  std::string looked;
  const std::string ref_file = repo + "/refs/" + ref->revision;
  if (fs::is_regular_file(ref_file, ec)) {
    commit = trimmed_file(ref_file);
    looked = ref_file + " (commit " + commit + ")";
  } else if (is_commit_hash(ref->revision)) {
    commit = ref->revision;
  } else {
    throw ToolError(option + " " + text + ": the Hugging Face cache has " + repo +
                    " but no revision '" + ref->revision + "' (no " + ref_file + ")" + nothing);
  }
  if (!is_commit_hash(commit)) {
    throw ToolError(option + " " + text + ": " + ref_file + " holds '" + commit +
                    "', not a commit hash");
  }
  const std::string snapshot = repo + "/snapshots/" + commit;
  if (!fs::is_directory(snapshot, ec)) {
    throw ToolError(option + " " + text + ": the Hugging Face cache has no snapshot " + snapshot +
                    (looked.empty() ? std::string() : " (named by " + looked + ")") + nothing);
  }
  return snapshot;
}

}  // namespace gptqtool
