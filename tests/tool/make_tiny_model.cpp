// Writes a tiny random LLaMA-shaped model directory for the CLI tests:
//   make_tiny_model DIR [llama|qwen2|mistral|mistral-swa|narrow|gpt2]
// "gpt2" writes an unsupported architecture (for the error-path tests);
// "mistral-swa" a Mistral with a sliding window, "narrow" a hidden size of
// 48 (not a multiple of GGUF's 32-column blocks).
#include <cstdio>
#include <cstring>

#include "tiny_model.h"

int main(int argc, char **argv) {
  if (argc < 2) {
    std::fprintf(stderr,
                 "usage: make_tiny_model DIR [llama|qwen2|mistral|mistral-swa|narrow|gpt2]\n");
    return 2;
  }
  tinymodel::TinySpec spec;
  const char *kind = argc > 2 ? argv[2] : "llama";
  spec.qwen2 = std::strcmp(kind, "qwen2") == 0;
  spec.mistral = std::strncmp(kind, "mistral", 7) == 0;
  if (std::strcmp(kind, "mistral-swa") == 0) spec.sliding_window = 16;
  if (std::strcmp(kind, "narrow") == 0) spec.hidden = 48;
  try {
    tinymodel::write_model(argv[1], spec);
    if (std::strcmp(kind, "gpt2") == 0) {
      nlohmann::json c = tinymodel::config_json(spec);
      c["architectures"] = {"GPT2LMHeadModel"};
      c["model_type"] = "gpt2";
      tinymodel::write_json(std::string(argv[1]) + "/config.json", c);
    }
  } catch (const std::exception &e) {
    std::fprintf(stderr, "make_tiny_model: %s\n", e.what());
    return 1;
  }
  return 0;
}
