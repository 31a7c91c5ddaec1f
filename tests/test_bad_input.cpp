// Every kind of bad input gets its own status and a message that names the
// function and the offending thing; the object stays exactly as it was and
// usable afterwards; out-pointers are NULL and caller buffers untouched, as
// gptq.h documents.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstddef>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gptq.h"
#include "test_util.h"

namespace {

using gptq_test::Ctx;
using gptq_test::QTensor;

constexpr int64_t kOut = 32;     // N
constexpr int64_t kIn = 64;      // K
constexpr int64_t kTokens = 96;  // rows per calibration batch
constexpr int64_t kTooBig = int64_t{1} << 31;  // one past 2^31 - 1

const float kNaN = std::numeric_limits<float>::quiet_NaN();
const float kInf = std::numeric_limits<float>::infinity();

// ---------------------------------------------------------------------------
// Checking one failure.
// ---------------------------------------------------------------------------

// Leaves a known message from some other function in this thread's
// last-error slot, so a check of the message cannot pass on a stale one.
void prime_last_error(const char *fn) {
  if (std::strcmp(fn, "gptq_qtensor_get_info") != 0)
    gptq_qtensor_get_info(nullptr, nullptr);
  else
    gptq_checkpoint_sizes_for(8, 8, 4, -1, nullptr);
}

void check_failure(gptq_status got, gptq_status want, const char *fn,
                   std::initializer_list<const char *> names) {
  EXPECT_EQ(got, want) << "got " << gptq_status_string(got) << "; message: " << gptq_last_error();
  const char *message = gptq_last_error();
  ASSERT_NE(message, nullptr);
  const std::string m(message);
  EXPECT_FALSE(m.empty());
  EXPECT_NE(m.find(fn), std::string::npos) << "the message should name " << fn << ": " << m;
  for (const char *name : names)
    EXPECT_NE(m.find(name), std::string::npos)
        << "the message should name '" << name << "': " << m;
}

// EXPECT_FAILS(call, GPTQ_ERR_x, "gptq_fn", "thing", ...): the call returns
// exactly that status and leaves a message naming the function and every
// listed thing.
#define EXPECT_FAILS(call, status, fn, ...)                   \
  do {                                                        \
    SCOPED_TRACE(#call);                                      \
    prime_last_error(fn);                                     \
    const gptq_status status_of_call_ = (call);               \
    check_failure(status_of_call_, status, fn, {__VA_ARGS__}); \
  } while (0)

// ---------------------------------------------------------------------------
// Context state: the Hessian bit for bit and the sample count.
// ---------------------------------------------------------------------------

struct HessianState {
  std::vector<double> h;
  int64_t samples = -1;
};

HessianState snapshot(const gptq_ctx *ctx, int64_t in) {
  HessianState s;
  s.h.assign(static_cast<size_t>(in * in), -12345.0);
  EXPECT_EQ(gptq_ctx_export_hessian(ctx, s.h.data(), in * in, &s.samples), GPTQ_OK)
      << gptq_last_error();
  return s;
}

void expect_unchanged(const gptq_ctx *ctx, int64_t in, const HessianState &before) {
  const HessianState now = snapshot(ctx, in);
  EXPECT_EQ(now.samples, before.samples);
  EXPECT_EQ(gptq_ctx_samples(ctx), before.samples);
  ASSERT_EQ(now.h.size(), before.h.size());
  EXPECT_EQ(std::memcmp(now.h.data(), before.h.data(), now.h.size() * sizeof(double)), 0)
      << "the Hessian changed";
}

const std::vector<float> &calib_x() {
  static const std::vector<float> x = gptq_test::correlated_activations(kTokens, kIn, 101);
  return x;
}
const std::vector<float> &layer_w() {
  static const std::vector<float> w = gptq_test::layer_weights(kOut, kIn, 202);
  return w;
}

// A context of the standard shape with one valid batch in it.
Ctx fed_ctx(const gptq_config &cfg = gptq_test::default_config()) {
  Ctx ctx = gptq_test::make_ctx(kOut, kIn, cfg);
  if (ctx) {
    EXPECT_EQ(gptq_add_batch(ctx.get(), calib_x().data(), GPTQ_DTYPE_F32, kTokens, kIn, 1),
              GPTQ_OK)
        << gptq_last_error();
  }
  return ctx;
}

// After all the failures: a valid batch and a quantization still succeed.
void expect_usable(gptq_ctx *ctx) {
  const int64_t before = gptq_ctx_samples(ctx);
  ASSERT_EQ(gptq_add_batch(ctx, calib_x().data(), GPTQ_DTYPE_F32, kTokens, kIn, 2), GPTQ_OK)
      << gptq_last_error();
  EXPECT_EQ(gptq_ctx_samples(ctx), before + 2);
  gptq_qtensor *q = nullptr;
  ASSERT_EQ(gptq_quantize(ctx, layer_w().data(), GPTQ_DTYPE_F32, kOut, kIn, &q, nullptr), GPTQ_OK)
      << gptq_last_error();
  ASSERT_NE(q, nullptr);
  QTensor holder(q);
  const std::vector<float> d = gptq_test::dequantized(q, kOut, kIn);
  for (float v : d) ASSERT_TRUE(std::isfinite(v));
}

QTensor quantized(const gptq_config &cfg = gptq_test::default_config()) {
  return gptq_test::quantize_layer(cfg, calib_x(), layer_w(), kTokens, kOut, kIn);
}

gptq_qtensor *sentinel_q() {
  static int dummy;
  return reinterpret_cast<gptq_qtensor *>(&dummy);
}
gptq_ctx *sentinel_ctx() {
  static int dummy;
  return reinterpret_cast<gptq_ctx *>(&dummy);
}

// Writes an int into an enum field's bytes, so that values outside the
// enum's range reach the library the way a C caller would pass them.
template <typename Enum>
void set_raw_enum(Enum &field, int32_t value) {
  static_assert(sizeof(Enum) == sizeof(int32_t), "enum fields are int-sized");
  std::memcpy(&field, &value, sizeof value);
}

uint16_t f16(float f) {
  // Exact for the small values used here (multiples of 2^-10 in [-2, 2]).
  if (f == 0.0f) return 0;
  const uint16_t sign = f < 0 ? 0x8000 : 0;
  float a = std::fabs(f);
  int e = 0;
  const float m = std::frexp(a, &e);  // a = m · 2^e, m in [0.5, 1)
  const int exp_field = e - 1 + 15;
  const int mant = static_cast<int>((m * 2.0f - 1.0f) * 1024.0f + 0.5f);
  return static_cast<uint16_t>(sign | (exp_field << 10) | mant);
}

// ---------------------------------------------------------------------------
// Status strings, last error, NULL tolerance.
// ---------------------------------------------------------------------------

TEST(StatusString, EveryStatusHasItsOwnName) {
  const std::pair<gptq_status, const char *> all[] = {
      {GPTQ_OK, "GPTQ_OK"},
      {GPTQ_ERR_NULL_POINTER, "GPTQ_ERR_NULL_POINTER"},
      {GPTQ_ERR_INVALID_SIZE, "GPTQ_ERR_INVALID_SIZE"},
      {GPTQ_ERR_SIZE_MISMATCH, "GPTQ_ERR_SIZE_MISMATCH"},
      {GPTQ_ERR_NON_FINITE, "GPTQ_ERR_NON_FINITE"},
      {GPTQ_ERR_INVALID_CONFIG, "GPTQ_ERR_INVALID_CONFIG"},
      {GPTQ_ERR_INVALID_STATE, "GPTQ_ERR_INVALID_STATE"},
      {GPTQ_ERR_UNSUPPORTED, "GPTQ_ERR_UNSUPPORTED"},
      {GPTQ_ERR_BACKEND_UNAVAILABLE, "GPTQ_ERR_BACKEND_UNAVAILABLE"},
      {GPTQ_ERR_OUT_OF_MEMORY, "GPTQ_ERR_OUT_OF_MEMORY"},
      {GPTQ_ERR_CANCELLED, "GPTQ_ERR_CANCELLED"},
      {GPTQ_ERR_INVALID_DATA, "GPTQ_ERR_INVALID_DATA"},
      {GPTQ_ERR_INTERNAL, "GPTQ_ERR_INTERNAL"},
  };
  std::set<std::string> seen;
  int value = 0;
  for (const auto &entry : all) {
    EXPECT_EQ(static_cast<int>(entry.first), value++) << "status values are fixed forever";
    const char *s = gptq_status_string(entry.first);
    ASSERT_NE(s, nullptr);
    const std::string str(s);
    EXPECT_FALSE(str.empty());
    // "GPTQ_ERR_NULL_POINTER: ..." — the name, then a separator, so that
    // GPTQ_ERR_INVALID_SIZE is not mistaken for a prefix of another name.
    EXPECT_EQ(str.rfind(std::string(entry.second) + ":", 0), 0u) << str;
    EXPECT_NE(str, "unknown status");
    EXPECT_TRUE(seen.insert(str).second) << "duplicate status string " << str;
  }
}

TEST(StatusString, UnknownValues) {
  // 13..15 are the values past the last status that the enum's range holds.
  for (int v : {13, 14, 15}) {
    const char *s = gptq_status_string(static_cast<gptq_status>(v));
    ASSERT_NE(s, nullptr);
    EXPECT_STREQ(s, "unknown status") << v;
  }
}

TEST(LastError, NamesTheLatestFailureAndSurvivesSuccess) {
  gptq_ctx *ctx = sentinel_ctx();
  EXPECT_FAILS(gptq_ctx_create(-3, kIn, nullptr, &ctx), GPTQ_ERR_INVALID_SIZE, "gptq_ctx_create",
               "out_features", "-3");
  EXPECT_EQ(ctx, nullptr);
  const std::string first = gptq_last_error();
  // A successful call does not clear the message.
  gptq_checkpoint_sizes s{};
  ASSERT_EQ(gptq_checkpoint_sizes_for(8, 8, 4, -1, &s), GPTQ_OK);
  EXPECT_EQ(first, gptq_last_error());
  // The next failure replaces it.
  EXPECT_FAILS(gptq_matmul(nullptr, nullptr, GPTQ_DTYPE_F32, 1, 1, nullptr, nullptr, 1),
               GPTQ_ERR_NULL_POINTER, "gptq_matmul", "q");
  EXPECT_NE(first, gptq_last_error());
}

TEST(LastError, IsThreadLocal) {
  gptq_ctx *ctx = nullptr;
  ASSERT_EQ(gptq_ctx_create(kOut, -7, nullptr, &ctx), GPTQ_ERR_INVALID_SIZE);
  const std::string mine = gptq_last_error();
  ASSERT_NE(mine.find("-7"), std::string::npos) << mine;

  std::string other_before, other_after;
  gptq_status other_status = GPTQ_OK;
  std::thread t([&] {
    const char *m = gptq_last_error();
    other_before = m != nullptr ? m : "(NULL)";
    other_status = gptq_qtensor_codes(nullptr, nullptr, 0);
    other_after = gptq_last_error();
  });
  t.join();
  EXPECT_EQ(other_before, "") << "a thread that has had no failure sees an empty message";
  EXPECT_EQ(other_status, GPTQ_ERR_NULL_POINTER);
  EXPECT_NE(other_after.find("gptq_qtensor_codes"), std::string::npos) << other_after;
  EXPECT_EQ(mine, gptq_last_error()) << "another thread's failure changed this thread's message";

  // Many threads failing at once each read back exactly their own message.
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i)
    threads.emplace_back([i, &wrong] {
      const int64_t bad = -1000 - i;
      const std::string want = std::to_string(bad);
      for (int iter = 0; iter < 500; ++iter) {
        gptq_ctx *c = nullptr;
        if (gptq_ctx_create(bad, 8, nullptr, &c) != GPTQ_ERR_INVALID_SIZE) ++wrong;
        const std::string m = gptq_last_error();
        if (m.find(want) == std::string::npos || m.find("gptq_ctx_create") == std::string::npos)
          ++wrong;
      }
    });
  for (auto &th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(mine, gptq_last_error());
}

TEST(NullTolerance, DestroyDefaultsAndSamples) {
  gptq_ctx_destroy(nullptr);
  gptq_qtensor_destroy(nullptr);
  gptq_config_default(nullptr);
  EXPECT_EQ(gptq_ctx_samples(nullptr), -1);
  // The library is still fine afterwards.
  gptq_config cfg;
  std::memset(&cfg, 0xFF, sizeof cfg);
  gptq_config_default(&cfg);
  EXPECT_EQ(cfg.struct_size, sizeof(gptq_config));
  EXPECT_EQ(cfg.bits, 4);
  Ctx ctx = gptq_test::make_ctx(kOut, kIn, cfg);
  ASSERT_TRUE(ctx);
  EXPECT_EQ(gptq_ctx_samples(ctx.get()), 0);
}

// ---------------------------------------------------------------------------
// gptq_ctx_create
// ---------------------------------------------------------------------------

TEST(CtxCreate, NullOut) {
  EXPECT_FAILS(gptq_ctx_create(kOut, kIn, nullptr, nullptr), GPTQ_ERR_NULL_POINTER,
               "gptq_ctx_create", "out");
}

TEST(CtxCreate, BadDimensions) {
  const struct {
    int64_t out, in;
    const char *name;
    const char *value;
  } cases[] = {
      {0, kIn, "out_features", "0"},      {-1, kIn, "out_features", "-1"},
      {kTooBig, kIn, "out_features", "2147483648"},
      {kOut, 0, "in_features", "0"},      {kOut, -5, "in_features", "-5"},
      {kOut, kTooBig, "in_features", "2147483648"},
      {std::numeric_limits<int64_t>::min(), kIn, "out_features", "out_features"},
  };
  for (const auto &c : cases) {
    gptq_ctx *ctx = sentinel_ctx();
    EXPECT_FAILS(gptq_ctx_create(c.out, c.in, nullptr, &ctx), GPTQ_ERR_INVALID_SIZE,
                 "gptq_ctx_create", c.name, c.value);
    EXPECT_EQ(ctx, nullptr) << "*out must be NULL on failure";
  }
}

TEST(CtxCreate, EveryConfigFieldOutOfRange) {
  const struct {
    const char *field;
    void (*set)(gptq_config &);
  } cases[] = {
      {"bits", [](gptq_config &c) { c.bits = 1; }},
      {"bits", [](gptq_config &c) { c.bits = 9; }},
      {"bits", [](gptq_config &c) { c.bits = 0; }},
      {"bits", [](gptq_config &c) { c.bits = -3; }},
      {"group_size", [](gptq_config &c) { c.group_size = 0; }},
      {"group_size", [](gptq_config &c) { c.group_size = -2; }},
      {"group_size", [](gptq_config &c) { c.group_size = std::numeric_limits<int32_t>::min(); }},
      {"sym", [](gptq_config &c) { c.sym = 2; }},
      {"act_order", [](gptq_config &c) { c.act_order = -1; }},
      {"static_groups", [](gptq_config &c) { c.static_groups = 3; }},
      {"block_size", [](gptq_config &c) { c.block_size = 0; }},
      {"block_size", [](gptq_config &c) { c.block_size = -128; }},
      {"damp_percent", [](gptq_config &c) { c.damp_percent = -0.01f; }},
      {"damp_percent", [](gptq_config &c) { c.damp_percent = 1.0f; }},
      {"damp_percent", [](gptq_config &c) { c.damp_percent = 1.5f; }},
      {"damp_percent", [](gptq_config &c) { c.damp_percent = kNaN; }},
      {"damp_percent", [](gptq_config &c) { c.damp_percent = kInf; }},
      {"damp_increment", [](gptq_config &c) { c.damp_increment = -0.1f; }},
      {"damp_increment", [](gptq_config &c) { c.damp_increment = kNaN; }},
      {"mse", [](gptq_config &c) { c.mse = 2; }},
      {"mse_norm", [](gptq_config &c) { c.mse_norm = 0.0f; }},
      {"mse_norm", [](gptq_config &c) { c.mse_norm = -2.4f; }},
      {"mse_norm", [](gptq_config &c) { c.mse_norm = kNaN; }},
      {"mse_norm", [](gptq_config &c) { c.mse_norm = kInf; }},
      {"mse_grid", [](gptq_config &c) { c.mse_grid = 0; }},
      {"mse_grid", [](gptq_config &c) { c.mse_grid = -100; }},
      {"mse_max_shrink", [](gptq_config &c) { c.mse_max_shrink = 0.0f; }},
      {"mse_max_shrink", [](gptq_config &c) { c.mse_max_shrink = 1.5f; }},
      {"mse_max_shrink", [](gptq_config &c) { c.mse_max_shrink = -0.5f; }},
      {"mse_max_shrink", [](gptq_config &c) { c.mse_max_shrink = kNaN; }},
      // 3 is inside the range of gptq_backend's values but names no backend.
      {"backend", [](gptq_config &c) { c.backend = static_cast<gptq_backend>(3); }},
      {"backend", [](gptq_config &c) { set_raw_enum(c.backend, 77); }},
      {"backend", [](gptq_config &c) { set_raw_enum(c.backend, -1); }},
      {"precision", [](gptq_config &c) { set_raw_enum(c.precision, 2); }},
      {"precision", [](gptq_config &c) { set_raw_enum(c.precision, -1); }},
      {"log_level", [](gptq_config &c) { set_raw_enum(c.log_level, 4); }},
      {"log_level", [](gptq_config &c) { set_raw_enum(c.log_level, -1); }},
      {"memory", [](gptq_config &c) { set_raw_enum(c.memory, 3); }},
      {"act_group_aware", [](gptq_config &c) { c.act_group_aware = 2; }},
      {"act_group_aware", [](gptq_config &c) {
         c.act_group_aware = 1;
         c.act_order = 1;
       }},
  };
  for (const auto &c : cases) {
    gptq_config cfg = gptq_test::default_config();
    c.set(cfg);
    gptq_ctx *ctx = sentinel_ctx();
    EXPECT_FAILS(gptq_ctx_create(kOut, kIn, &cfg, &ctx), GPTQ_ERR_INVALID_CONFIG,
                 "gptq_ctx_create", c.field);
    EXPECT_EQ(ctx, nullptr);
  }
  // The boundaries that are allowed.
  const struct {
    void (*set)(gptq_config &);
  } ok[] = {
      {[](gptq_config &c) { c.bits = 2; }},
      {[](gptq_config &c) { c.bits = 8; }},
      {[](gptq_config &c) { c.group_size = -1; }},
      {[](gptq_config &c) { c.group_size = 1; }},
      {[](gptq_config &c) { c.block_size = 1; }},
      {[](gptq_config &c) { c.damp_percent = 0.0f; }},
      {[](gptq_config &c) { c.damp_percent = 0.999f; }},
      {[](gptq_config &c) { c.mse_grid = 1; }},
      {[](gptq_config &c) { c.mse_max_shrink = 1.0f; }},
      {[](gptq_config &c) { c.backend = GPTQ_BACKEND_CPU; }},
      {[](gptq_config &c) { c.precision = GPTQ_PRECISION_F64; }},
  };
  for (const auto &c : ok) {
    gptq_config cfg = gptq_test::default_config();
    c.set(cfg);
    gptq_ctx *ctx = nullptr;
    EXPECT_EQ(gptq_ctx_create(kOut, kIn, &cfg, &ctx), GPTQ_OK) << gptq_last_error();
    gptq_ctx_destroy(ctx);
  }
}

TEST(CtxCreate, StructSizeTooSmall) {
  // The smallest accepted size is the first published layout, which ends
  // with log_level; anything shorter is refused.
  const size_t first_layout = offsetof(gptq_config, log_level) + sizeof(gptq_log_level);
  for (size_t size : {size_t{0}, size_t{8}, sizeof(gptq_config) / 2, first_layout - 1}) {
    gptq_config cfg = gptq_test::default_config();
    cfg.struct_size = size;
    gptq_ctx *ctx = sentinel_ctx();
    EXPECT_FAILS(gptq_ctx_create(kOut, kIn, &cfg, &ctx), GPTQ_ERR_INVALID_CONFIG,
                 "gptq_ctx_create", "struct_size");
    EXPECT_EQ(ctx, nullptr);
  }
}

TEST(CtxCreate, OlderCallersShorterStructGetsDefaultsForNewerFields) {
  // A caller compiled before num_threads existed: its struct ends at
  // log_level. The library must not read past it (the bytes after are
  // garbage here) and must use the default for num_threads.
  struct {
    gptq_config cfg;
    unsigned char tail[64];
  } old_caller;
  std::memset(&old_caller, 0xFF, sizeof old_caller);
  gptq_config_default(&old_caller.cfg);
  old_caller.cfg.struct_size = offsetof(gptq_config, log_level) + sizeof(gptq_log_level);
  std::memset(&old_caller.cfg.num_threads, 0xFF, sizeof old_caller.cfg.num_threads);  // -1 if read
  gptq_ctx *ctx = nullptr;
  ASSERT_EQ(gptq_ctx_create(kOut, kIn, &old_caller.cfg, &ctx), GPTQ_OK) << gptq_last_error();
  gptq_ctx_destroy(ctx);
}

TEST(CtxCreate, CudaUnavailableInThisBuild) {
  gptq_config cfg = gptq_test::default_config();
  cfg.backend = GPTQ_BACKEND_CUDA;
  gptq_ctx *ctx = sentinel_ctx();
  EXPECT_FAILS(gptq_ctx_create(kOut, kIn, &cfg, &ctx), GPTQ_ERR_BACKEND_UNAVAILABLE,
               "gptq_ctx_create", "CUDA");
  EXPECT_EQ(ctx, nullptr);
  // AUTO falls back to the CPU instead of failing.
  cfg.backend = GPTQ_BACKEND_AUTO;
  Ctx ok = gptq_test::make_ctx(kOut, kIn, cfg);
  EXPECT_TRUE(ok);
}

TEST(CtxCreate, HessianTooLargeIsOutOfMemory) {
  // in_features 2^31 − 1 is a legal dimension, but its in_features² Hessian
  // cannot be allocated.
  gptq_ctx *ctx = sentinel_ctx();
  EXPECT_FAILS(gptq_ctx_create(8, (int64_t{1} << 31) - 1, nullptr, &ctx),
               GPTQ_ERR_OUT_OF_MEMORY, "gptq_ctx_create", "memory");
  EXPECT_EQ(ctx, nullptr);
}

// ---------------------------------------------------------------------------
// gptq_add_batch
// ---------------------------------------------------------------------------

TEST(AddBatch, NullPointers) {
  Ctx ctx = fed_ctx();
  ASSERT_TRUE(ctx);
  const HessianState before = snapshot(ctx.get(), kIn);
  EXPECT_FAILS(gptq_add_batch(nullptr, calib_x().data(), GPTQ_DTYPE_F32, kTokens, kIn, 1),
               GPTQ_ERR_NULL_POINTER, "gptq_add_batch", "ctx");
  EXPECT_FAILS(gptq_add_batch(ctx.get(), nullptr, GPTQ_DTYPE_F32, kTokens, kIn, 1),
               GPTQ_ERR_NULL_POINTER, "gptq_add_batch", "x");
  expect_unchanged(ctx.get(), kIn, before);
  expect_usable(ctx.get());
}

TEST(AddBatch, BadRowsAndSamples) {
  Ctx ctx = fed_ctx();
  ASSERT_TRUE(ctx);
  const HessianState before = snapshot(ctx.get(), kIn);
  const float *x = calib_x().data();
  for (int64_t rows : {int64_t{0}, int64_t{-1}, kTooBig}) {
    EXPECT_FAILS(gptq_add_batch(ctx.get(), x, GPTQ_DTYPE_F32, rows, kIn, 1),
                 GPTQ_ERR_INVALID_SIZE, "gptq_add_batch", "rows");
    expect_unchanged(ctx.get(), kIn, before);
  }
  for (int64_t samples : {int64_t{0}, int64_t{-1}, std::numeric_limits<int64_t>::min()}) {
    EXPECT_FAILS(gptq_add_batch(ctx.get(), x, GPTQ_DTYPE_F32, kTokens, kIn, samples),
                 GPTQ_ERR_INVALID_SIZE, "gptq_add_batch", "samples");
    expect_unchanged(ctx.get(), kIn, before);
  }
  // One sample is already in: INT64_MAX more would overflow the count.
  EXPECT_FAILS(gptq_add_batch(ctx.get(), x, GPTQ_DTYPE_F32, kTokens, kIn,
                              std::numeric_limits<int64_t>::max()),
               GPTQ_ERR_INVALID_SIZE, "gptq_add_batch", "overflow");
  expect_unchanged(ctx.get(), kIn, before);
  expect_usable(ctx.get());
}

TEST(AddBatch, WidthMismatch) {
  Ctx ctx = fed_ctx();
  ASSERT_TRUE(ctx);
  const HessianState before = snapshot(ctx.get(), kIn);
  for (int64_t cols : {kIn - 1, kIn + 1, int64_t{0}, int64_t{-64}, kIn * 2}) {
    EXPECT_FAILS(gptq_add_batch(ctx.get(), calib_x().data(), GPTQ_DTYPE_F32, kTokens / 2, cols, 1),
                 GPTQ_ERR_SIZE_MISMATCH, "gptq_add_batch", "in_features",
                 std::to_string(cols).c_str(), "64");
    expect_unchanged(ctx.get(), kIn, before);
  }
  expect_usable(ctx.get());
}

TEST(AddBatch, UnknownDtype) {
  Ctx ctx = fed_ctx();
  ASSERT_TRUE(ctx);
  const HessianState before = snapshot(ctx.get(), kIn);
  // 3 is the one value past GPTQ_DTYPE_BF16 that the enum's range holds.
  EXPECT_FAILS(gptq_add_batch(ctx.get(), calib_x().data(), static_cast<gptq_dtype>(3), kTokens,
                              kIn, 1),
               GPTQ_ERR_UNSUPPORTED, "gptq_add_batch", "dtype");
  expect_unchanged(ctx.get(), kIn, before);
  expect_usable(ctx.get());
}

TEST(AddBatch, NonFiniteF32AnywhereLeavesHessianUnchanged) {
  for (gptq_precision precision : {GPTQ_PRECISION_F32, GPTQ_PRECISION_F64}) {
    SCOPED_TRACE(precision == GPTQ_PRECISION_F32 ? "precision f32" : "precision f64");
    gptq_config cfg = gptq_test::default_config();
    cfg.precision = precision;
    Ctx ctx = fed_ctx(cfg);
    ASSERT_TRUE(ctx);
    const HessianState before = snapshot(ctx.get(), kIn);
    // Positions: first, interior, both sides of element 1024, last.
    const std::pair<int64_t, int64_t> where[] = {{0, 0}, {3, 5}, {15, 63}, {16, 0}, {95, 63}};
    for (float bad : {kNaN, kInf, -kInf}) {
      for (const auto &rc : where) {
        std::vector<float> x = calib_x();
        x[static_cast<size_t>(rc.first * kIn + rc.second)] = bad;
        const std::string name =
            "x[" + std::to_string(rc.first) + ", " + std::to_string(rc.second) + "]";
        EXPECT_FAILS(gptq_add_batch(ctx.get(), x.data(), GPTQ_DTYPE_F32, kTokens, kIn, 1),
                     GPTQ_ERR_NON_FINITE, "gptq_add_batch", name.c_str());
        expect_unchanged(ctx.get(), kIn, before);
      }
    }
    expect_usable(ctx.get());
  }
}

std::vector<uint16_t> half_batch(gptq_dtype dtype) {
  // Values k/64 for small k: exact in both fp16 and bf16.
  std::vector<uint16_t> x(static_cast<size_t>(kTokens * kIn));
  for (size_t i = 0; i < x.size(); ++i) {
    const float v = static_cast<float>(static_cast<int>((i * 37) % 97) - 48) / 64.0f;
    uint32_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    x[i] = dtype == GPTQ_DTYPE_BF16 ? static_cast<uint16_t>(bits >> 16) : f16(v);
  }
  return x;
}

TEST(AddBatch, NonFiniteF16AndBf16BitPatterns) {
  const struct {
    gptq_dtype dtype;
    uint16_t bits;
    const char *what;
  } cases[] = {
      {GPTQ_DTYPE_F16, 0x7C00, "f16 +Inf"},  {GPTQ_DTYPE_F16, 0xFC00, "f16 -Inf"},
      {GPTQ_DTYPE_F16, 0x7E00, "f16 qNaN"},  {GPTQ_DTYPE_F16, 0x7C01, "f16 sNaN"},
      {GPTQ_DTYPE_F16, 0xFFFF, "f16 -NaN"},  {GPTQ_DTYPE_BF16, 0x7F80, "bf16 +Inf"},
      {GPTQ_DTYPE_BF16, 0xFF80, "bf16 -Inf"}, {GPTQ_DTYPE_BF16, 0x7FC0, "bf16 qNaN"},
      {GPTQ_DTYPE_BF16, 0x7F81, "bf16 sNaN"}, {GPTQ_DTYPE_BF16, 0xFFFF, "bf16 -NaN"},
  };
  Ctx ctx = fed_ctx();
  ASSERT_TRUE(ctx);
  const HessianState before = snapshot(ctx.get(), kIn);
  for (const auto &c : cases) {
    SCOPED_TRACE(c.what);
    std::vector<uint16_t> x = half_batch(c.dtype);
    // The batch is fine before the bad value goes in.
    x[static_cast<size_t>(7 * kIn + 9)] = c.bits;
    EXPECT_FAILS(gptq_add_batch(ctx.get(), x.data(), c.dtype, kTokens, kIn, 1),
                 GPTQ_ERR_NON_FINITE, "gptq_add_batch", "x[7, 9]");
    expect_unchanged(ctx.get(), kIn, before);
  }
  expect_usable(ctx.get());
  // The largest finite values are not mistaken for Inf: fp16 ±65504, bf16
  // ±3.39e38 (in an F64 context, where their squares are representable).
  gptq_config cfg = gptq_test::default_config();
  cfg.precision = GPTQ_PRECISION_F64;
  Ctx wide = gptq_test::make_ctx(kOut, kIn, cfg);
  ASSERT_TRUE(wide);
  for (gptq_dtype dtype : {GPTQ_DTYPE_F16, GPTQ_DTYPE_BF16}) {
    std::vector<uint16_t> x = half_batch(dtype);
    x[0] = dtype == GPTQ_DTYPE_F16 ? 0x7BFF : 0x7F7F;
    x[1] = dtype == GPTQ_DTYPE_F16 ? 0xFBFF : 0xFF7F;
    EXPECT_EQ(gptq_add_batch(wide.get(), x.data(), dtype, kTokens, kIn, 1), GPTQ_OK)
        << gptq_last_error();
  }
  EXPECT_EQ(gptq_ctx_samples(wide.get()), 2);
}

// After a call that accepted finite input which overflows a precision-F32
// Hessian: the context must either hold a finite Hessian, or be cleanly dead
// — gptq_quantize refusing it with a status and a message — but never
// quantize "successfully" from an Inf/NaN Hessian.
void expect_finite_or_cleanly_dead(gptq_ctx *ctx, const char *fn) {
  const HessianState after = snapshot(ctx, kIn);
  int64_t non_finite = 0;
  for (double v : after.h) non_finite += std::isfinite(v) ? 0 : 1;
  if (non_finite == 0) return;
  gptq_quant_stats stats{};
  stats.struct_size = sizeof stats;
  gptq_qtensor *q = sentinel_q();
  prime_last_error("gptq_quantize");
  const gptq_status s =
      gptq_quantize(ctx, layer_w().data(), GPTQ_DTYPE_F32, kOut, kIn, &q, &stats);
  if (s == GPTQ_OK) {
    std::vector<float> d = gptq_test::dequantized(q, kOut, kIn);
    double worst = 0.0;
    for (size_t i = 0; i < d.size(); ++i)
      worst = std::max(worst, static_cast<double>(std::fabs(d[i] - layer_w()[i])));
    gptq_qtensor_destroy(q);
    ADD_FAILURE() << fn << " accepted finite input but left " << non_finite
                  << " non-finite Hessian entries, and gptq_quantize then returned GPTQ_OK "
                  << "(loss " << stats.loss << ", fell_back_to_rtn " << stats.fell_back_to_rtn
                  << ", largest |w - deq| " << worst << ")";
  } else {
    EXPECT_NE(s, GPTQ_ERR_INTERNAL) << gptq_last_error();
    EXPECT_EQ(q, nullptr);
    EXPECT_NE(std::string(gptq_last_error()).find("gptq_quantize"), std::string::npos);
  }
}

// Finite activations whose squares overflow float must not leave an
// Inf/NaN Hessian behind in a precision-F32 context: either the batch is
// refused with the Hessian unchanged, or the Hessian stays finite, or the
// context is cleanly dead.
TEST(AddBatch, FiniteHugeActivationsDoNotPoisonTheHessian) {
  Ctx ctx = fed_ctx();
  ASSERT_TRUE(ctx);
  const HessianState before = snapshot(ctx.get(), kIn);
  std::vector<float> x = calib_x();
  x[static_cast<size_t>(2 * kIn + 3)] = 1e20f;  // finite; its square is 1e40 > FLT_MAX
  prime_last_error("gptq_add_batch");
  const gptq_status s = gptq_add_batch(ctx.get(), x.data(), GPTQ_DTYPE_F32, kTokens, kIn, 1);
  if (s != GPTQ_OK) {
    EXPECT_NE(std::string(gptq_last_error()).find("gptq_add_batch"), std::string::npos);
    expect_unchanged(ctx.get(), kIn, before);
  } else {
    expect_finite_or_cleanly_dead(ctx.get(), "gptq_add_batch");
  }
}

// ---------------------------------------------------------------------------
// gptq_ctx_merge
// ---------------------------------------------------------------------------

TEST(CtxMerge, NullPointers) {
  Ctx a = fed_ctx(), b = fed_ctx();
  ASSERT_TRUE(a && b);
  const HessianState before = snapshot(a.get(), kIn);
  EXPECT_FAILS(gptq_ctx_merge(nullptr, b.get()), GPTQ_ERR_NULL_POINTER, "gptq_ctx_merge", "dst");
  EXPECT_FAILS(gptq_ctx_merge(a.get(), nullptr), GPTQ_ERR_NULL_POINTER, "gptq_ctx_merge", "src");
  EXPECT_FAILS(gptq_ctx_merge(nullptr, nullptr), GPTQ_ERR_NULL_POINTER, "gptq_ctx_merge", "NULL");
  expect_unchanged(a.get(), kIn, before);
  expect_usable(a.get());
}

TEST(CtxMerge, DifferentInFeatures) {
  Ctx a = fed_ctx();
  Ctx other = gptq_test::make_ctx(kOut, kIn / 2, gptq_test::default_config());
  ASSERT_TRUE(a && other);
  const std::vector<float> x = gptq_test::correlated_activations(16, kIn / 2, 3);
  ASSERT_EQ(gptq_add_batch(other.get(), x.data(), GPTQ_DTYPE_F32, 16, kIn / 2, 1), GPTQ_OK);
  const HessianState a_before = snapshot(a.get(), kIn);
  const HessianState o_before = snapshot(other.get(), kIn / 2);
  EXPECT_FAILS(gptq_ctx_merge(a.get(), other.get()), GPTQ_ERR_SIZE_MISMATCH, "gptq_ctx_merge",
               "in_features", "64", "32");
  EXPECT_FAILS(gptq_ctx_merge(other.get(), a.get()), GPTQ_ERR_SIZE_MISMATCH, "gptq_ctx_merge",
               "in_features", "64", "32");
  expect_unchanged(a.get(), kIn, a_before);
  expect_unchanged(other.get(), kIn / 2, o_before);
  expect_usable(a.get());
}

TEST(CtxMerge, IntoItself) {
  Ctx a = fed_ctx();
  ASSERT_TRUE(a);
  const HessianState before = snapshot(a.get(), kIn);
  // gptq.h does not list this case; the library refuses it as a state error.
  EXPECT_FAILS(gptq_ctx_merge(a.get(), a.get()), GPTQ_ERR_INVALID_STATE, "gptq_ctx_merge", "same");
  expect_unchanged(a.get(), kIn, before);
  expect_usable(a.get());
}

TEST(CtxMerge, SampleCountOverflow) {
  Ctx a = fed_ctx();
  Ctx big = gptq_test::make_ctx(kOut, kIn, gptq_test::default_config());
  ASSERT_TRUE(a && big);
  const HessianState before = snapshot(a.get(), kIn);
  ASSERT_EQ(gptq_ctx_import_hessian(big.get(), before.h.data(), kIn * kIn,
                                    std::numeric_limits<int64_t>::max()),
            GPTQ_OK)
      << gptq_last_error();
  EXPECT_FAILS(gptq_ctx_merge(a.get(), big.get()), GPTQ_ERR_INVALID_SIZE, "gptq_ctx_merge",
               "overflow");
  expect_unchanged(a.get(), kIn, before);
  expect_usable(a.get());
}

TEST(CtxMerge, F64ValuesBeyondFloatRangeIntoF32) {
  Ctx a = fed_ctx();  // F32
  gptq_config cfg = gptq_test::default_config();
  cfg.precision = GPTQ_PRECISION_F64;
  Ctx wide = gptq_test::make_ctx(kOut, kIn, cfg);
  ASSERT_TRUE(a && wide);
  std::vector<double> h(kIn * kIn, 0.0);
  for (int64_t j = 0; j < kIn; ++j) h[j * kIn + j] = 1e300;
  ASSERT_EQ(gptq_ctx_import_hessian(wide.get(), h.data(), kIn * kIn, 1), GPTQ_OK) << gptq_last_error();
  const HessianState before = snapshot(a.get(), kIn);
  EXPECT_FAILS(gptq_ctx_merge(a.get(), wide.get()), GPTQ_ERR_NON_FINITE, "gptq_ctx_merge",
               "float range");
  expect_unchanged(a.get(), kIn, before);
  expect_usable(a.get());
}

TEST(CtxMerge, EmptySourceIsANoOp) {
  Ctx a = fed_ctx();
  Ctx empty = gptq_test::make_ctx(7, kIn, gptq_test::default_config());  // out may differ
  ASSERT_TRUE(a && empty);
  const HessianState before = snapshot(a.get(), kIn);
  EXPECT_EQ(gptq_ctx_merge(a.get(), empty.get()), GPTQ_OK) << gptq_last_error();
  expect_unchanged(a.get(), kIn, before);
}

// ---------------------------------------------------------------------------
// gptq_ctx_export_hessian / gptq_ctx_import_hessian
// ---------------------------------------------------------------------------

TEST(ExportHessian, NullPointersAndShortBuffer) {
  Ctx ctx = fed_ctx();
  ASSERT_TRUE(ctx);
  std::vector<double> h(static_cast<size_t>(kIn * kIn), 777.0);
  int64_t samples = 4242;
  EXPECT_FAILS(gptq_ctx_export_hessian(nullptr, h.data(), kIn * kIn, &samples),
               GPTQ_ERR_NULL_POINTER, "gptq_ctx_export_hessian", "ctx");
  EXPECT_FAILS(gptq_ctx_export_hessian(ctx.get(), nullptr, kIn * kIn, &samples),
               GPTQ_ERR_NULL_POINTER, "gptq_ctx_export_hessian", "h");
  EXPECT_FAILS(gptq_ctx_export_hessian(ctx.get(), h.data(), kIn * kIn, nullptr),
               GPTQ_ERR_NULL_POINTER, "gptq_ctx_export_hessian", "samples");
  for (int64_t len : {kIn * kIn - 1, kIn, int64_t{0}, int64_t{-1}}) {
    EXPECT_FAILS(gptq_ctx_export_hessian(ctx.get(), h.data(), len, &samples),
                 GPTQ_ERR_SIZE_MISMATCH, "gptq_ctx_export_hessian", "h_len",
                 std::to_string(len).c_str());
  }
  for (double v : h) ASSERT_EQ(v, 777.0) << "a failed export wrote into h";
  EXPECT_EQ(samples, 4242) << "a failed export wrote *samples";
  // A longer buffer is fine.
  std::vector<double> longer(static_cast<size_t>(kIn * kIn + 5), 777.0);
  EXPECT_EQ(gptq_ctx_export_hessian(ctx.get(), longer.data(), kIn * kIn + 5, &samples), GPTQ_OK);
  EXPECT_EQ(samples, 1);
}

TEST(ImportHessian, EveryDocumentedFailure) {
  Ctx ctx = fed_ctx();
  ASSERT_TRUE(ctx);
  const HessianState before = snapshot(ctx.get(), kIn);
  std::vector<double> h = before.h;  // a valid Hessian to import
  EXPECT_FAILS(gptq_ctx_import_hessian(nullptr, h.data(), kIn * kIn, 1), GPTQ_ERR_NULL_POINTER,
               "gptq_ctx_import_hessian", "ctx");
  EXPECT_FAILS(gptq_ctx_import_hessian(ctx.get(), nullptr, kIn * kIn, 1), GPTQ_ERR_NULL_POINTER,
               "gptq_ctx_import_hessian", "h");
  for (int64_t len : {kIn * kIn - 1, kIn * kIn + 1, int64_t{0}, int64_t{-1}, kIn}) {
    EXPECT_FAILS(gptq_ctx_import_hessian(ctx.get(), h.data(), len, 1), GPTQ_ERR_SIZE_MISMATCH,
                 "gptq_ctx_import_hessian", "h_len", std::to_string(len).c_str());
    expect_unchanged(ctx.get(), kIn, before);
  }
  for (int64_t samples : {int64_t{0}, int64_t{-3}}) {
    EXPECT_FAILS(gptq_ctx_import_hessian(ctx.get(), h.data(), kIn * kIn, samples),
                 GPTQ_ERR_INVALID_SIZE, "gptq_ctx_import_hessian", "samples");
    expect_unchanged(ctx.get(), kIn, before);
  }
  EXPECT_FAILS(gptq_ctx_import_hessian(ctx.get(), h.data(), kIn * kIn,
                                       std::numeric_limits<int64_t>::max()),
               GPTQ_ERR_INVALID_SIZE, "gptq_ctx_import_hessian", "overflow");
  expect_unchanged(ctx.get(), kIn, before);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  for (double bad : {nan, inf, -inf}) {
    for (auto rc : {std::pair<int64_t, int64_t>{2, 3}, {0, 0}, {63, 63}, {40, 1}}) {
      std::vector<double> hb = h;
      hb[static_cast<size_t>(rc.first * kIn + rc.second)] = bad;
      const std::string name =
          "h[" + std::to_string(rc.first) + ", " + std::to_string(rc.second) + "]";
      EXPECT_FAILS(gptq_ctx_import_hessian(ctx.get(), hb.data(), kIn * kIn, 1),
                   GPTQ_ERR_NON_FINITE, "gptq_ctx_import_hessian", name.c_str());
      expect_unchanged(ctx.get(), kIn, before);
    }
  }
  expect_usable(ctx.get());
}

// A finite double Hessian that does not fit in float ("with precision F32
// the values are rounded to float") must not turn into Inf silently.
TEST(ImportHessian, FiniteValuesBeyondFloatRangeInF32Context) {
  Ctx ctx = fed_ctx();
  ASSERT_TRUE(ctx);
  const HessianState before = snapshot(ctx.get(), kIn);
  std::vector<double> h = before.h;
  h[static_cast<size_t>(5 * kIn + 5)] = 1e300;  // finite as a double, Inf as a float
  prime_last_error("gptq_ctx_import_hessian");
  const gptq_status s = gptq_ctx_import_hessian(ctx.get(), h.data(), kIn * kIn, 1);
  if (s != GPTQ_OK) {
    EXPECT_NE(std::string(gptq_last_error()).find("gptq_ctx_import_hessian"), std::string::npos);
    expect_unchanged(ctx.get(), kIn, before);
  } else {
    expect_finite_or_cleanly_dead(ctx.get(), "gptq_ctx_import_hessian");
  }
}

// ---------------------------------------------------------------------------
// gptq_quantize
// ---------------------------------------------------------------------------

gptq_quant_stats stats_sentinel() {
  gptq_quant_stats s;
  std::memset(&s, 0x5C, sizeof s);
  s.struct_size = sizeof s;
  return s;
}

void expect_stats_untouched(const gptq_quant_stats &s) {
  const gptq_quant_stats want = stats_sentinel();
  EXPECT_EQ(std::memcmp(&s, &want, sizeof s), 0) << "a failed gptq_quantize wrote *stats";
}

TEST(Quantize, NullPointers) {
  Ctx ctx = fed_ctx();
  ASSERT_TRUE(ctx);
  const HessianState before = snapshot(ctx.get(), kIn);
  gptq_quant_stats stats = stats_sentinel();
  gptq_qtensor *q = sentinel_q();
  EXPECT_FAILS(gptq_quantize(nullptr, layer_w().data(), GPTQ_DTYPE_F32, kOut, kIn, &q, &stats),
               GPTQ_ERR_NULL_POINTER, "gptq_quantize", "ctx");
  EXPECT_EQ(q, nullptr);
  q = sentinel_q();
  EXPECT_FAILS(gptq_quantize(ctx.get(), nullptr, GPTQ_DTYPE_F32, kOut, kIn, &q, &stats),
               GPTQ_ERR_NULL_POINTER, "gptq_quantize", "w");
  EXPECT_EQ(q, nullptr);
  EXPECT_FAILS(gptq_quantize(ctx.get(), layer_w().data(), GPTQ_DTYPE_F32, kOut, kIn, nullptr,
                             &stats),
               GPTQ_ERR_NULL_POINTER, "gptq_quantize", "out");
  expect_stats_untouched(stats);
  expect_unchanged(ctx.get(), kIn, before);
  expect_usable(ctx.get());
}

TEST(Quantize, WrongWeightShape) {
  Ctx ctx = fed_ctx();
  ASSERT_TRUE(ctx);
  const HessianState before = snapshot(ctx.get(), kIn);
  const std::vector<float> big(static_cast<size_t>(2 * kOut * 2 * kIn), 0.01f);
  const std::pair<int64_t, int64_t> shapes[] = {{kOut - 1, kIn}, {kOut + 1, kIn}, {kOut, kIn - 1},
                                                {kOut, kIn + 1}, {kIn, kOut},     {0, kIn},
                                                {kOut, -1}};
  for (const auto &shape : shapes) {
    gptq_quant_stats stats = stats_sentinel();
    gptq_qtensor *q = sentinel_q();
    EXPECT_FAILS(gptq_quantize(ctx.get(), big.data(), GPTQ_DTYPE_F32, shape.first, shape.second,
                               &q, &stats),
                 GPTQ_ERR_SIZE_MISMATCH, "gptq_quantize", "out_features", "in_features");
    EXPECT_EQ(q, nullptr);
    expect_stats_untouched(stats);
    expect_unchanged(ctx.get(), kIn, before);
  }
  expect_usable(ctx.get());
}

TEST(Quantize, UnknownDtype) {
  Ctx ctx = fed_ctx();
  ASSERT_TRUE(ctx);
  const HessianState before = snapshot(ctx.get(), kIn);
  gptq_qtensor *q = sentinel_q();
  EXPECT_FAILS(gptq_quantize(ctx.get(), layer_w().data(), static_cast<gptq_dtype>(3), kOut, kIn,
                             &q, nullptr),
               GPTQ_ERR_UNSUPPORTED, "gptq_quantize", "dtype");
  EXPECT_EQ(q, nullptr);
  expect_unchanged(ctx.get(), kIn, before);
  expect_usable(ctx.get());
}

TEST(Quantize, BeforeAnyCalibrationData) {
  Ctx ctx = gptq_test::make_ctx(kOut, kIn, gptq_test::default_config());
  ASSERT_TRUE(ctx);
  gptq_quant_stats stats = stats_sentinel();
  gptq_qtensor *q = sentinel_q();
  EXPECT_FAILS(gptq_quantize(ctx.get(), layer_w().data(), GPTQ_DTYPE_F32, kOut, kIn, &q, &stats),
               GPTQ_ERR_INVALID_STATE, "gptq_quantize", "calibration", "gptq_add_batch");
  EXPECT_EQ(q, nullptr);
  expect_stats_untouched(stats);
  EXPECT_EQ(gptq_ctx_samples(ctx.get()), 0);
  // An empty merge does not count as data either.
  Ctx empty = gptq_test::make_ctx(kOut, kIn, gptq_test::default_config());
  ASSERT_EQ(gptq_ctx_merge(ctx.get(), empty.get()), GPTQ_OK);
  EXPECT_FAILS(gptq_quantize(ctx.get(), layer_w().data(), GPTQ_DTYPE_F32, kOut, kIn, &q, nullptr),
               GPTQ_ERR_INVALID_STATE, "gptq_quantize", "calibration");
  expect_usable(ctx.get());
}

TEST(Quantize, NonFiniteWeightsEveryDtype) {
  Ctx ctx = fed_ctx();
  ASSERT_TRUE(ctx);
  const HessianState before = snapshot(ctx.get(), kIn);
  const int64_t r = 1, c = 2;
  for (float bad : {kNaN, kInf, -kInf}) {
    std::vector<float> w = layer_w();
    w[static_cast<size_t>(r * kIn + c)] = bad;
    gptq_quant_stats stats = stats_sentinel();
    gptq_qtensor *q = sentinel_q();
    EXPECT_FAILS(gptq_quantize(ctx.get(), w.data(), GPTQ_DTYPE_F32, kOut, kIn, &q, &stats),
                 GPTQ_ERR_NON_FINITE, "gptq_quantize", "w[1, 2]");
    EXPECT_EQ(q, nullptr);
    expect_stats_untouched(stats);
  }
  const struct {
    gptq_dtype dtype;
    uint16_t bits;
  } halves[] = {{GPTQ_DTYPE_F16, 0x7C00},  {GPTQ_DTYPE_F16, 0xFC00},  {GPTQ_DTYPE_F16, 0x7E00},
                {GPTQ_DTYPE_BF16, 0x7F80}, {GPTQ_DTYPE_BF16, 0xFF80}, {GPTQ_DTYPE_BF16, 0x7FC0}};
  for (const auto &h : halves) {
    std::vector<uint16_t> w(static_cast<size_t>(kOut * kIn),
                            h.dtype == GPTQ_DTYPE_F16 ? 0x2000 : 0x3C00);
    w[static_cast<size_t>((kOut - 1) * kIn + (kIn - 1))] = h.bits;
    gptq_qtensor *q = sentinel_q();
    EXPECT_FAILS(gptq_quantize(ctx.get(), w.data(), h.dtype, kOut, kIn, &q, nullptr),
                 GPTQ_ERR_NON_FINITE, "gptq_quantize", "w[31, 63]");
    EXPECT_EQ(q, nullptr);
  }
  expect_unchanged(ctx.get(), kIn, before);
  expect_usable(ctx.get());
}

TEST(Quantize, StatsStructSizeZero) {
  Ctx ctx = fed_ctx();
  ASSERT_TRUE(ctx);
  gptq_quant_stats stats = stats_sentinel();
  stats.struct_size = 0;
  gptq_quant_stats want = stats;
  gptq_qtensor *q = sentinel_q();
  // gptq.h only says to set struct_size; the library rejects a zero one.
  EXPECT_FAILS(gptq_quantize(ctx.get(), layer_w().data(), GPTQ_DTYPE_F32, kOut, kIn, &q, &stats),
               GPTQ_ERR_INVALID_SIZE, "gptq_quantize", "struct_size");
  EXPECT_EQ(q, nullptr);
  EXPECT_EQ(std::memcmp(&stats, &want, sizeof stats), 0);
  expect_usable(ctx.get());
}

TEST(Quantize, ScaleBeyondFp16RangeIsRefused) {
  // Finite weights so large that a group's scale cannot be stored in fp16
  // (|w| up to 1e6 at 4 bits: scale 2e6/15 > 65504).
  Ctx ctx = fed_ctx();
  ASSERT_TRUE(ctx);
  const HessianState before = snapshot(ctx.get(), kIn);
  std::vector<float> w = layer_w();
  w[static_cast<size_t>(4 * kIn + 10)] = 1e6f;
  gptq_quant_stats stats = stats_sentinel();
  gptq_qtensor *q = sentinel_q();
  EXPECT_FAILS(gptq_quantize(ctx.get(), w.data(), GPTQ_DTYPE_F32, kOut, kIn, &q, &stats),
               GPTQ_ERR_UNSUPPORTED, "gptq_quantize", "fp16");
  EXPECT_EQ(q, nullptr);
  expect_stats_untouched(stats);
  expect_unchanged(ctx.get(), kIn, before);
  expect_usable(ctx.get());
}

// Weights that are finite but denormal: the float scale of their group
// underflows. The result must still be codes in range and finite
// dequantized weights, and the other rows must be unaffected.
TEST(Quantize, DenormalWeightsGiveFiniteResult) {
  Ctx ctx = fed_ctx();
  ASSERT_TRUE(ctx);
  gptq_config cfg = gptq_test::default_config();
  cfg.bits = 8;
  cfg.group_size = 32;
  Ctx ctx8 = fed_ctx(cfg);
  ASSERT_TRUE(ctx8);
  std::vector<float> w = layer_w();
  // Row 3, columns 0..31 (group 0 at group size 32): ±1e-44 (denormal) and
  // exact zeros; columns 32..63 keep ordinary weights. At 8 bits the float
  // scale of group 0 (2e-44 / 255) underflows to 0, and 0 / 0 must not turn
  // into a NaN that is fed forward into group 1 of the row.
  for (int64_t j = 0; j < kIn / 2; ++j)
    w[static_cast<size_t>(3 * kIn + j)] = j % 3 == 0 ? 0.0f : j % 3 == 1 ? 1e-44f : -1e-44f;
  for (gptq_ctx *c : {ctx.get(), ctx8.get()}) {
    gptq_qtensor *q = nullptr;
    gptq_quant_stats stats{};
    stats.struct_size = sizeof stats;
    ASSERT_EQ(gptq_quantize(c, w.data(), GPTQ_DTYPE_F32, kOut, kIn, &q, &stats), GPTQ_OK)
        << gptq_last_error();
    QTensor holder(q);
    EXPECT_TRUE(std::isfinite(stats.loss)) << "loss " << stats.loss;
    gptq_qtensor_info info{};
    ASSERT_EQ(gptq_qtensor_get_info(q, &info), GPTQ_OK);
    const std::vector<float> d = gptq_test::dequantized(q, kOut, kIn);
    const std::vector<uint8_t> codes = gptq_test::codes_of(q, kOut, kIn);
    for (size_t i = 0; i < d.size(); ++i) {
      ASSERT_TRUE(std::isfinite(d[i])) << "row " << i / kIn << " col " << i % kIn;
      ASSERT_LT(codes[i], 1u << info.bits);
    }
    // Row 3 must dequantize to ~0 where it is ~0, and close to the weights
    // elsewhere, not to garbage.
    int64_t garbage = 0;
    std::string first;
    for (int64_t j = 0; j < kIn; ++j) {
      const size_t i = static_cast<size_t>(3 * kIn + j);
      if (std::fabs(d[i] - w[i]) <= 0.05f) continue;
      if (garbage++ == 0)
        first = "col " + std::to_string(j) + ": w " + std::to_string(w[i]) + ", dequantized " +
                std::to_string(d[i]);
    }
    EXPECT_EQ(garbage, 0) << info.bits << "-bit: row 3 has " << garbage
                          << " columns far from their weights, first " << first;
  }
}

struct ProgressPlan {
  int calls = 0;
  int cancel_at = -1;  // index of the call that returns non-zero; -1: never
  std::vector<int64_t> done;
  int64_t total = -1;
};

int progress_cb(int64_t done, int64_t total, void *user) {
  auto *plan = static_cast<ProgressPlan *>(user);
  plan->done.push_back(done);
  plan->total = total;
  return plan->calls++ == plan->cancel_at ? 1 : 0;
}

TEST(Quantize, CancelledByProgressCallback) {
  ProgressPlan plan;
  gptq_config cfg = gptq_test::default_config();
  cfg.block_size = 16;  // K = 64 → four progress calls
  cfg.group_size = 32;
  cfg.progress = progress_cb;
  cfg.progress_user_data = &plan;
  Ctx ctx = fed_ctx(cfg);
  ASSERT_TRUE(ctx);
  const HessianState before = snapshot(ctx.get(), kIn);

  // Never cancelled: the reference result (same config, no callback).
  gptq_config plain = cfg;
  plain.progress = nullptr;
  plain.progress_user_data = nullptr;
  QTensor ref = quantized(plain);
  ASSERT_TRUE(ref);
  const std::vector<uint8_t> ref_codes = gptq_test::codes_of(ref.get(), kOut, kIn);
  const std::vector<float> ref_deq = gptq_test::dequantized(ref.get(), kOut, kIn);

  for (int cancel_at : {0, 1, 3}) {
    SCOPED_TRACE("cancel at progress call " + std::to_string(cancel_at));
    plan = ProgressPlan{};
    plan.cancel_at = cancel_at;
    gptq_quant_stats stats = stats_sentinel();
    gptq_qtensor *q = sentinel_q();
    EXPECT_FAILS(gptq_quantize(ctx.get(), layer_w().data(), GPTQ_DTYPE_F32, kOut, kIn, &q, &stats),
                 GPTQ_ERR_CANCELLED, "gptq_quantize", "cancel");
    EXPECT_EQ(q, nullptr);
    expect_stats_untouched(stats);
    EXPECT_EQ(plan.calls, cancel_at + 1) << "no progress call after the one that cancelled";
    EXPECT_EQ(plan.total, kIn);
    expect_unchanged(ctx.get(), kIn, before);
  }

  // Not cancelled this time: same codes as a run never cancelled.
  plan = ProgressPlan{};
  gptq_qtensor *q = nullptr;
  gptq_quant_stats stats{};
  stats.struct_size = sizeof stats;
  ASSERT_EQ(gptq_quantize(ctx.get(), layer_w().data(), GPTQ_DTYPE_F32, kOut, kIn, &q, &stats),
            GPTQ_OK)
      << gptq_last_error();
  QTensor holder(q);
  EXPECT_EQ(plan.done, (std::vector<int64_t>{16, 32, 48, 64}));
  EXPECT_EQ(plan.total, kIn);
  EXPECT_EQ(gptq_test::codes_of(q, kOut, kIn), ref_codes);
  const std::vector<float> deq = gptq_test::dequantized(q, kOut, kIn);
  EXPECT_EQ(std::memcmp(deq.data(), ref_deq.data(), deq.size() * sizeof(float)), 0);
  expect_unchanged(ctx.get(), kIn, before);  // quantize leaves the Hessian alone
}

// ---------------------------------------------------------------------------
// Query functions of a quantized tensor.
// ---------------------------------------------------------------------------

TEST(QTensorQueries, GetInfoNullPointers) {
  QTensor q = quantized();
  ASSERT_TRUE(q);
  gptq_qtensor_info info;
  std::memset(&info, 0x77, sizeof info);
  const gptq_qtensor_info want = info;
  EXPECT_FAILS(gptq_qtensor_get_info(nullptr, &info), GPTQ_ERR_NULL_POINTER,
               "gptq_qtensor_get_info", "q");
  EXPECT_EQ(std::memcmp(&info, &want, sizeof info), 0);
  EXPECT_FAILS(gptq_qtensor_get_info(q.get(), nullptr), GPTQ_ERR_NULL_POINTER,
               "gptq_qtensor_get_info", "info");
}

TEST(QTensorQueries, DequantizeNullAndShortBuffer) {
  QTensor q = quantized();
  ASSERT_TRUE(q);
  std::vector<float> out(static_cast<size_t>(kOut * kIn), 31.0f);
  EXPECT_FAILS(gptq_qtensor_dequantize(nullptr, out.data(), kOut * kIn), GPTQ_ERR_NULL_POINTER,
               "gptq_qtensor_dequantize", "q");
  EXPECT_FAILS(gptq_qtensor_dequantize(q.get(), nullptr, kOut * kIn), GPTQ_ERR_NULL_POINTER,
               "gptq_qtensor_dequantize", "out");
  for (int64_t len : {kOut * kIn - 1, kIn, int64_t{0}, int64_t{-1}}) {
    EXPECT_FAILS(gptq_qtensor_dequantize(q.get(), out.data(), len), GPTQ_ERR_SIZE_MISMATCH,
                 "gptq_qtensor_dequantize", "out_len", std::to_string(len).c_str());
  }
  for (float v : out) ASSERT_EQ(v, 31.0f) << "a failed dequantize wrote into out";
  EXPECT_EQ(gptq_qtensor_dequantize(q.get(), out.data(), kOut * kIn), GPTQ_OK);
}

TEST(QTensorQueries, CodesNullAndShortBuffer) {
  QTensor q = quantized();
  ASSERT_TRUE(q);
  std::vector<uint8_t> out(static_cast<size_t>(kOut * kIn), 0xEE);
  EXPECT_FAILS(gptq_qtensor_codes(nullptr, out.data(), kOut * kIn), GPTQ_ERR_NULL_POINTER,
               "gptq_qtensor_codes", "q");
  EXPECT_FAILS(gptq_qtensor_codes(q.get(), nullptr, kOut * kIn), GPTQ_ERR_NULL_POINTER,
               "gptq_qtensor_codes", "out");
  for (int64_t len : {kOut * kIn - 1, int64_t{1}, int64_t{0}, int64_t{-1}}) {
    EXPECT_FAILS(gptq_qtensor_codes(q.get(), out.data(), len), GPTQ_ERR_SIZE_MISMATCH,
                 "gptq_qtensor_codes", "out_len", std::to_string(len).c_str());
  }
  for (uint8_t v : out) ASSERT_EQ(v, 0xEE) << "a failed gptq_qtensor_codes wrote into out";
  EXPECT_EQ(gptq_qtensor_codes(q.get(), out.data(), kOut * kIn), GPTQ_OK);
}

// ---------------------------------------------------------------------------
// gptq_checkpoint_sizes_for
// ---------------------------------------------------------------------------

TEST(CheckpointSizesFor, EveryDocumentedFailure) {
  gptq_checkpoint_sizes s;
  std::memset(&s, 0x3D, sizeof s);
  const gptq_checkpoint_sizes want = s;
  EXPECT_FAILS(gptq_checkpoint_sizes_for(kOut, kIn, 4, 128, nullptr), GPTQ_ERR_NULL_POINTER,
               "gptq_checkpoint_sizes_for", "sizes");
  const struct {
    int64_t n, k;
    const char *name;
  } dims[] = {{0, 64, "out_features"}, {-8, 64, "out_features"}, {kTooBig, 64, "out_features"},
              {64, 0, "in_features"},  {64, -8, "in_features"},  {64, kTooBig, "in_features"}};
  for (const auto &d : dims)
    EXPECT_FAILS(gptq_checkpoint_sizes_for(d.n, d.k, 4, 128, &s), GPTQ_ERR_INVALID_SIZE,
                 "gptq_checkpoint_sizes_for", d.name);
  for (int bits : {1, 9, 0, -3, 32})
    EXPECT_FAILS(gptq_checkpoint_sizes_for(kOut, kIn, bits, 128, &s), GPTQ_ERR_INVALID_CONFIG,
                 "gptq_checkpoint_sizes_for", "bits", std::to_string(bits).c_str());
  for (int gs : {0, -2, -128})
    EXPECT_FAILS(gptq_checkpoint_sizes_for(kOut, kIn, 4, gs, &s), GPTQ_ERR_INVALID_CONFIG,
                 "gptq_checkpoint_sizes_for", "group_size", std::to_string(gs).c_str());
  // 5, 6 and 7 bits are valid for quantization but have no checkpoint layout.
  for (int bits : {5, 6, 7})
    EXPECT_FAILS(gptq_checkpoint_sizes_for(kOut, kIn, bits, 128, &s), GPTQ_ERR_UNSUPPORTED,
                 "gptq_checkpoint_sizes_for", std::to_string(bits).c_str());
  // Shapes the packing cannot hold: K or N not a multiple of 32/b (32 for 3 bits).
  EXPECT_FAILS(gptq_checkpoint_sizes_for(kOut, 20, 4, 128, &s), GPTQ_ERR_UNSUPPORTED,
               "gptq_checkpoint_sizes_for", "in_features", "20");
  EXPECT_FAILS(gptq_checkpoint_sizes_for(20, kIn, 4, 128, &s), GPTQ_ERR_UNSUPPORTED,
               "gptq_checkpoint_sizes_for", "out_features", "20");
  EXPECT_FAILS(gptq_checkpoint_sizes_for(kOut, 48, 3, 128, &s), GPTQ_ERR_UNSUPPORTED,
               "gptq_checkpoint_sizes_for", "in_features", "48");
  EXPECT_FAILS(gptq_checkpoint_sizes_for(8, kIn, 2, 128, &s), GPTQ_ERR_UNSUPPORTED,
               "gptq_checkpoint_sizes_for", "out_features", "8");
  EXPECT_FAILS(gptq_checkpoint_sizes_for(kOut, 6, 8, 128, &s), GPTQ_ERR_UNSUPPORTED,
               "gptq_checkpoint_sizes_for", "in_features", "6");
  EXPECT_EQ(std::memcmp(&s, &want, sizeof s), 0) << "a failed call wrote *sizes";
}

// ---------------------------------------------------------------------------
// gptq_qtensor_export
// ---------------------------------------------------------------------------

struct Buffers {
  std::vector<int32_t> qweight, qzeros, g_idx;
  std::vector<uint16_t> scales;
  gptq_checkpoint_tensors t{};

  Buffers(int64_t n, int64_t k, int bits, int gs) {
    gptq_checkpoint_sizes s{};
    EXPECT_EQ(gptq_checkpoint_sizes_for(n, k, bits, gs, &s), GPTQ_OK) << gptq_last_error();
    qweight.assign(static_cast<size_t>(s.qweight_rows * s.qweight_cols), 0x2B2B2B2B);
    qzeros.assign(static_cast<size_t>(s.qzeros_rows * s.qzeros_cols), 0x2B2B2B2B);
    scales.assign(static_cast<size_t>(s.scales_rows * s.scales_cols), 0x2B2B);
    g_idx.assign(static_cast<size_t>(s.g_idx_len), 0x2B2B2B2B);
    refresh();
  }
  // Buffers for a shape the layout cannot hold: just big enough for anything.
  explicit Buffers(size_t elements) {
    qweight.assign(elements, 0x2B2B2B2B);
    qzeros.assign(elements, 0x2B2B2B2B);
    scales.assign(elements, 0x2B2B);
    g_idx.assign(elements, 0x2B2B2B2B);
    refresh();
  }
  void refresh() {
    t.qweight = qweight.data();
    t.qweight_len = static_cast<int64_t>(qweight.size());
    t.qzeros = qzeros.data();
    t.qzeros_len = static_cast<int64_t>(qzeros.size());
    t.scales = scales.data();
    t.scales_len = static_cast<int64_t>(scales.size());
    t.g_idx = g_idx.data();
    t.g_idx_len = static_cast<int64_t>(g_idx.size());
  }
  bool untouched() const {
    for (int32_t v : qweight)
      if (v != 0x2B2B2B2B) return false;
    for (int32_t v : qzeros)
      if (v != 0x2B2B2B2B) return false;
    for (uint16_t v : scales)
      if (v != 0x2B2B) return false;
    for (int32_t v : g_idx)
      if (v != 0x2B2B2B2B) return false;
    return true;
  }
};

TEST(Export, NullPointersAndShortBuffers) {
  QTensor q = quantized();  // 4-bit, group 128 → G = 1
  ASSERT_TRUE(q);
  Buffers b(kOut, kIn, 4, 128);
  EXPECT_FAILS(gptq_qtensor_export(nullptr, GPTQ_FORMAT_V1, &b.t), GPTQ_ERR_NULL_POINTER,
               "gptq_qtensor_export", "q");
  EXPECT_FAILS(gptq_qtensor_export(q.get(), GPTQ_FORMAT_V1, nullptr), GPTQ_ERR_NULL_POINTER,
               "gptq_qtensor_export", "t");
  const char *names[] = {"qweight", "qzeros", "scales", "g_idx"};
  for (int which = 0; which < 4; ++which) {
    gptq_checkpoint_tensors t = b.t;
    if (which == 0) t.qweight = nullptr;
    if (which == 1) t.qzeros = nullptr;
    if (which == 2) t.scales = nullptr;
    if (which == 3) t.g_idx = nullptr;
    EXPECT_FAILS(gptq_qtensor_export(q.get(), GPTQ_FORMAT_V1, &t), GPTQ_ERR_NULL_POINTER,
                 "gptq_qtensor_export", names[which]);
  }
  for (int which = 0; which < 4; ++which) {
    for (int64_t shrink : {int64_t{1}, int64_t{1} << 40}) {
      gptq_checkpoint_tensors t = b.t;
      int64_t *len = which == 0 ? &t.qweight_len
                     : which == 1 ? &t.qzeros_len
                     : which == 2 ? &t.scales_len
                                  : &t.g_idx_len;
      *len -= shrink;
      EXPECT_FAILS(gptq_qtensor_export(q.get(), GPTQ_FORMAT_V1, &t), GPTQ_ERR_SIZE_MISMATCH,
                   "gptq_qtensor_export", names[which]);
    }
  }
  EXPECT_TRUE(b.untouched()) << "a failed export wrote into the caller's buffers";
  // The tensor is unchanged and exports fine afterwards.
  EXPECT_EQ(gptq_qtensor_export(q.get(), GPTQ_FORMAT_V1, &b.t), GPTQ_OK) << gptq_last_error();
}

TEST(Export, UnknownFormat) {
  QTensor q = quantized();
  ASSERT_TRUE(q);
  Buffers b(kOut, kIn, 4, 128);
  // 0 and 3 are inside the enum's range of values but name no format.
  for (int f : {0, 3}) {
    EXPECT_FAILS(gptq_qtensor_export(q.get(), static_cast<gptq_checkpoint_format>(f), &b.t),
                 GPTQ_ERR_UNSUPPORTED, "gptq_qtensor_export", "format",
                 std::to_string(f).c_str());
  }
  EXPECT_TRUE(b.untouched());
}

TEST(Export, ShapeThePackingCannotHold) {
  const std::vector<float> x20 = gptq_test::correlated_activations(32, 20, 4);
  const std::vector<float> w20 = gptq_test::layer_weights(8, 20, 5);
  const std::vector<float> x32 = gptq_test::correlated_activations(32, 32, 6);
  const std::vector<float> w20x32 = gptq_test::layer_weights(20, 32, 7);
  gptq_config cfg = gptq_test::default_config();
  cfg.group_size = -1;
  // in_features 20 at 4 bits: not a multiple of 8.
  QTensor a = gptq_test::quantize_layer(cfg, x20, w20, 32, 8, 20);
  ASSERT_TRUE(a);
  // out_features 20 at 4 bits: qzeros cannot pack it.
  QTensor b = gptq_test::quantize_layer(cfg, x32, w20x32, 32, 20, 32);
  ASSERT_TRUE(b);
  for (gptq_checkpoint_format fmt : {GPTQ_FORMAT_V1, GPTQ_FORMAT_V2}) {
    Buffers buf(4096);
    EXPECT_FAILS(gptq_qtensor_export(a.get(), fmt, &buf.t), GPTQ_ERR_UNSUPPORTED,
                 "gptq_qtensor_export", "in_features", "20");
    EXPECT_FAILS(gptq_qtensor_export(b.get(), fmt, &buf.t), GPTQ_ERR_UNSUPPORTED,
                 "gptq_qtensor_export", "out_features", "20");
    EXPECT_TRUE(buf.untouched());
  }
  // 5, 6, 7 bits quantize fine but have no checkpoint layout.
  const std::vector<float> w32x32 = gptq_test::layer_weights(32, 32, 8);
  for (int bits : {5, 6, 7}) {
    cfg.bits = bits;
    QTensor q = gptq_test::quantize_layer(cfg, x32, w32x32, 32, 32, 32);
    ASSERT_TRUE(q);
    Buffers buf(4096);
    EXPECT_FAILS(gptq_qtensor_export(q.get(), GPTQ_FORMAT_V2, &buf.t), GPTQ_ERR_UNSUPPORTED,
                 "gptq_qtensor_export", "bits", std::to_string(bits).c_str());
    EXPECT_TRUE(buf.untouched());
  }
}

TEST(Export, V1CannotHoldAZeroOfZero) {
  // Asymmetric, one group from the original weights; row 0 all positive, so
  // its min is 0 and its zero is 0.
  std::vector<float> w = layer_w();
  for (int64_t j = 0; j < kIn; ++j) w[static_cast<size_t>(j)] = 0.02f + 0.0005f * j;
  gptq_config cfg = gptq_test::default_config();
  cfg.sym = 0;
  cfg.group_size = -1;
  QTensor q = gptq_test::quantize_layer(cfg, calib_x(), w, kTokens, kOut, kIn);
  ASSERT_TRUE(q);
  Buffers b(kOut, kIn, 4, -1);
  EXPECT_FAILS(gptq_qtensor_export(q.get(), GPTQ_FORMAT_V1, &b.t), GPTQ_ERR_UNSUPPORTED,
               "gptq_qtensor_export", "zero", "row 0", "GPTQ_FORMAT_V2");
  EXPECT_TRUE(b.untouched()) << "a refused v1 export wrote into the caller's buffers";
  // v2 holds it.
  EXPECT_EQ(gptq_qtensor_export(q.get(), GPTQ_FORMAT_V2, &b.t), GPTQ_OK) << gptq_last_error();
  EXPECT_EQ(b.qzeros[0] & 0xF, 0) << "row 0's stored zero";
}

// ---------------------------------------------------------------------------
// gptq_qtensor_import
// ---------------------------------------------------------------------------

// Valid v2 buffers for [kOut, kIn], 4 bits, group 32 (G = 2).
Buffers valid_import_buffers() {
  Buffers b(kOut, kIn, 4, 32);
  std::fill(b.qweight.begin(), b.qweight.end(), static_cast<int32_t>(0x76543210));
  std::fill(b.qzeros.begin(), b.qzeros.end(), static_cast<int32_t>(0x88888888));
  std::fill(b.scales.begin(), b.scales.end(), uint16_t{0x2E66});  // ~0.1
  for (int64_t j = 0; j < kIn; ++j) b.g_idx[static_cast<size_t>(j)] = static_cast<int32_t>(j / 32);
  b.refresh();
  return b;
}

void expect_import_fails(int64_t n, int64_t k, int bits, int gs, gptq_checkpoint_format fmt,
                         const gptq_checkpoint_tensors *t, gptq_status want,
                         std::initializer_list<const char *> names) {
  gptq_qtensor *q = sentinel_q();
  prime_last_error("gptq_qtensor_import");
  const gptq_status s = gptq_qtensor_import(n, k, bits, gs, fmt, t, &q);
  check_failure(s, want, "gptq_qtensor_import", names);
  EXPECT_EQ(q, nullptr) << "*out must be NULL on failure";
  if (s == GPTQ_OK) gptq_qtensor_destroy(q);
}

TEST(Import, NullPointers) {
  Buffers b = valid_import_buffers();
  gptq_qtensor *q = sentinel_q();
  EXPECT_FAILS(gptq_qtensor_import(kOut, kIn, 4, 32, GPTQ_FORMAT_V2, nullptr, &q),
               GPTQ_ERR_NULL_POINTER, "gptq_qtensor_import", "t");
  EXPECT_EQ(q, nullptr);
  EXPECT_FAILS(gptq_qtensor_import(kOut, kIn, 4, 32, GPTQ_FORMAT_V2, &b.t, nullptr),
               GPTQ_ERR_NULL_POINTER, "gptq_qtensor_import", "out");
  const char *names[] = {"qweight", "qzeros", "scales"};
  for (int which = 0; which < 3; ++which) {
    gptq_checkpoint_tensors t = b.t;
    if (which == 0) t.qweight = nullptr;
    if (which == 1) t.qzeros = nullptr;
    if (which == 2) t.scales = nullptr;
    SCOPED_TRACE(names[which]);
    expect_import_fails(kOut, kIn, 4, 32, GPTQ_FORMAT_V2, &t, GPTQ_ERR_NULL_POINTER,
                        {names[which]});
  }
  // g_idx alone may be NULL.
  gptq_checkpoint_tensors t = b.t;
  t.g_idx = nullptr;
  t.g_idx_len = 0;
  q = nullptr;
  EXPECT_EQ(gptq_qtensor_import(kOut, kIn, 4, 32, GPTQ_FORMAT_V2, &t, &q), GPTQ_OK)
      << gptq_last_error();
  gptq_qtensor_destroy(q);
}

TEST(Import, BadSizesBitsGroupSizeShapeFormat) {
  Buffers b = valid_import_buffers();
  for (int64_t n : {int64_t{0}, int64_t{-32}, kTooBig})
    expect_import_fails(n, kIn, 4, 32, GPTQ_FORMAT_V2, &b.t, GPTQ_ERR_INVALID_SIZE,
                        {"out_features"});
  for (int64_t k : {int64_t{0}, int64_t{-64}, kTooBig})
    expect_import_fails(kOut, k, 4, 32, GPTQ_FORMAT_V2, &b.t, GPTQ_ERR_INVALID_SIZE,
                        {"in_features"});
  for (int bits : {1, 9, 0, -3})
    expect_import_fails(kOut, kIn, bits, 32, GPTQ_FORMAT_V2, &b.t, GPTQ_ERR_INVALID_CONFIG,
                        {"bits", std::to_string(bits).c_str()});
  for (int gs : {0, -2})
    expect_import_fails(kOut, kIn, 4, gs, GPTQ_FORMAT_V2, &b.t, GPTQ_ERR_INVALID_CONFIG,
                        {"group_size", std::to_string(gs).c_str()});
  expect_import_fails(kOut, kIn, 5, 32, GPTQ_FORMAT_V2, &b.t, GPTQ_ERR_UNSUPPORTED, {"bits", "5"});
  expect_import_fails(kOut, 20, 4, 32, GPTQ_FORMAT_V2, &b.t, GPTQ_ERR_UNSUPPORTED,
                      {"in_features", "20"});
  expect_import_fails(20, kIn, 4, 32, GPTQ_FORMAT_V2, &b.t, GPTQ_ERR_UNSUPPORTED,
                      {"out_features", "20"});
  expect_import_fails(kOut, 48, 3, 32, GPTQ_FORMAT_V2, &b.t, GPTQ_ERR_UNSUPPORTED,
                      {"in_features", "48"});
  for (int f : {0, 3})
    expect_import_fails(kOut, kIn, 4, 32, static_cast<gptq_checkpoint_format>(f), &b.t,
                        GPTQ_ERR_UNSUPPORTED, {"format"});
}

TEST(Import, ShortBuffers) {
  Buffers b = valid_import_buffers();
  const char *names[] = {"qweight", "qzeros", "scales", "g_idx"};
  for (int which = 0; which < 4; ++which) {
    for (int64_t shrink : {int64_t{1}, int64_t{1} << 40}) {
      gptq_checkpoint_tensors t = b.t;
      int64_t *len = which == 0 ? &t.qweight_len
                     : which == 1 ? &t.qzeros_len
                     : which == 2 ? &t.scales_len
                                  : &t.g_idx_len;
      *len -= shrink;
      SCOPED_TRACE(names[which]);
      expect_import_fails(kOut, kIn, 4, 32, GPTQ_FORMAT_V2, &t, GPTQ_ERR_SIZE_MISMATCH,
                          {names[which]});
    }
  }
  // Buffers sized for group 32 (G = 2) are too short for group 16 (G = 4).
  expect_import_fails(kOut, kIn, 4, 16, GPTQ_FORMAT_V2, &b.t, GPTQ_ERR_SIZE_MISMATCH, {"qzeros"});
}

TEST(Import, GIdxOutOfRange) {
  for (int32_t bad : {2, -1, 1000, std::numeric_limits<int32_t>::max(),
                      std::numeric_limits<int32_t>::min()}) {
    Buffers b = valid_import_buffers();  // G = 2: valid g_idx are 0 and 1
    b.g_idx[5] = bad;
    SCOPED_TRACE(bad);
    expect_import_fails(kOut, kIn, 4, 32, GPTQ_FORMAT_V2, &b.t, GPTQ_ERR_INVALID_DATA,
                        {"g_idx[5]", std::to_string(bad).c_str()});
  }
  // With group_size -1 there is one group: any g_idx other than 0 is bad.
  Buffers one(kOut, kIn, 4, -1);
  std::fill(one.scales.begin(), one.scales.end(), uint16_t{0x3C00});
  std::fill(one.g_idx.begin(), one.g_idx.end(), 0);
  one.g_idx[static_cast<size_t>(kIn - 1)] = 1;
  expect_import_fails(kOut, kIn, 4, -1, GPTQ_FORMAT_V1, &one.t, GPTQ_ERR_INVALID_DATA,
                      {"g_idx[63]"});
}

TEST(Import, NonFiniteScales) {
  for (uint16_t bad : {uint16_t{0x7C00}, uint16_t{0xFC00}, uint16_t{0x7E00}, uint16_t{0x7C01},
                       uint16_t{0xFFFF}}) {
    Buffers b = valid_import_buffers();
    b.scales[9] = bad;
    SCOPED_TRACE(bad);
    expect_import_fails(kOut, kIn, 4, 32, GPTQ_FORMAT_V1, &b.t, GPTQ_ERR_INVALID_DATA,
                        {"scales[9]"});
  }
  // The largest finite scales are fine.
  Buffers b = valid_import_buffers();
  b.scales[9] = 0x7BFF;
  b.scales[10] = 0xFBFF;
  gptq_qtensor *q = nullptr;
  EXPECT_EQ(gptq_qtensor_import(kOut, kIn, 4, 32, GPTQ_FORMAT_V1, &b.t, &q), GPTQ_OK)
      << gptq_last_error();
  gptq_qtensor_destroy(q);
}

// ---------------------------------------------------------------------------
// gptq_matmul
// ---------------------------------------------------------------------------

TEST(Matmul, EveryDocumentedFailure) {
  QTensor q = quantized();
  ASSERT_TRUE(q);
  const int64_t rows = 3;
  const std::vector<float> &x = calib_x();
  std::vector<float> y(static_cast<size_t>(rows * kOut), 55.0f);
  EXPECT_FAILS(gptq_matmul(nullptr, x.data(), GPTQ_DTYPE_F32, rows, kIn, nullptr, y.data(),
                           rows * kOut),
               GPTQ_ERR_NULL_POINTER, "gptq_matmul", "q");
  EXPECT_FAILS(gptq_matmul(q.get(), nullptr, GPTQ_DTYPE_F32, rows, kIn, nullptr, y.data(),
                           rows * kOut),
               GPTQ_ERR_NULL_POINTER, "gptq_matmul", "x");
  EXPECT_FAILS(gptq_matmul(q.get(), x.data(), GPTQ_DTYPE_F32, rows, kIn, nullptr, nullptr,
                           rows * kOut),
               GPTQ_ERR_NULL_POINTER, "gptq_matmul", "y");
  EXPECT_FAILS(gptq_matmul(q.get(), x.data(), static_cast<gptq_dtype>(3), rows, kIn, nullptr,
                           y.data(), rows * kOut),
               GPTQ_ERR_UNSUPPORTED, "gptq_matmul", "dtype");
  for (int64_t r : {int64_t{0}, int64_t{-1}, kTooBig})
    EXPECT_FAILS(gptq_matmul(q.get(), x.data(), GPTQ_DTYPE_F32, r, kIn, nullptr, y.data(),
                             rows * kOut),
                 GPTQ_ERR_INVALID_SIZE, "gptq_matmul", "rows");
  for (int64_t cols : {kIn - 1, kIn + 1, int64_t{0}, kOut})
    EXPECT_FAILS(gptq_matmul(q.get(), x.data(), GPTQ_DTYPE_F32, rows, cols, nullptr, y.data(),
                             rows * kOut),
                 GPTQ_ERR_SIZE_MISMATCH, "gptq_matmul", "in_features",
                 std::to_string(cols).c_str());
  for (int64_t len : {rows * kOut - 1, kOut, int64_t{0}, int64_t{-1}})
    EXPECT_FAILS(gptq_matmul(q.get(), x.data(), GPTQ_DTYPE_F32, rows, kIn, nullptr, y.data(), len),
                 GPTQ_ERR_SIZE_MISMATCH, "gptq_matmul", "y_len", std::to_string(len).c_str());
  for (float v : y) ASSERT_EQ(v, 55.0f) << "a failed matmul wrote into y";
  EXPECT_EQ(gptq_matmul(q.get(), x.data(), GPTQ_DTYPE_F32, rows, kIn, nullptr, y.data(),
                        rows * kOut),
            GPTQ_OK)
      << gptq_last_error();
}

TEST(Matmul, NonFiniteActivationsPropagateInsteadOfFailing) {
  // gptq.h: x and bias are not scanned; NaN/Inf propagate as IEEE says.
  QTensor q = quantized();
  ASSERT_TRUE(q);
  std::vector<float> x(calib_x().begin(), calib_x().begin() + 2 * kIn);
  x[static_cast<size_t>(kIn + 7)] = kNaN;  // row 1
  std::vector<float> y(static_cast<size_t>(2 * kOut), 0.0f);
  ASSERT_EQ(gptq_matmul(q.get(), x.data(), GPTQ_DTYPE_F32, 2, kIn, nullptr, y.data(), 2 * kOut),
            GPTQ_OK)
      << gptq_last_error();
  for (int64_t c = 0; c < kOut; ++c) {
    EXPECT_TRUE(std::isfinite(y[static_cast<size_t>(c)])) << "row 0 has no NaN input";
    EXPECT_TRUE(std::isnan(y[static_cast<size_t>(kOut + c)])) << "row 1, output " << c;
  }
}

}  // namespace
