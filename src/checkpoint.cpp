#include "checkpoint.h"

#include <string>

#include "error.h"
#include "half.h"
#include "packing.h"

namespace gptq {

namespace {

// Values that fill whole words: 32 for 3 bits (32 values in 3 words), else 32/b.
int64_t packing_unit(int bits) { return bits == 3 ? 32 : 32 / bits; }

void check_format(gptq_checkpoint_format format, const char *where) {
  if (format != GPTQ_FORMAT_V1 && format != GPTQ_FORMAT_V2)
    throw Error(GPTQ_ERR_UNSUPPORTED, std::string(where) + ": format " +
                                          std::to_string(static_cast<int>(format)) +
                                          " is not GPTQ_FORMAT_V1 or GPTQ_FORMAT_V2");
}

void check_buffer(const void *ptr, int64_t len, int64_t need, const char *name, const char *where) {
  if (ptr == nullptr)
    throw Error(GPTQ_ERR_NULL_POINTER, std::string(where) + ": " + name + " is NULL");
  if (len < need)
    throw Error(GPTQ_ERR_SIZE_MISMATCH, std::string(where) + ": " + name + " has " +
                                            std::to_string(len) + " elements, " +
                                            std::to_string(need) + " needed");
}

}  // namespace

gptq_checkpoint_sizes checkpoint_sizes(int64_t n, int64_t k, int32_t bits, int32_t group_size,
                                       const char *where) {
  const std::string w(where);
  if (n < 1 || k < 1 || n > INT32_MAX || k > INT32_MAX)
    throw Error(GPTQ_ERR_INVALID_SIZE, w + ": out_features and in_features must be in 1..2^31-1");
  if (bits < 2 || bits > 8)
    throw Error(GPTQ_ERR_INVALID_CONFIG, w + ": bits is " + std::to_string(bits) + "; it must be in 2..8");
  if (group_size == 0 || group_size < -1)
    throw Error(GPTQ_ERR_INVALID_CONFIG,
                w + ": group_size is " + std::to_string(group_size) + "; it must be -1 or >= 1");
  if (bits != 2 && bits != 3 && bits != 4 && bits != 8)
    throw Error(GPTQ_ERR_UNSUPPORTED, w + ": the GPTQ checkpoint layout defines 2, 3, 4 and 8 bits, not " +
                                          std::to_string(bits));
  const int64_t unit = packing_unit(bits);
  if (k % unit != 0)
    throw Error(GPTQ_ERR_UNSUPPORTED, w + ": in_features " + std::to_string(k) +
                                          " is not a multiple of " + std::to_string(unit) +
                                          ", which " + std::to_string(bits) +
                                          "-bit qweight packing needs");
  if (n % unit != 0)
    throw Error(GPTQ_ERR_UNSUPPORTED, w + ": out_features " + std::to_string(n) +
                                          " is not a multiple of " + std::to_string(unit) +
                                          ", which " + std::to_string(bits) +
                                          "-bit qzeros packing needs");
  const int64_t g = group_count(k, group_size);
  gptq_checkpoint_sizes s;
  s.qweight_rows = k * bits / 32;
  s.qweight_cols = n;
  s.qzeros_rows = g;
  s.qzeros_cols = n * bits / 32;
  s.scales_rows = g;
  s.scales_cols = n;
  s.g_idx_len = k;
  return s;
}

void export_checkpoint(const QTensorData &q, gptq_checkpoint_format format,
                       const gptq_checkpoint_tensors &t) {
  const char *where = "gptq_qtensor_export";
  check_format(format, where);
  const gptq_checkpoint_sizes s =
      checkpoint_sizes(q.out_features, q.in_features, q.bits, q.group_size, where);
  check_buffer(t.qweight, t.qweight_len, s.qweight_rows * s.qweight_cols, "qweight", where);
  check_buffer(t.qzeros, t.qzeros_len, s.qzeros_rows * s.qzeros_cols, "qzeros", where);
  check_buffer(t.scales, t.scales_len, s.scales_rows * s.scales_cols, "scales", where);
  check_buffer(t.g_idx, t.g_idx_len, s.g_idx_len, "g_idx", where);

  // Stored zeros must fit in `bits` bits: v1 stores zero − 1 and so cannot
  // hold 0 (asymmetric results usually have some); v2 cannot hold 2^bits
  // (which only a v1 import can produce). Check before writing anything.
  const int32_t maxq = (1 << q.bits) - 1;
  const int32_t offset = format == GPTQ_FORMAT_V1 ? 1 : 0;
  const int64_t n = q.out_features;
  const int64_t k = q.in_features;
  const GroupParams params(q, 0, n);
  std::vector<int32_t> stored(static_cast<size_t>(q.groups * n));
  for (size_t i = 0; i < stored.size(); ++i) {
    const int64_t g = static_cast<int64_t>(i) / n, r = static_cast<int64_t>(i) % n;
    stored[i] = params.zero(g, r) - offset;
    if (stored[i] < 0 || stored[i] > maxq) {
      throw Error(GPTQ_ERR_UNSUPPORTED,
                  std::string(where) + ": group " + std::to_string(g) + ", row " + std::to_string(r) +
                      " has zero " + std::to_string(params.zero(g, r)) + ", which format " +
                      (format == GPTQ_FORMAT_V1 ? "v1 (stores zero - 1) cannot hold; export as "
                                                  "GPTQ_FORMAT_V2"
                                                : "v2 cannot hold in " + std::to_string(q.bits) +
                                                      " bits; export as GPTQ_FORMAT_V1"));
    }
  }

  uint32_t *qweight = reinterpret_cast<uint32_t *>(t.qweight);
  pack_qweight(CodeRows(q, 0, n).row(0), n, k, q.bits, qweight);
  uint32_t *qzeros = reinterpret_cast<uint32_t *>(t.qzeros);
  for (int64_t g = 0; g < q.groups; ++g)
    pack_run(&stored[g * n], n, q.bits, qzeros + g * s.qzeros_cols, 1);
  for (int64_t g = 0; g < q.groups; ++g)
    for (int64_t r = 0; r < n; ++r) t.scales[g * n + r] = params.scale(g, r);
  for (int64_t j = 0; j < k; ++j) t.g_idx[j] = q.g_idx[j];
}

namespace {

// A checkpoint's qweight, read a few rows at a time (CodeSource).
class PackedQweight final : public CodeSource {
 public:
  PackedQweight(const uint32_t *qweight, int64_t n, int64_t k, int bits)
      : qweight_(qweight), n_(n), k_(k), bits_(bits) {}
  void read_codes(int64_t begin, int64_t end, uint8_t *out) const override {
    unpack_qweight_rows(qweight_, n_, k_, bits_, begin, end, out);
  }

 private:
  const uint32_t *qweight_;
  int64_t n_, k_;
  int bits_;
};

}  // namespace

void own_codes(QTensorData &q) {
  if (dynamic_cast<const PackedQweight *>(q.code_source.get()) == nullptr) return;
  q.codes.resize(static_cast<size_t>(q.out_features * q.in_features));
  q.code_source->read_codes(0, q.out_features, q.codes.data());
  q.code_source = nullptr;
}

QTensorData import_checkpoint(int64_t n, int64_t k, int32_t bits, int32_t group_size,
                              gptq_checkpoint_format format, const gptq_checkpoint_tensors &t) {
  const char *where = "gptq_qtensor_import";
  check_format(format, where);
  const gptq_checkpoint_sizes s = checkpoint_sizes(n, k, bits, group_size, where);
  check_buffer(t.qweight, t.qweight_len, s.qweight_rows * s.qweight_cols, "qweight", where);
  check_buffer(t.qzeros, t.qzeros_len, s.qzeros_rows * s.qzeros_cols, "qzeros", where);
  check_buffer(t.scales, t.scales_len, s.scales_rows * s.scales_cols, "scales", where);
  if (t.g_idx != nullptr) check_buffer(t.g_idx, t.g_idx_len, s.g_idx_len, "g_idx", where);

  QTensorData q;
  q.out_features = n;
  q.in_features = k;
  q.bits = bits;
  q.group_size = group_size;
  q.groups = s.scales_rows;
  q.g_idx.resize(static_cast<size_t>(k));
  for (int64_t j = 0; j < k; ++j) {
    const int32_t natural = group_size < 0 ? 0 : static_cast<int32_t>(j / group_size);
    const int32_t g = t.g_idx != nullptr ? t.g_idx[j] : natural;
    if (g < 0 || g >= q.groups)
      throw Error(GPTQ_ERR_INVALID_DATA, std::string(where) + ": g_idx[" + std::to_string(j) +
                                             "] is " + std::to_string(g) + ", outside 0.." +
                                             std::to_string(q.groups - 1));
    q.g_idx[j] = g;
    q.act_order = q.act_order || g != natural;
  }
  q.scales.assign(t.scales, t.scales + s.scales_rows * s.scales_cols);
  for (size_t i = 0; i < q.scales.size(); ++i)
    if (!half_is_finite(q.scales[i]))
      throw Error(GPTQ_ERR_INVALID_DATA, std::string(where) + ": scales[" + std::to_string(i) +
                                             "] is not finite");

  q.code_source = std::make_shared<PackedQweight>(reinterpret_cast<const uint32_t *>(t.qweight),
                                                  n, k, bits);
  q.zeros.resize(static_cast<size_t>(q.groups * n));
  const uint32_t *qzeros = reinterpret_cast<const uint32_t *>(t.qzeros);
  const int32_t offset = format == GPTQ_FORMAT_V1 ? 1 : 0;
  for (int64_t g = 0; g < q.groups; ++g) {
    unpack_run(qzeros + g * s.qzeros_cols, 1, n, bits, &q.zeros[g * n]);
    for (int64_t r = 0; r < n; ++r) q.zeros[g * n + r] += offset;
  }
  return q;
}

}  // namespace gptq
