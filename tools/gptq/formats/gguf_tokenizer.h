// A model's Hugging Face tokenizer as llama.cpp's GGUF metadata: a byte-level
// BPE ("gpt2" in llama.cpp's terms) with its tokens, token types, merges,
// pre-tokenizer name, special token ids and chat template.
#pragma once

#include <cstdint>
#include <string>

#include "formats/gguf_file.h"

namespace gptqtool {

// Reads DIR/tokenizer.json (and tokenizer_config.json, config.json's token
// ids, chat_template.jinja when present) and adds the tokenizer.* keys.
// vocab_size is the model's (config.json): ids the tokenizer lacks up to it
// become unused padding tokens, as llama.cpp's converter writes them.
// Throws ToolError for a tokenizer llama.cpp's "gpt2" model cannot
// represent (not byte-level BPE, or a pre-tokenizer it has no name for),
// naming what is missing.
void add_gguf_tokenizer(const std::string &model_dir, int64_t vocab_size, GgufFile &file);

}  // namespace gptqtool
