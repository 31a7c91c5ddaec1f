// A decoded token's attention over a sequence's cached keys and values: the
// decode step's inner kernel, called once per (sequence, key/value head) by
// attention_cached (kv_cache.h).
#pragma once

#include <cstdint>

namespace gptqtool {

// softmax(scale·q·kᵀ)·v over the keys of positions [lo, pos], for `heads`
// query heads that share one key/value head, their query rows q (stride hd)
// all at position pos, into out (stride hd). kt: that head's keys, blocked
// as KvCache::keys lays them out; v: its values ([positions, hd]). cap > 0
// applies Gemma 2's soft cap to the scores first. scores: room for
// decoded_token_scores(heads, lo, pos) floats.
//
// Elem is the cache's element type: float, or uint16_t holding bfloat16.
// Built for 16-, 8- and 4-float vectors (vector_width.h) and run in the
// widest this CPU has; every build gives the same bits, since each score
// and output is a sum in position or dimension order whatever the width
// or the number of heads.
template <typename Elem>
void attend_decoded_token(const float *q, int64_t heads, int64_t hd, const Elem *kt,
                          const Elem *v, int64_t lo, int64_t pos, float scale, float cap,
                          float *scores, float *out);

// Floats of scratch attend_decoded_token needs.
int64_t decoded_token_scores(int64_t heads, int64_t lo, int64_t pos);

extern template void attend_decoded_token<float>(const float *, int64_t, int64_t, const float *,
                                                 const float *, int64_t, int64_t, float, float,
                                                 float *, float *);
extern template void attend_decoded_token<uint16_t>(const float *, int64_t, int64_t,
                                                    const uint16_t *, const uint16_t *, int64_t,
                                                    int64_t, float, float, float *, float *);

}  // namespace gptqtool
