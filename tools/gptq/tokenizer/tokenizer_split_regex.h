// The three split regexes the tokenizer supports (GPT-2, Llama-3, Qwen2),
// recognised by their exact text and matched by hand, since the tool has no
// regex engine (internal to tokenizer*.cpp).
#pragma once

#include <string>
#include <vector>

#include "tokenizer/tokenizer_split.h"

namespace gptqtool {
namespace tok {

enum class SplitRegex { kGpt2, kLlama3, kQwen2 };

// The patterns exactly as tokenizer.json files spell them.
inline constexpr char kGpt2Pattern[] =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
inline constexpr char kLlama3Pattern[] =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
inline constexpr char kQwen2Pattern[] =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// Every match of the pattern in text, in order; all three patterns match at
// every position, so the spans cover the text and are all matches.
std::vector<Span> regex_spans(const std::string &text, SplitRegex which);

}  // namespace tok
}  // namespace gptqtool
