// The decoded token's attention (tools/gptq/model/decode_attention.h) over
// a batch decode step's caches, against a plain read of the same bytes in
// the same run: a step reads every sequence's keys and values once, so that
// read is the kernel's floor. One thread; every (layer, sequence, key/value
// head) has its own cache, so a step streams them from memory as a real one
// does. For each cache type, vector width this CPU runs, and context: the
// median time of a step, the cache bytes it read per second, and that rate
// over the plain read's.
//
//   build/bench/bench_decode_attention [--reps 15] [--contexts 128,256,512]
//       [--layers 30] [--sequences 8] [--kv-heads 3] [--group 3] [--head-dim 64]
// The defaults are SmolLM2-135M's shape (9 query heads sharing 3 key/value
// heads of 64) at batch 8.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "bench_util.h"
#include "formats/float_formats.h"
#include "model/decode_attention.h"
#include "model/kv_cache.h"
#include "model/vector_width.h"

namespace {

struct Shape {
  int64_t layers = 30, sequences = 8, kv_heads = 3, group = 3, head_dim = 64;
  int64_t caches() const { return layers * sequences * kv_heads; }
};

std::vector<long> numbers(const std::string &list) {
  std::vector<long> out;
  for (size_t start = 0; start < list.size();) {
    size_t end = list.find(',', start);
    if (end == std::string::npos) end = list.size();
    if (end > start) out.push_back(std::atol(list.substr(start, end - start).c_str()));
    start = end + 1;
  }
  return out;
}

// Reads n 64-bit words with four independent sums, so the loads, not the
// adds, set the pace.
uint64_t read_words(const uint64_t *p, size_t n) {
  uint64_t a = 0, b = 0, c = 0, d = 0;
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    a += p[i];
    b += p[i + 1];
    c += p[i + 2];
    d += p[i + 3];
  }
  for (; i < n; ++i) a += p[i];
  return a + b + c + d;
}

// One cache type: every (layer, sequence, head) cache holds `capacity`
// positions of random keys and values, in the layout KvCache gives them.
template <typename Elem>
void run(const Shape &s, const std::vector<long> &contexts, int reps) {
  const int64_t capacity = *std::max_element(contexts.begin(), contexts.end());
  const int64_t key_len = (capacity + gptqtool::kKeyBlock - 1) / gptqtool::kKeyBlock *
                          gptqtool::kKeyBlock * s.head_dim;
  const int64_t value_len = capacity * s.head_dim;
  // Keys then values of each cache, one after another.
  const int64_t per_cache = key_len + value_len;
  std::vector<Elem> cache(static_cast<size_t>(s.caches() * per_cache));
  std::mt19937 rng(11);
  std::normal_distribution<float> normal;
  for (Elem &e : cache) {
    const float f = normal(rng);
    if constexpr (std::is_same_v<Elem, float>) {
      e = f;
    } else {
      bool beyond_range = false;
      e = gptqtool::float_to_bf16(f, &beyond_range);
    }
  }
  const int64_t q_len = s.sequences * s.kv_heads * s.group * s.head_dim;
  std::vector<float> q(static_cast<size_t>(q_len)), out(q.size());
  for (float &v : q) v = 0.3f * normal(rng);
  std::vector<float> scores(static_cast<size_t>(gptqtool::decoded_token_scores(s.group, 0, capacity)));
  const float scale = 1.0f / std::sqrt(static_cast<float>(s.head_dim));
  const char *type = std::is_same_v<Elem, float> ? "f32" : "bf16";
  const int widest = gptqtool::vector_lanes();
  uint64_t sink = 0;
  for (const long context : contexts) {
    const int64_t pos = context - 1;
    // What a step reads: positions [0, pos] of every cache's keys and values.
    const double bytes = static_cast<double>(s.caches()) * 2 * context * s.head_dim * sizeof(Elem);
    auto step = [&] {
      for (int64_t c = 0; c < s.caches(); ++c) {
        const int64_t seq_head = c % (s.sequences * s.kv_heads);
        const Elem *keys = cache.data() + c * per_cache;
        const int64_t qo = seq_head * s.group * s.head_dim;
        gptqtool::attend_decoded_token(q.data() + qo, s.group, s.head_dim, keys, keys + key_len, 0,
                                       pos, scale, 0.0f, scores.data(), out.data() + qo);
      }
    };
    // The plain read: the same spans of the same caches.
    auto read = [&] {
      for (int64_t c = 0; c < s.caches(); ++c) {
        const Elem *keys = cache.data() + c * per_cache;
        const auto words = [](int64_t elems) { return static_cast<size_t>(elems) * sizeof(Elem) / 8; };
        const int64_t key_span = (pos / gptqtool::kKeyBlock + 1) * gptqtool::kKeyBlock * s.head_dim;
        sink += read_words(reinterpret_cast<const uint64_t *>(keys), words(key_span));
        sink += read_words(reinterpret_cast<const uint64_t *>(keys + key_len), words(context * s.head_dim));
      }
    };
    for (const int lanes : {16, 8, 4}) {
      if (lanes > widest) continue;
      gptqtool::cap_vector_lanes(lanes);
      std::vector<double> step_s, read_s;
      step();
      read();
      for (int r = 0; r < reps; ++r) {  // interleaved, so both see the same machine
        step_s.push_back(bench::seconds(step));
        read_s.push_back(bench::seconds(read));
      }
      const double t = bench::median(step_s), tr = bench::median(read_s);
      std::printf("%5s %6d %8ld %10.3f %9.1f %9.1f %7.2f\n", type, lanes, context, 1e3 * t,
                  bytes / t / 1e9, bytes / tr / 1e9, tr / t);
    }
    gptqtool::cap_vector_lanes(16);
  }
  if (sink == 42) std::printf("#\n");  // keeps the reads
}

}  // namespace

int main(int argc, char **argv) {
  Shape s;
  int reps = 15;
  std::string context_list = "128,256,512";
  for (int i = 1; i + 1 < argc; i += 2) {
    const long v = std::atol(argv[i + 1]);
    if (!std::strcmp(argv[i], "--reps")) reps = static_cast<int>(v);
    else if (!std::strcmp(argv[i], "--contexts")) context_list = argv[i + 1];
    else if (!std::strcmp(argv[i], "--layers")) s.layers = v;
    else if (!std::strcmp(argv[i], "--sequences")) s.sequences = v;
    else if (!std::strcmp(argv[i], "--kv-heads")) s.kv_heads = v;
    else if (!std::strcmp(argv[i], "--group")) s.group = v;
    else if (!std::strcmp(argv[i], "--head-dim")) s.head_dim = v;
    else {
      std::fprintf(stderr, "bench_decode_attention: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  const std::vector<long> contexts = numbers(context_list);
  if (reps < 1 || contexts.empty() || *std::min_element(contexts.begin(), contexts.end()) < 1 ||
      s.layers < 1 || s.sequences < 1 || s.kv_heads < 1 || s.group < 1 || s.head_dim < 1) {
    std::fprintf(stderr, "bench_decode_attention: every size must be positive\n");
    return 2;
  }
  std::printf("# decoded-token attention, %ld layers x %ld sequences x %ld key/value heads of %ld "
              "query heads, head dim %ld; one thread, median of %d interleaved runs\n"
              "# GB/s: cache bytes read per second; x read: over a plain read of the same bytes\n",
              static_cast<long>(s.layers), static_cast<long>(s.sequences),
              static_cast<long>(s.kv_heads), static_cast<long>(s.group),
              static_cast<long>(s.head_dim), reps);
  std::printf("%5s %6s %8s %10s %9s %9s %7s\n", "cache", "lanes", "context", "step ms", "GB/s",
              "read GB/s", "x read");
  run<uint16_t>(s, contexts, reps);
  run<float>(s, contexts, reps);
  return 0;
}
