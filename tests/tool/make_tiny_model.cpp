// Writes a tiny random LLaMA-shaped model directory for the CLI tests:
//   make_tiny_model DIR [llama|qwen2|qwen3|qwen2-moe|mistral|mistral-swa|narrow|wide|gpt2|chat]
//                   [VOCAB]
// "gpt2" writes an unsupported architecture (for the error-path tests);
// "chat" a model with a byte tokenizer and a ChatML template (generate);
// "mistral-swa" a Mistral with a sliding window, "narrow" a hidden size of
// 48 (not a multiple of GGUF's 32-column blocks), "wide" a LLaMA of 8 layers
// with widths 256 and 512 (whole 256-column K-quant blocks, and enough
// layers for llama.cpp's per-layer mixes). VOCAB (default 96) lets
// a real tokenizer's ids fit.
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "tiny_model.h"

int main(int argc, char **argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: make_tiny_model DIR "
                         "[llama|qwen2|qwen3|qwen2-moe|mistral|mistral-swa|narrow|wide|gpt2|chat] "
                         "[VOCAB]\n");
    return 2;
  }
  tinymodel::TinySpec spec;
  const char *kind = argc > 2 ? argv[2] : "llama";
  spec.qwen2 = std::strcmp(kind, "qwen2") == 0;
  spec.mistral = std::strncmp(kind, "mistral", 7) == 0;
  if (std::strcmp(kind, "mistral-swa") == 0) spec.sliding_window = 16;
  if (std::strcmp(kind, "narrow") == 0) spec.hidden = 48;
  if (std::strcmp(kind, "wide") == 0) {
    spec.hidden = 256;
    spec.intermediate = 512;
    spec.layers = 8;
  }
  if (std::strcmp(kind, "qwen3") == 0) {
    spec.qwen3 = true;
    spec.head_dim = 24;  // q and o 96 wide in a 64-wide model, as Qwen3's are wider
  }
  // A Qwen2-MoE of 8 experts, top 2: with a few short calibration windows
  // some experts get few tokens.
  if (std::strcmp(kind, "qwen2-moe") == 0) {
    spec.qwen2_moe = true;
    spec.experts = 8;
  }
  if (argc > 3) spec.vocab = std::atoi(argv[3]);
  if (spec.vocab < 1) {
    std::fprintf(stderr, "make_tiny_model: VOCAB must be a positive integer\n");
    return 2;
  }
  try {
    if (std::strcmp(kind, "chat") == 0) {
      tinymodel::write_chat_model(argv[1], spec);
      return 0;
    }
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
