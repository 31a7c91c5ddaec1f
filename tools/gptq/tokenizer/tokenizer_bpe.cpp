// The BPE model; see tokenizer_bpe.h.
#include "tokenizer/tokenizer_bpe.h"

#include <functional>
#include <queue>

#include "common/tool_error.h"
#include "tokenizer/tokenizer_utf8.h"

namespace gptqtool {
namespace tok {

int32_t Bpe::need_unk() const {
  if (unk_id < 0) {
    throw ToolError("tokenizer: unk_token \"" + unk_token +
                    "\" is needed for a character missing from the vocabulary, "
                    "but is not in the vocabulary itself");
  }
  return unk_id;
}

void Bpe::tokenize(const std::string &word, std::vector<int32_t> *out) const {
  if (word.empty()) return;
  if (ignore_merges) {
    const int32_t id = find(word);
    if (id >= 0) {
      out->push_back(id);
      return;
    }
  }
  std::vector<int32_t> ids;
  ids.reserve(word.size());
  bool pending_unk = false;
  std::string s;
  for (size_t i = 0; i < word.size();) {
    const Decoded d = decode_utf8(word.data(), word.size(), i);
    const size_t len = d.valid ? d.len : 1;
    s.assign(word, i, len);
    if (i > 0) s.insert(0, prefix);
    i += len;
    if (i == word.size()) s += suffix;
    const int32_t id = find(s);
    if (id >= 0) {
      if (pending_unk) ids.push_back(need_unk());
      pending_unk = false;
      ids.push_back(id);
      continue;
    }
    if (byte_fallback) {
      bool all = true;
      for (unsigned char b : s) all = all && byte_ids[b] >= 0;
      if (all) {
        // A pending unk stays pending, as in HF.
        for (unsigned char b : s) ids.push_back(byte_ids[b]);
        continue;
      }
    }
    if (unk_token.empty()) continue;  // no unk token: the character is dropped
    if (pending_unk && !fuse_unk) ids.push_back(need_unk());
    pending_unk = true;
  }
  if (pending_unk) ids.push_back(need_unk());
  merge(&ids);
  out->insert(out->end(), ids.begin(), ids.end());
}

void Bpe::merge(std::vector<int32_t> *ids) const {
  const int32_t n = static_cast<int32_t>(ids->size());
  if (n < 2 || merges.empty()) return;
  struct Entry {
    int32_t rank, pos, new_id;
    bool operator>(const Entry &o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  std::vector<int32_t> &id = *ids;
  std::vector<int32_t> prev(n), next(n);
  std::vector<char> alive(n, 1);
  for (int32_t i = 0; i < n; ++i) prev[i] = i - 1, next[i] = i + 1 < n ? i + 1 : -1;
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> queue;
  auto consider = [&](int32_t pos) {  // queue the pair that starts at pos
    if (pos < 0 || next[pos] < 0) return;
    const int32_t right = next[pos];
    auto it = merges.find(pair_key(id[pos], id[right]));
    if (it != merges.end()) queue.push({it->second.rank, pos, it->second.new_id});
  };
  for (int32_t i = 0; i + 1 < n; ++i) consider(i);
  while (!queue.empty()) {
    const Entry top = queue.top();
    queue.pop();
    const int32_t right = next[top.pos];
    if (!alive[top.pos] || right < 0) continue;
    auto it = merges.find(pair_key(id[top.pos], id[right]));
    if (it == merges.end() || it->second.new_id != top.new_id) continue;
    id[top.pos] = top.new_id;
    alive[right] = 0;
    next[top.pos] = next[right];
    if (next[right] >= 0) prev[next[right]] = top.pos;
    if (prev[top.pos] >= 0) consider(prev[top.pos]);
    consider(top.pos);
  }
  int32_t w = 0;
  for (int32_t i = 0; i < n; ++i) {
    if (alive[i]) id[w++] = id[i];
  }
  ids->resize(w);
}

}  // namespace tok
}  // namespace gptqtool
