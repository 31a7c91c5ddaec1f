// --model org/name[@revision] found in a local Hugging Face cache laid out as
// huggingface_hub lays it out, the cache directory chosen from the
// environment as huggingface_hub chooses it, and clear errors (never a
// download) when the model is not there.
#include <gtest/gtest.h>

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "common/tool_error.h"
#include "model/hub_cache.h"

namespace gptqtool {
namespace {

namespace fs = std::filesystem;

const std::string kCommit = "0123456789abcdef0123456789abcdef01234567";
const std::string kOther = "fedcba9876543210fedcba9876543210fedcba98";

// The environment variables the cache location depends on, restored after
// each test.
class HubCache : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char *name : kVars) {
      const char *v = getenv(name);
      saved_.push_back(v ? std::optional<std::string>(v) : std::nullopt);
      unsetenv(name);
    }
    std::string tmpl = (fs::temp_directory_path() / "gptq_hub_XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    root_ = tmpl;
  }
  void TearDown() override {
    for (size_t i = 0; i < saved_.size(); ++i) {
      if (saved_[i]) {
        setenv(kVars[i], saved_[i]->c_str(), 1);
      } else {
        unsetenv(kVars[i]);
      }
    }
    fs::remove_all(root_);
  }
  // A cached repository with snapshots for kCommit (refs/main) and kOther
  // (refs/v2, a tag).
  std::string make_cache(const std::string &cache) {
    const std::string repo = cache + "/models--org--tiny";
    fs::create_directories(repo + "/refs");
    fs::create_directories(repo + "/snapshots/" + kCommit);
    fs::create_directories(repo + "/snapshots/" + kOther);
    std::ofstream(repo + "/refs/main") << kCommit;  // no newline, as huggingface_hub writes it
    std::ofstream(repo + "/refs/v2") << kOther << "\n";
    return repo;
  }

  static constexpr const char *kVars[] = {"HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME",
                                          "XDG_CACHE_HOME", "HOME"};
  std::vector<std::optional<std::string>> saved_;
  std::string root_;
};

TEST(HubModelRef, WhatReadsAsARepositoryId) {
  auto r = parse_hub_model_ref("HuggingFaceTB/SmolLM2-135M-Instruct");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->repo_id, "HuggingFaceTB/SmolLM2-135M-Instruct");
  EXPECT_EQ(r->revision, "main");
  r = parse_hub_model_ref("Qwen/Qwen3-0.6B@refs/pr/1");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->repo_id, "Qwen/Qwen3-0.6B");
  EXPECT_EQ(r->revision, "refs/pr/1");
  EXPECT_TRUE(parse_hub_model_ref("gpt2"));
  for (const char *not_an_id : {"", "/abs/path", "./model", "../model", "a/b/c", "org/",
                                "/name", "org/na..me", "org/-name", "org/name@", "org/name@../x",
                                "org/na me", "org--x/name"}) {
    EXPECT_FALSE(parse_hub_model_ref(not_an_id)) << not_an_id;
  }
}

TEST_F(HubCache, CacheDirectoryFromTheEnvironment) {
  setenv("HOME", "/home/u", 1);
  EXPECT_EQ(hub_cache_dir(), "/home/u/.cache/huggingface/hub");
  setenv("XDG_CACHE_HOME", "/xdg", 1);
  EXPECT_EQ(hub_cache_dir(), "/xdg/huggingface/hub");
  setenv("HF_HOME", "/hf", 1);
  EXPECT_EQ(hub_cache_dir(), "/hf/hub");
  setenv("HUGGINGFACE_HUB_CACHE", "/old", 1);
  EXPECT_EQ(hub_cache_dir(), "/old");
  setenv("HF_HUB_CACHE", "/new", 1);
  EXPECT_EQ(hub_cache_dir(), "/new");
}

TEST_F(HubCache, RevisionsResolveToTheirSnapshots) {
  const std::string repo = make_cache(root_ + "/home/hub");
  setenv("HF_HOME", (root_ + "/home").c_str(), 1);
  EXPECT_EQ(resolve_model_path("org/tiny", "--model"), repo + "/snapshots/" + kCommit);
  EXPECT_EQ(resolve_model_path("org/tiny@v2", "--model"), repo + "/snapshots/" + kOther);
  EXPECT_EQ(resolve_model_path("org/tiny@" + kOther, "--model"), repo + "/snapshots/" + kOther);
  // An existing path wins over the cache, and a path that is not an id is
  // left for the caller to report.
  fs::create_directories(root_ + "/org/tiny");
  const std::string cwd = fs::current_path().string();
  fs::current_path(root_);
  EXPECT_EQ(resolve_model_path("org/tiny", "--model"), "org/tiny");
  fs::current_path(cwd);
  EXPECT_EQ(resolve_model_path("/no/such/dir", "--model"), "/no/such/dir");
}

TEST_F(HubCache, AbsentModelsSayWhatWasLookedFor) {
  const std::string repo = make_cache(root_ + "/hub");
  setenv("HF_HUB_CACHE", (root_ + "/hub").c_str(), 1);
  auto message = [](const std::string &arg) {
    try {
      resolve_model_path(arg, "--model");
    } catch (const ToolError &e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  std::string m = message("org/other");
  EXPECT_NE(m.find("has no models--org--other"), std::string::npos) << m;
  EXPECT_NE(m.find(root_ + "/hub"), std::string::npos) << m;
  EXPECT_NE(m.find("nothing is downloaded"), std::string::npos) << m;
  m = message("org/tiny@v9");
  EXPECT_NE(m.find("no revision 'v9'"), std::string::npos) << m;
  m = message("org/tiny@" + std::string(40, 'a'));
  EXPECT_NE(m.find("has no snapshot"), std::string::npos) << m;
  fs::remove_all(repo + "/snapshots/" + kCommit);
  m = message("org/tiny");
  EXPECT_NE(m.find("has no snapshot " + repo + "/snapshots/" + kCommit), std::string::npos) << m;
  std::ofstream(repo + "/refs/main") << "garbage";
  m = message("org/tiny");
  EXPECT_NE(m.find("not a commit hash"), std::string::npos) << m;
  unsetenv("HF_HUB_CACHE");
  m = message("org/tiny");
  EXPECT_NE(m.find("no Hugging Face cache"), std::string::npos) << m;
}

}  // namespace
}  // namespace gptqtool
