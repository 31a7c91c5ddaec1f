// Token streams for calibration and evaluation: text files tokenized by the
// model's own tokenizer, or pre-tokenized id files, and how calibration
// samples are cut from them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace gptqtool {

class Tokenizer;

// A pre-tokenized id file: decimal ids separated by whitespace or commas
// ("#" starts a comment to the end of the line). Ids are checked against
// vocab_size. Throws ToolError naming the file, line and offending text.
std::vector<int32_t> read_id_file(const std::string &path, int64_t vocab_size);

// The file's bytes, decompressed when it is named .gz, with the checks
// below (tokenize_text_file).
std::string read_text_maybe_gzip(const std::string &path);

// The file's text (UTF-8; a .gz file is read through gzip) tokenized. A .gz
// file must be gzip data that ends where its stream ends (truncated or
// corrupt files are refused), and a file named otherwise must not be gzip.
std::vector<int32_t> tokenize_text_file(const Tokenizer &tokenizer, const std::string &path);

// `count` windows of `length` tokens from a stream: evenly spaced and
// disjoint when the stream is long enough; otherwise as many disjoint
// windows as fit (the caller reports the shortfall). No window is padded:
// a stream shorter than `length` gives one shorter window.
std::vector<std::vector<int32_t>> cut_windows(const std::vector<int32_t> &stream, int64_t count,
                                              int64_t length);

// As cut_windows, but the windows start at random: as many disjoint windows
// as cut_windows gives, in stream order, window i starting at o_i + i·length,
// where o is the sorted list of independent uniform draws from
// [0, tokens - windows·length] (the tokens no window covers). The same seed gives the same windows on
// every platform (the generator is std::mt19937_64, whose sequence the C++
// standard fixes, and the draws use no std:: distribution, whose results
// differ between standard libraries).
std::vector<std::vector<int32_t>> random_windows(const std::vector<int32_t> &stream,
                                                 int64_t count, int64_t length, uint64_t seed);

}  // namespace gptqtool
