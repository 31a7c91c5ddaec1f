// Decoding with the KV cache against the plain forward pass: the cache's
// logits equal a full recompute, greedy generation equals a reference decode
// that recomputes the whole sequence for every token, batching and slot
// reuse change nothing; sampling keeps the right token sets and is
// reproducible; streamed text is UTF-8-safe and honours stop strings.
#include <gtest/gtest.h>

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <iostream>
#include <limits>
#include <map>
#include <mutex>
#include <random>
#include <tuple>
#include <utility>

#include "formats/checkpoint_writer.h"
#include "formats/float_formats.h"
#include "model/decode_attention.h"
#include "model/joined_linears.h"
#include "model/kv_cache.h"
#include "model/llama_forward.h"
#include "model/model_dir.h"
#include "model/vector_math.h"
#include "model/vector_width.h"
#include "pipeline/generate.h"
#include "pipeline/quantize_model.h"
#include "pipeline/sampling.h"
#include "tiny_model.h"
#include "tokenizer/streaming_decoder.h"
#include "tokenizer/tokenizer.h"

using namespace gptqtool;

namespace {

struct TinyModel {
  std::string dir;
  LlamaModel model;
  explicit TinyModel(const tinymodel::TinySpec &spec) : dir(tinymodel::make_temp_dir("gen")) {
    tinymodel::write_model(dir, spec);
    model = load_model(*ModelDir::open(dir));
  }
  ~TinyModel() { std::filesystem::remove_all(dir); }
};

std::vector<int32_t> ids_of(int n, int mul, int add, int64_t vocab) {
  std::vector<int32_t> v;
  for (int i = 0; i < n; ++i) v.push_back((i * mul + add) % static_cast<int32_t>(vocab));
  return v;
}

// Largest |a - b| over a row, relative to the row's largest |b|.
double row_error(const float *a, const float *b, int64_t n) {
  double err = 0, scale = 0;
  for (int64_t i = 0; i < n; ++i) {
    err = std::max(err, std::fabs(static_cast<double>(a[i]) - b[i]));
    scale = std::max(scale, std::fabs(static_cast<double>(b[i])));
  }
  return err / scale;
}

std::vector<float> full_logits(const LlamaModel &m, const std::vector<int32_t> &ids) {
  SequenceBatch b;
  b.add(static_cast<int64_t>(ids.size()));
  const Rope rope(m.config, static_cast<int64_t>(ids.size()));
  return model_logits(m, rope, ids, b);
}

// Feeds two sequences into a cache in uneven chunks, both in every step, and
// returns the largest difference of each new token's logits from the full
// forward pass (row_error).
double cache_error(const LlamaModel &model, KvDType dtype) {
  const int64_t V = model.config.vocab_size;
  const std::vector<int32_t> a = ids_of(40, 37, 5, V), b = ids_of(33, 11, 3, V);
  const std::vector<float> want_a = full_logits(model, a), want_b = full_logits(model, b);
  // A capacity off the transposed keys' 16-position blocks, so that decode
  // steps also read their padding.
  KvCache cache(model.config, 3, 41, dtype);
  const Rope rope(model.config, 64);
  // Chunks per step: a prefill of several tokens, then single tokens and
  // another multi-token chunk (a continued prompt).
  const std::vector<std::pair<int, int>> chunks = {{9, 4}, {1, 1}, {1, 7}, {13, 1}, {1, 1},
                                                   {15, 19}};
  size_t pa = 0, pb = 0;
  double worst = 0;
  for (const auto &[na, nb] : chunks) {
    CacheStep step;
    step.slots = {2, 0};  // slots in any order
    step.batch.add(na);
    step.batch.add(nb);
    std::vector<int32_t> ids(a.begin() + pa, a.begin() + pa + na);
    ids.insert(ids.end(), b.begin() + pb, b.begin() + pb + nb);
    const std::vector<float> got = cached_forward(model, rope, &cache, ids, step, LogitRows::All);
    for (int r = 0; r < na; ++r)
      worst = std::max(worst, row_error(&got[r * V], &want_a[(pa + r) * V], V));
    for (int r = 0; r < nb; ++r)
      worst = std::max(worst, row_error(&got[(na + r) * V], &want_b[(pb + r) * V], V));
    pa += na;
    pb += nb;
  }
  EXPECT_EQ(cache.length(2), 40);
  EXPECT_EQ(cache.length(0), 33);
  EXPECT_EQ(cache.length(1), 0);
  return worst;
}

void check_cache_matches_recompute(const LlamaModel &model, double tolerance) {
  EXPECT_LT(cache_error(model, KvDType::F32), tolerance);
}

void check_cache_matches_recompute(const tinymodel::TinySpec &spec) {
  TinyModel t(spec);
  check_cache_matches_recompute(t.model, 1e-5);
}

// Greedy decoding written out without a cache: the whole sequence is run
// again for every new token.
std::vector<int32_t> reference_greedy(const LlamaModel &m, std::vector<int32_t> seq, int n,
                                      int32_t eos) {
  std::vector<int32_t> out;
  const int64_t V = m.config.vocab_size;
  for (int i = 0; i < n; ++i) {
    const std::vector<float> l = full_logits(m, seq);
    const int32_t next = argmax(&l[(seq.size() - 1) * V], V);
    if (next == eos) break;
    out.push_back(next);
    seq.push_back(next);
  }
  return out;
}

// A tiny model of `spec` written under root/model and quantized by RTN
// (group 32) into the GPTQ checkpoint root/ck, whose path is returned.
std::string write_rtn_checkpoint(const std::string &root, const tinymodel::TinySpec &spec,
                                 bool quantize_lm_head) {
  tinymodel::write_model(root + "/model", spec);
  auto dir = ModelDir::open(root + "/model");
  QuantizeOptions qo;
  qo.method = QuantMethod::Rtn;
  qo.base.group_size = 32;
  qo.quantize_lm_head = quantize_lm_head;
  const QuantizeResult r = quantize_model(*dir, {}, qo, {});
  write_gptq_checkpoint(*dir, r, qo, {}, root + "/ck");
  return root + "/ck";
}

}  // namespace

TEST(KvCache, LogitsEqualFullRecompute) { check_cache_matches_recompute({}); }

TEST(KvCache, LogitsEqualFullRecomputeWithBiasesAndSlidingWindow) {
  tinymodel::TinySpec s;
  s.mistral = true;
  s.sliding_window = 6;  // shorter than the chunks and the sequences
  check_cache_matches_recompute(s);
  tinymodel::TinySpec q;
  q.qwen2 = true;
  q.tied = true;
  q.heads = 4;
  q.kv_heads = 1;
  check_cache_matches_recompute(q);
}

// Gemma 2's soft-capped, rescaled scores and capped logits through the cache.
TEST(KvCache, LogitsEqualFullRecomputeForGemma2) {
  tinymodel::TinySpec g;
  g.gemma2 = true;
  g.tied = true;
  g.sliding_window = 6;
  check_cache_matches_recompute(g);
}

// Gemma 3's two RoPEs and q/k norms through the cache.
TEST(KvCache, LogitsEqualFullRecomputeForGemma3) {
  tinymodel::TinySpec g;
  g.gemma3 = true;
  g.tied = true;
  g.sliding_window = 6;
  check_cache_matches_recompute(g);
}

// A mixture of experts through the cache: decode steps route one token.
TEST(KvCache, LogitsEqualFullRecomputeForMixturesOfExperts) {
  tinymodel::TinySpec m;
  m.mixtral = true;
  check_cache_matches_recompute(m);
  tinymodel::TinySpec q;
  q.qwen2_moe = true;
  check_cache_matches_recompute(q);
}

TEST(KvCache, LogitsEqualFullRecomputeOnAGptqCheckpoint) {
  // Every linear layer (lm_head too) through gptq_matmul: the prefill's
  // many rows and the decode steps' few take different kernels.
  const std::string root = tinymodel::make_temp_dir("genq");
  const LlamaModel model = load_model(*ModelDir::open(write_rtn_checkpoint(root, {}, true)));
  ASSERT_TRUE(model.lm_head.quantized());
  check_cache_matches_recompute(model, 1e-5);
  std::filesystem::remove_all(root);
}

// Head dimensions that are not a multiple of the decode attention's blocks
// of columns (64 or 32 at a time, then 16, then one): 80 with two and three
// query heads per key/value head, 72 (a tail of single columns).
TEST(KvCache, LogitsEqualFullRecomputeWithUnevenHeadDims) {
  for (const auto &[hidden, heads] : std::vector<std::pair<int64_t, int64_t>>{
           {160, 2}, {240, 3}, {144, 2}}) {
    tinymodel::TinySpec s;
    s.hidden = hidden;
    s.heads = heads;
    s.kv_heads = 1;
    SCOPED_TRACE("head_dim " + std::to_string(hidden / heads) + ", " + std::to_string(heads) +
                 " heads");
    TinyModel t(s);
    EXPECT_LT(cache_error(t.model, KvDType::F32), 1e-5);
    EXPECT_LT(cache_error(t.model, KvDType::BF16), 1e-2);
  }
}

namespace {

// Logits of two sequences decoded token by token after a short prompt, all
// steps' rows one after another.
std::vector<float> decoded_logits(const LlamaModel &model, KvDType dtype) {
  const int64_t V = model.config.vocab_size;
  KvCache cache(model.config, 2, 90, dtype);
  const Rope rope(model.config, 90);
  CacheStep step;
  step.slots = {1, 0};
  step.batch.add(5);
  step.batch.add(3);
  std::vector<int32_t> ids = ids_of(8, 37, 5, V);
  std::vector<float> all;
  for (int k = 0; k < 80; ++k) {
    const std::vector<float> l = cached_forward(model, rope, &cache, ids, step, LogitRows::Last);
    all.insert(all.end(), l.begin(), l.end());
    ids = {argmax(&l[0], V), argmax(&l[static_cast<size_t>(V)], V)};
    step.batch = SequenceBatch();
    step.batch.add(1);
    step.batch.add(1);
  }
  return all;
}

}  // namespace

// The decoded token's attention is built for 16-, 8- and 4-float vectors
// (vector_width.h); each build gives bit-identical logits, over contexts of
// up to 85 positions (whole passes of every width and their tails), one to
// five query heads per key/value head, head dimensions with tails (80, 72,
// 20), a sliding window, and both cache types. Widths this CPU lacks are
// left out (said on stdout).
TEST(KvCache, DecodeAttentionIsBitIdenticalInEveryVectorWidth) {
  struct Shape {
    int64_t hidden, heads, kv_heads, window;
  };
  const std::vector<Shape> shapes = {{64, 4, 1, 0},  {80, 5, 1, 0}, {240, 3, 1, 0},
                                     {144, 2, 2, 0}, {120, 6, 2, 0}, {64, 2, 1, 23}};
  const int widest = vector_lanes();
  std::cout << "comparing vector widths of 4";
  for (int lanes : {8, 16})
    if (lanes <= widest) std::cout << ", " << lanes;
  std::cout << " floats" << (widest < 16 ? " (this CPU has no wider)" : "") << "\n";
  for (const Shape &shape : shapes) {
    tinymodel::TinySpec spec;
    spec.hidden = shape.hidden;
    spec.heads = shape.heads;
    spec.kv_heads = shape.kv_heads;
    if (shape.window > 0) {
      spec.mistral = true;
      spec.sliding_window = shape.window;
    }
    TinyModel t(spec);
    for (const KvDType dtype : {KvDType::F32, KvDType::BF16}) {
      SCOPED_TRACE("hidden " + std::to_string(shape.hidden) + ", " +
                   std::to_string(shape.heads) + "/" + std::to_string(shape.kv_heads) +
                   " heads, window " + std::to_string(shape.window) +
                   (dtype == KvDType::BF16 ? ", bf16" : ", f32"));
      cap_vector_lanes(4);
      const std::vector<float> narrow = decoded_logits(t.model, dtype);
      for (int lanes : {8, 16}) {
        if (lanes > widest) continue;
        cap_vector_lanes(lanes);
        EXPECT_EQ(decoded_logits(t.model, dtype), narrow) << lanes << " floats";
      }
      cap_vector_lanes(16);
    }
  }
}

// attend_decoded_token against a scalar loop that sums in the same order
// (each score over the head dimension, each output over the positions) and
// uses the same softmax helpers: the vector builds must give exactly its
// bits, with both cache types, windows that start anywhere in a block of
// keys (a bfloat16 cache's keys are read two vectors at a time), contexts
// across whole passes and their tails, one to eight heads sharing a
// key/value head, head dimensions with tails, and Gemma 2's soft cap.
template <typename Elem>
void check_decoded_token_attention() {
  std::mt19937 rng(5);
  std::normal_distribution<float> normal;
  auto stored = [](float f) {
    if constexpr (std::is_same_v<Elem, float>) {
      return f;
    } else {
      bool beyond_range = false;
      return float_to_bf16(f, &beyond_range);
    }
  };
  const int widest = vector_lanes();
  for (const int64_t hd : {64, 80, 32, 16, 72, 8}) {
    for (const int64_t heads : {1, 2, 3, 4, 5, 8}) {
      for (const int64_t pos : {0, 15, 16, 31, 47, 85, 130}) {
        for (const int64_t lo : {int64_t{0}, pos / 2, std::max<int64_t>(0, pos - 22), pos}) {
          for (const float cap : {0.0f, 2.0f}) {
            SCOPED_TRACE("hd " + std::to_string(hd) + ", " + std::to_string(heads) +
                         " heads, keys " + std::to_string(lo) + ".." + std::to_string(pos) +
                         ", cap " + std::to_string(cap));
            const int64_t capacity = (pos / kKeyBlock + 1) * kKeyBlock;
            std::vector<Elem> keys(static_cast<size_t>(capacity * hd)), values(keys.size());
            for (Elem &k : keys) k = stored(normal(rng));
            for (Elem &v : values) v = stored(normal(rng));
            std::vector<float> q(static_cast<size_t>(heads * hd));
            for (float &x : q) x = 0.5f * normal(rng);
            const float scale = 0.3f;
            // The reference.
            const int64_t n = pos + 1 - lo;
            std::vector<float> want(q.size()), p(static_cast<size_t>(n));
            for (int64_t h = 0; h < heads; ++h) {
              for (int64_t i = 0; i < n; ++i) {
                float sum = 0.0f;
                for (int64_t d = 0; d < hd; ++d)
                  sum += q[h * hd + d] * widen(keys[KvCache::key_index(hd, d, lo + i)]);
                p[i] = scale * sum;
              }
              if (cap > 0) soft_cap(p.data(), n, cap);
              const float mx = max_of(p.data(), n);
              for (float &x : p) x = fast_exp(x - mx);
              const auto inv = static_cast<float>(1.0 / sum_of(p.data(), n));
              for (float &x : p) x *= inv;
              for (int64_t d = 0; d < hd; ++d) {
                float o = 0.0f;
                for (int64_t i = 0; i < n; ++i) o += p[i] * widen(values[(lo + i) * hd + d]);
                want[h * hd + d] = o;
              }
            }
            for (const int lanes : {4, 8, 16}) {
              if (lanes > widest) continue;
              cap_vector_lanes(lanes);
              std::vector<float> got(q.size(), -1.0f),
                  scores(static_cast<size_t>(decoded_token_scores(heads, lo, pos)));
              attend_decoded_token(q.data(), heads, hd, keys.data(), values.data(), lo, pos,
                                   scale, cap, scores.data(), got.data());
              EXPECT_EQ(got, want) << lanes << " floats";
            }
            cap_vector_lanes(16);
          }
        }
      }
    }
  }
}

TEST(KvCache, DecodedTokenAttentionMatchesAScalarLoopBitForBit) {
  check_decoded_token_attention<float>();
  check_decoded_token_attention<uint16_t>();
}

// A decoded token's attention runs in the calling thread below about 2^16
// multiply-adds and as tasks over the tool's threads above
// (attention_cached.cpp); each task computes what the calling thread would,
// so the logits are the same bits on one thread and on several. The shapes
// here cross that bound as their contexts grow to 85 positions (3 heads of
// 80 from position 69 on, 4 of 64 from 65 on, for the two sequences). Every
// linear layer is quantized, so that the products are the same bits on any
// number of threads too (float32 ones are OpenBLAS's, whose sums may split
// by its thread count).
TEST(KvCache, DecodeAttentionIsBitIdenticalOnOneThreadAndSeveral) {
  const int saved = openblas_get_num_threads();
  const std::string root = tinymodel::make_temp_dir("attention_threads");
  for (const auto &[hidden, heads, kv_heads] :
       std::vector<std::tuple<int64_t, int64_t, int64_t>>{{240, 3, 1}, {256, 4, 2}}) {
    tinymodel::TinySpec spec;
    spec.hidden = hidden;
    spec.heads = heads;
    spec.kv_heads = kv_heads;
    const std::string dir = root + "/" + std::to_string(hidden);
    const LlamaModel model = load_model(*ModelDir::open(write_rtn_checkpoint(dir, spec, true)));
    ASSERT_TRUE(model.lm_head.quantized());
    for (const KvDType dtype : {KvDType::F32, KvDType::BF16}) {
      SCOPED_TRACE("hidden " + std::to_string(hidden) + ", " + std::to_string(heads) + "/" +
                   std::to_string(kv_heads) + " heads" +
                   (dtype == KvDType::BF16 ? ", bf16" : ", f32"));
      openblas_set_num_threads(1);
      const std::vector<float> one = decoded_logits(model, dtype);
      for (const int threads : {2, 3}) {
        openblas_set_num_threads(threads);
        EXPECT_EQ(decoded_logits(model, dtype), one) << threads << " threads";
      }
    }
  }
  openblas_set_num_threads(saved);
  std::filesystem::remove_all(root);
}

// Keys and values rounded to bfloat16: the logits move by about the format's
// precision (2^-9 relative), on every path (prefill chunks and decoded
// tokens, sliding windows, a quantized model), and the cache takes half the
// bytes.
TEST(KvCache, Bf16CacheStaysWithinItsPrecision) {
  tinymodel::TinySpec plain, windowed, grouped;
  windowed.mistral = true;
  windowed.sliding_window = 6;
  grouped.qwen2 = true;
  grouped.heads = 4;
  grouped.kv_heads = 1;
  for (const tinymodel::TinySpec &spec : {plain, windowed, grouped}) {
    TinyModel t(spec);
    const double err = cache_error(t.model, KvDType::BF16);
    EXPECT_LT(err, 1e-2);
    EXPECT_GT(err, 1e-5);  // the rounding did happen: float32 stays below 1e-5
    EXPECT_EQ(KvCache(t.model.config, 2, 40, KvDType::BF16).bytes() * 2,
              KvCache(t.model.config, 2, 40).bytes());
  }
}

// The checkpoint's model as loaded and after join_projections give
// bit-identical logits over a prefill and decode steps, at float32 and
// int8 activations; `check(joined)` looks at what was joined.
void expect_joined_logits_identical(const std::string &ck,
                                    const std::function<void(const LlamaModel &)> &check) {
  for (const bool int8 : {false, true}) {
    LlamaModel plain = load_model(*ModelDir::open(ck));
    LlamaModel joined = load_model(*ModelDir::open(ck));
    join_projections(&joined);
    check(joined);
    MatmulChoice m;
    m.int8_activations = int8;
    set_matmul(&plain, m);
    set_matmul(&joined, m);
    const int64_t V = plain.config.vocab_size;
    const std::vector<int32_t> prompt = ids_of(21, 37, 5, V);
    KvCache cache_a(plain.config, 1, 40), cache_b(joined.config, 1, 40);
    const Rope rope(plain.config, 40);
    CacheStep step;
    step.slots = {0};
    step.batch.add(static_cast<int64_t>(prompt.size()));
    std::vector<int32_t> ids = prompt;
    for (int k = 0; k < 6; ++k) {
      const std::vector<float> a = cached_forward(plain, rope, &cache_a, ids, step, LogitRows::All);
      const std::vector<float> b = cached_forward(joined, rope, &cache_b, ids, step, LogitRows::All);
      ASSERT_EQ(a, b) << "step " << k << (int8 ? " int8" : " f32");
      ids = {argmax(&a[a.size() - static_cast<size_t>(V)], V)};
      step.batch = SequenceBatch();
      step.batch.add(1);
    }
  }
}

// q/k/v and gate/up of a GPTQ checkpoint joined into one layer each give
// bit-identical logits, at float32 and int8 activations, prefill and decode;
// a dense layer is never joined.
TEST(JoinedProjections, GiveBitIdenticalLogits) {
  const std::string root = tinymodel::make_temp_dir("join");
  // gate and up interleaved in blocks (128 features), or one after the
  // other where the width is no multiple of the blocks (200).
  for (const int64_t intermediate : {128, 200}) {
    tinymodel::TinySpec spec;
    spec.qwen2 = true;  // q/k/v biases, joined with the weights
    spec.intermediate = intermediate;
    const std::string ck =
        write_rtn_checkpoint(root + "/" + std::to_string(intermediate), spec, false);
    expect_joined_logits_identical(ck, [&](const LlamaModel &joined) {
      EXPECT_EQ(joined.blocks[0].q.out_features(), 0);
      EXPECT_EQ(joined.blocks[0].gate.out_features(), 0);
      EXPECT_EQ(joined.blocks[0].gate_up_interleave,
                intermediate % kGateUpInterleave == 0 ? kGateUpInterleave : 0);
      EXPECT_EQ(joined.blocks[0].qkv.out_features(),
                joined.config.q_dim() + 2 * joined.config.kv_dim());
    });
  }
  LlamaModel model = load_model(*ModelDir::open(root + "/128/ck"));
  const Linear dense(4, model.config.hidden_size,
                     std::vector<float>(static_cast<size_t>(4 * model.config.hidden_size), 1.0f),
                     {});
  EXPECT_EQ(join_quantized({&model.blocks[0].q, &dense}).out_features(), 0);
  std::filesystem::remove_all(root);
}

// Phi-3's fused gate_up_proj ([gate | up]) has its halves interleaved for
// generation, with the same logits.
TEST(JoinedProjections, FusedGateUpInterleavedGivesBitIdenticalLogits) {
  const std::string root = tinymodel::make_temp_dir("join-phi3");
  tinymodel::TinySpec spec;
  spec.phi3 = true;
  const std::string ck = write_rtn_checkpoint(root, spec, false);
  expect_joined_logits_identical(ck, [](const LlamaModel &joined) {
    ASSERT_TRUE(joined.config.fused_projections);
    EXPECT_EQ(joined.blocks[0].gate_up_interleave, kGateUpInterleave);
    EXPECT_EQ(joined.blocks[0].gate_up.out_features(), 2 * joined.config.intermediate_size);
  });
  std::filesystem::remove_all(root);
}

// A decode step's rows of x through a quantized layer: the tool splits the
// output features over its threads (each a single-threaded gptq_matmul_ex
// on a range, model/linear.cpp), which must give exactly the whole call's
// product whatever the number of threads, with int8 and float32
// activations; the finished ranges reported cover every feature once, at
// multiples of the unit asked for. 200 features: the last of 13 tiles is
// partial.
TEST(QuantizedLinear, FeaturesSplitOverThreadsGiveBitIdenticalProducts) {
  const std::string root = tinymodel::make_temp_dir("split");
  tinymodel::TinySpec spec;
  spec.intermediate = 200;
  LlamaModel model = load_model(*ModelDir::open(write_rtn_checkpoint(root, spec, false)));
  Linear &layer = model.blocks[0].gate;
  ASSERT_TRUE(layer.quantized());
  const int64_t in = layer.in_features(), out = layer.out_features();
  ASSERT_EQ(out, 200);
  const int saved = openblas_get_num_threads();
  for (const bool int8 : {true, false}) {
    MatmulChoice m;
    m.int8_activations = int8;
    layer.set_matmul(m);
    for (const int64_t rows : {1, 3, 8, 17, 32, 40}) {
      std::vector<float> x(static_cast<size_t>(rows * in));
      for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.37 * static_cast<double>(i)) * 3;
      SCOPED_TRACE(std::to_string(rows) + " rows" + (int8 ? ", int8" : ", float32"));
      openblas_set_num_threads(1);
      std::vector<float> one(static_cast<size_t>(rows * out));
      layer.forward(x.data(), rows, one.data());
      for (const int threads : {2, 3}) {
        for (const int64_t unit : {1, 48}) {
          openblas_set_num_threads(threads);
          // A prefill-sized product with float32 activations is one sgemm
          // call, whose sums OpenBLAS may split by its thread count on some
          // CPUs (gptq.h, out_begin): compared with a call on as many threads.
          if (rows > 32 && !int8) layer.forward(x.data(), rows, one.data());
          std::vector<float> y(static_cast<size_t>(rows * out), -1.0f);
          std::mutex mutex;
          std::vector<std::pair<int64_t, int64_t>> ranges;
          layer.forward(
              x.data(), rows, y.data(),
              [&](int64_t c0, int64_t c1) {
                const std::lock_guard<std::mutex> lock(mutex);
                ranges.emplace_back(c0, c1);
              },
              unit);
          EXPECT_EQ(y, one) << threads << " threads, unit " << unit;
          std::sort(ranges.begin(), ranges.end());
          ASSERT_FALSE(ranges.empty());
          // Decode-sized products are split; a prefill's is one call.
          EXPECT_EQ(ranges.size() > 1, rows <= 32) << threads << " threads, unit " << unit;
          int64_t next = 0;
          for (const auto &[c0, c1] : ranges) {
            EXPECT_EQ(c0, next);
            EXPECT_TRUE(c1 == out || c1 % unit == 0) << c1;
            next = c1;
          }
          EXPECT_EQ(next, out);
        }
      }
    }
  }
  openblas_set_num_threads(saved);
  std::filesystem::remove_all(root);
}

TEST(KvCache, StepPastCapacityIsRefusedAndLeavesTheCacheAlone) {
  TinyModel t({});
  KvCache cache(t.model.config, 1, 8);
  const Rope rope(t.model.config, 8);
  CacheStep step;
  step.slots = {0};
  step.batch.add(9);
  EXPECT_THROW(cached_forward(t.model, rope, &cache, ids_of(9, 3, 1, 96), step, LogitRows::Last),
               ToolError);
  EXPECT_EQ(cache.length(0), 0);
}

TEST(Generate, GreedyWithCacheEqualsReferenceDecode) {
  TinyModel t({});
  const std::vector<std::vector<int32_t>> prompts = {ids_of(7, 37, 5, 96), ids_of(1, 1, 42, 96),
                                                     ids_of(19, 11, 3, 96)};
  std::vector<std::vector<int32_t>> want;
  for (const auto &p : prompts) want.push_back(reference_greedy(t.model, p, 24, -1));
  // One at a time, all together, and two slots for three prompts (the third
  // takes the slot the first one leaves).
  for (int64_t batch : {1, 3, 2}) {
    GenerateOptions o;
    o.max_new_tokens = 24;
    o.batch = batch;
    std::map<int64_t, std::vector<int32_t>> streamed;
    std::map<int64_t, FinishReason> reasons;
    const auto got = generate_tokens(
        t.model, prompts, o,
        [&](int64_t i, int32_t tok) {
          streamed[i].push_back(tok);
          return false;
        },
        [&](int64_t i, FinishReason r) { reasons[i] = r; });
    for (size_t i = 0; i < prompts.size(); ++i) {
      EXPECT_EQ(got[i], want[i]) << "prompt " << i << " batch " << batch;
      EXPECT_EQ(streamed[static_cast<int64_t>(i)], want[i]);
      EXPECT_EQ(reasons[static_cast<int64_t>(i)], FinishReason::Length);
    }
  }
}

TEST(Generate, EachSequenceStopsOnItsOwn) {
  TinyModel t({});
  const std::vector<std::vector<int32_t>> prompts = {ids_of(7, 37, 5, 96), ids_of(5, 13, 2, 96)};
  const std::vector<int32_t> free_a = reference_greedy(t.model, prompts[0], 12, -1);
  // The EOS is the first sequence's 4th greedy token: it stops there (the
  // EOS is not output) while the other runs on, unless it meets it too.
  const int32_t eos = free_a[3];
  GenerateOptions o;
  o.max_new_tokens = 12;
  o.batch = 2;
  o.eos_ids = {eos};
  std::map<int64_t, FinishReason> reasons;
  const auto got = generate_tokens(
      t.model, prompts, o, [&](int64_t, int32_t) { return false; },
      [&](int64_t i, FinishReason r) { reasons[i] = r; });
  EXPECT_EQ(got[0], std::vector<int32_t>(free_a.begin(), free_a.begin() + 3));
  EXPECT_EQ(reasons[0], FinishReason::Eos);
  EXPECT_EQ(got[1], reference_greedy(t.model, prompts[1], 12, eos));
  // Without the EOS, a caller's stop (as a stop string would be) ends the
  // second after 5 tokens while the first runs to its budget.
  o.eos_ids.clear();
  int count = 0;
  const auto stopped = generate_tokens(
      t.model, prompts, o, [&](int64_t i, int32_t) { return i == 1 && ++count == 5; },
      [&](int64_t i, FinishReason r) { reasons[i] = r; });
  EXPECT_EQ(stopped[1].size(), 5u);
  EXPECT_EQ(reasons[1], FinishReason::Stop);
  EXPECT_EQ(stopped[0], free_a);
  EXPECT_EQ(reasons[0], FinishReason::Length);
}

TEST(Generate, BadInputIsRefused) {
  TinyModel t({});
  GenerateOptions o;
  auto run = [&](const std::vector<std::vector<int32_t>> &p) {
    generate_tokens(t.model, p, o, nullptr, nullptr);
  };
  EXPECT_THROW(run({{}}), ToolError);                         // empty prompt
  EXPECT_THROW(run({ids_of(256, 1, 0, 96)}), ToolError);      // no room in the context (256)
  o.max_new_tokens = 0;
  EXPECT_THROW(run({{1, 2}}), ToolError);
  o.max_new_tokens = 4;
  o.sampling.temperature = -0.5;
  EXPECT_THROW(run({{1, 2}}), ToolError);
  o.sampling.temperature = 0;
  EXPECT_THROW(run({{1, 200}}), ToolError);  // id outside the vocabulary
  // A prompt that fills the context but one position ends at the context.
  GenerateOptions c;
  c.max_new_tokens = 10;
  std::map<int64_t, FinishReason> reasons;
  const auto got = generate_tokens(t.model, {ids_of(253, 7, 1, 96)}, c, nullptr,
                                   [&](int64_t i, FinishReason r) { reasons[i] = r; });
  EXPECT_EQ(got[0].size(), 3u);
  EXPECT_EQ(reasons[0], FinishReason::Context);
}

TEST(Sampling, TopKAndTopPKeepTheRightTokens) {
  // probabilities 0.5, 0.2, 0.15, 0.1, 0.05 (temperature 1)
  const std::vector<double> p = {0.5, 0.2, 0.15, 0.1, 0.05};
  std::vector<float> logits;
  for (double x : p) logits.push_back(static_cast<float>(std::log(x)));
  auto kept = [&](SamplingParams s) {
    std::vector<int32_t> ids;
    for (const auto &c : candidate_tokens(logits.data(), 5, s)) ids.push_back(c.first);
    return ids;
  };
  SamplingParams s;
  s.temperature = 1.0;
  EXPECT_EQ(kept(s), (std::vector<int32_t>{0, 1, 2, 3, 4}));
  s.top_k = 2;
  EXPECT_EQ(kept(s), (std::vector<int32_t>{0, 1}));
  const auto two = candidate_tokens(logits.data(), 5, s);
  EXPECT_NEAR(two[0].second, 0.5 / 0.7, 1e-6);
  EXPECT_NEAR(two[1].second, 0.2 / 0.7, 1e-6);
  s.top_k = 0;
  s.top_p = 0.6;
  EXPECT_EQ(kept(s), (std::vector<int32_t>{0, 1}));
  s.top_p = 0.75;
  EXPECT_EQ(kept(s), (std::vector<int32_t>{0, 1, 2}));
  s.top_p = 0.4;
  EXPECT_EQ(kept(s), (std::vector<int32_t>{0}));
  s.top_p = 0.9;
  s.top_k = 3;  // top-k first, then top-p over the renormalized three
  // 0.5/0.85 + 0.2/0.85 = 0.82 < 0.9: the third is needed too
  EXPECT_EQ(kept(s), (std::vector<int32_t>{0, 1, 2}));
  s.top_p = 0.8;
  EXPECT_EQ(kept(s), (std::vector<int32_t>{0, 1}));
  // Temperature sharpens: at T = 0.5 the probabilities go as p².
  SamplingParams t;
  t.temperature = 0.5;
  const auto sharp = candidate_tokens(logits.data(), 5, t);
  double z = 0;
  for (double x : p) z += x * x;
  EXPECT_NEAR(sharp[0].second, 0.25 / z, 1e-6);
  // Ties with the k-th logit are kept, as transformers keeps them.
  const std::vector<float> tied = {1.0f, 2.0f, 2.0f, 0.0f};
  SamplingParams k1;
  k1.temperature = 1.0;
  k1.top_k = 1;
  std::vector<int32_t> ids;
  for (const auto &c : candidate_tokens(tied.data(), 4, k1)) ids.push_back(c.first);
  EXPECT_EQ(ids, (std::vector<int32_t>{1, 2}));
}

// argmax's vectorized passes give the plain running comparison's answer:
// the first of equal largest values (−0 and +0 equal), NaNs passed over
// except at index 0, infinities as values; at lengths around the widest
// vector and a whole vocabulary, with values drawn to tie often.
TEST(Sampling, ArgmaxIsThePlainLoopsFirstLargestValue) {
  auto plain = [](const std::vector<float> &x) {
    size_t best = 0;
    for (size_t i = 1; i < x.size(); ++i)
      if (x[i] > x[best]) best = i;
    return static_cast<int32_t>(best);
  };
  const float nan = std::numeric_limits<float>::quiet_NaN(),
              inf = std::numeric_limits<float>::infinity();
  const std::vector<std::vector<float>> cases = {
      {nan, 1, 2}, {1, nan, 2}, {2, nan, 1}, {-0.0f, 0.0f}, {0.0f, -0.0f}, {-inf, -inf},
      {1, inf, inf}, {nan, nan}, {-1, nan, -2}, {5}};
  for (const auto &x : cases)
    EXPECT_EQ(argmax(x.data(), static_cast<int64_t>(x.size())), plain(x));
  std::mt19937 rng(11);
  std::normal_distribution<float> normal;
  std::uniform_int_distribution<int> few(-3, 3);
  for (const int64_t n : {1, 2, 15, 16, 17, 31, 32, 33, 47, 100, 49152}) {
    for (int trial = 0; trial < 100; ++trial) {
      std::vector<float> x(static_cast<size_t>(n));
      for (float &v : x) v = trial % 2 == 0 ? normal(rng) : static_cast<float>(few(rng));
      std::uniform_int_distribution<size_t> at(0, x.size() - 1);
      switch (trial % 5) {
        case 1:  // NaNs, perhaps at 0 or where the largest value was
          for (int k = 0; k < 3; ++k) x[at(rng)] = nan;
          break;
        case 2:  // only zeros of both signs
          for (float &v : x) v = few(rng) < 0 ? -0.0f : 0.0f;
          break;
        case 3:
          x[at(rng)] = inf;
          x[at(rng)] = inf;
          break;
        case 4:
          for (float &v : x) v = few(rng) < 2 ? -inf : v;
          break;
        default:
          break;
      }
      ASSERT_EQ(argmax(x.data(), n), plain(x)) << "length " << n << ", trial " << trial;
    }
  }
}

TEST(Sampling, SeededDrawsAreReproducibleAndFollowTheDistribution) {
  const std::vector<double> p = {0.5, 0.2, 0.15, 0.1, 0.05};
  std::vector<float> logits;
  for (double x : p) logits.push_back(static_cast<float>(std::log(x)));
  SamplingParams s;
  s.temperature = 1.0;
  s.seed = 1234;
  auto draws = [&](uint64_t seed, uint64_t stream, int n) {
    SamplingParams q = s;
    q.seed = seed;
    Sampler sampler(q, stream);
    std::vector<int32_t> out;
    for (int i = 0; i < n; ++i) {
      std::vector<float> l = logits;
      out.push_back(sampler.next(l.data(), 5, {}));
    }
    return out;
  };
  EXPECT_EQ(draws(1234, 0, 200), draws(1234, 0, 200));
  EXPECT_NE(draws(1234, 0, 200), draws(1235, 0, 200));
  EXPECT_NE(draws(1234, 0, 200), draws(1234, 1, 200));
  const std::vector<int32_t> many = draws(99, 0, 40000);
  std::vector<int> count(5, 0);
  for (int32_t t : many) ++count[static_cast<size_t>(t)];
  for (int i = 0; i < 5; ++i) EXPECT_NEAR(count[static_cast<size_t>(i)] / 40000.0, p[i], 0.01);
  // Greedy ignores the seed and takes the first largest logit.
  SamplingParams g;
  Sampler greedy(g, 0);
  std::vector<float> tied = {1.0f, 3.0f, 3.0f};
  EXPECT_EQ(greedy.next(tied.data(), 3, {}), 1);
}

TEST(Sampling, RepetitionPenaltyAsTransformers) {
  std::vector<float> l = {2.0f, -2.0f, 1.0f, 4.0f};
  apply_repetition_penalty(l.data(), 4, {0, 1, 0, 1}, 2.0);
  EXPECT_EQ(l, (std::vector<float>{1.0f, -4.0f, 1.0f, 4.0f}));
  // With it, greedy moves off a repeated token.
  SamplingParams s;
  s.repetition_penalty = 4.0;
  Sampler sampler(s, 0);
  std::vector<float> r = {3.0f, 1.0f};
  EXPECT_EQ(sampler.next(r.data(), 2, {0}), 1);
}

TEST(StreamingDecoder, HoldsSplitCharactersAndStopsOnStrings) {
  auto tok = Tokenizer::from_json_text(tinymodel::byte_tokenizer_json().dump(), "byte tokenizer");
  const std::string text = "h\xC3\xA9llo \xE2\x82\xAC! ab";  // "héllo €! ab"
  std::vector<int32_t> ids;
  for (unsigned char ch : text) ids.push_back(ch);
  {
    StreamingDecoder d(*tok, {});
    std::string out;
    for (int32_t id : ids) {
      const std::string piece = d.push(id);
      EXPECT_EQ(piece.find("\xEF\xBF\xBD"), std::string::npos) << "a split character leaked";
      out += piece;
    }
    out += d.finish();
    EXPECT_EQ(out, text);
    EXPECT_FALSE(d.stopped());
  }
  {
    // "lo €" spans four tokens (and a split character): released text ends
    // before it, and never shows its beginning.
    StreamingDecoder d(*tok, {"lo \xE2\x82\xAC", "zzz"});
    std::string out;
    size_t i = 0;
    for (; i < ids.size() && !d.stopped(); ++i) out += d.push(ids[i]);
    EXPECT_TRUE(d.stopped());
    EXPECT_EQ(out, "h\xC3\xA9l");
    EXPECT_EQ(i, 10u);  // stopped on the token that completed the string
    EXPECT_EQ(d.finish(), "");
  }
  {
    // A held-back prefix of a stop string that does not complete is released.
    StreamingDecoder d(*tok, {"ll!"});
    std::string out;
    for (int32_t id : ids) out += d.push(id);
    out += d.finish();
    EXPECT_EQ(out, text);
  }
  EXPECT_THROW(StreamingDecoder(*tok, {""}), ToolError);
  // A character left incomplete at the end comes out as U+FFFD, as a
  // one-shot decode gives it.
  StreamingDecoder d(*tok, {});
  EXPECT_EQ(d.push('a'), "a");
  EXPECT_EQ(d.push(0xE2), "");
  EXPECT_EQ(d.finish(), tok->decode({0xE2}));
}
