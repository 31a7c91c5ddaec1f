// `--model org/name[@revision]`: a model already in the local Hugging Face
// cache, found offline the way huggingface_hub lays the cache out
// (HF_HUB_CACHE, else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub,
// else ~/.cache/huggingface/hub; models--org--name/refs/<revision> holds a
// commit hash, models--org--name/snapshots/<hash> the files). Nothing is
// ever downloaded: a model that is not there is an error saying where the
// tool looked.
#pragma once

#include <optional>
#include <string>

namespace gptqtool {

struct HubModelRef {
  std::string repo_id;   // "org/name" (or a bare "name")
  std::string revision;  // "main" unless given after '@': a branch, tag or commit hash
};

// `text` read as a repository id with an optional "@revision", or nothing
// when it cannot be one (an absolute or relative path, "..", empty parts).
std::optional<HubModelRef> parse_hub_model_ref(const std::string &text);

// The cache directory from the environment, as huggingface_hub chooses it.
std::string hub_cache_dir();

// An existing path is returned as it is. Otherwise, if `text` reads as a
// repository id, the snapshot directory of that revision in the cache.
// Throws ToolError saying what was looked for (and that nothing is
// downloaded) when neither exists.
std::string resolve_model_path(const std::string &text, const std::string &option);

}  // namespace gptqtool
