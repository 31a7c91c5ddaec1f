#include "tokenizer/streaming_decoder.h"

#include <algorithm>
#include <utility>

#include "common/tool_error.h"

namespace gptqtool {

namespace {

constexpr char kReplacement[] = "\xEF\xBF\xBD";  // U+FFFD in UTF-8

bool ends_with_replacement(const std::string &s, size_t end) {
  return end >= 3 && s.compare(end - 3, 3, kReplacement) == 0;
}

}  // namespace

StreamingDecoder::StreamingDecoder(const Tokenizer &tokenizer, std::vector<std::string> stops)
    : tokenizer_(tokenizer), stops_(std::move(stops)) {
  for (const std::string &s : stops_) {
    if (s.empty()) throw ToolError("--stop needs a non-empty string");
  }
}

std::string StreamingDecoder::push(int32_t token) {
  if (stopped_) return "";
  tokens_.push_back(token);
  // The whole generation is decoded each time: decoders that treat the
  // first token specially (a leading space stripped) then agree with a
  // one-shot decode. Text already released is never taken back.
  const std::string all = tokenizer_.decode(tokens_);
  const size_t from = std::min(released_.size(), all.size());
  // A stop string, searched from where one could start that was not yet
  // complete in the released text.
  size_t stop_at = std::string::npos;
  for (const std::string &s : stops_) {
    const size_t start = from >= s.size() - 1 ? from - (s.size() - 1) : 0;
    const size_t at = all.find(s, start);
    if (at != std::string::npos) stop_at = std::min(stop_at, at);
  }
  if (stop_at != std::string::npos) {
    stopped_ = true;
    std::string out = stop_at > from ? all.substr(from, stop_at - from) : "";
    released_ += out;
    return out;
  }
  size_t end = all.size();
  while (end > from && ends_with_replacement(all, end)) end -= 3;
  // Hold back the longest tail that begins some stop string.
  size_t hold = 0;
  for (const std::string &s : stops_) {
    for (size_t k = std::min(s.size() - 1, end - from); k > hold; --k) {
      if (all.compare(end - k, k, s, 0, k) == 0) {
        hold = k;
        break;
      }
    }
  }
  end -= hold;
  std::string out = end > from ? all.substr(from, end - from) : "";
  released_ += out;
  return out;
}

std::string StreamingDecoder::finish() {
  if (stopped_) return "";
  const std::string all = tokenizer_.decode(tokens_);
  std::string out = all.size() > released_.size() ? all.substr(released_.size()) : "";
  released_ += out;
  return out;
}

}  // namespace gptqtool
