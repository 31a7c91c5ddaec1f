// libFuzzer harness: gptq_qtensor_import through the C API, as an engine
// loading a stranger's checkpoint calls it, with two differential checks on
// every tensor it accepts:
//   - import then export then import again gives the same weights bit for
//     bit, and exporting that tensor gives the same buffers again;
//   - gptq_matmul agrees with dequantize-then-multiply (in double) within the
//     float32 summation error the header documents.
// Input: 8 bytes choose the shape, bits, group size, format and how g_idx is
// made; the rest fills qweight, qzeros, scales and g_idx in that order (zero
// bytes where it runs out, so short inputs still reach the deep checks).
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <vector>

#include "gptq.h"

namespace {

struct Buffers {
  std::vector<int32_t> qweight, qzeros, g_idx;
  std::vector<uint16_t> scales;

  explicit Buffers(const gptq_checkpoint_sizes &s)
      : qweight(static_cast<size_t>(s.qweight_rows * s.qweight_cols)),
        qzeros(static_cast<size_t>(s.qzeros_rows * s.qzeros_cols)),
        g_idx(static_cast<size_t>(s.g_idx_len)),
        scales(static_cast<size_t>(s.scales_rows * s.scales_cols)) {}

  gptq_checkpoint_tensors view(bool with_g_idx) {
    return {qweight.data(), static_cast<int64_t>(qweight.size()),
            qzeros.data(),  static_cast<int64_t>(qzeros.size()),
            scales.data(),  static_cast<int64_t>(scales.size()),
            with_g_idx ? g_idx.data() : nullptr, with_g_idx ? static_cast<int64_t>(g_idx.size()) : 0};
  }
  bool operator==(const Buffers &o) const {
    return qweight == o.qweight && qzeros == o.qzeros && g_idx == o.g_idx && scales == o.scales;
  }
};

// Reads the input's bytes in order, then zeros.
struct Source {
  const uint8_t *p;
  size_t left;
  uint8_t byte() {
    if (left == 0) return 0;
    --left;
    return *p++;
  }
  template <typename T>
  void fill(std::vector<T> &v) {
    for (T &x : v) {
      typename std::make_unsigned<T>::type u = 0;
      for (size_t i = 0; i < sizeof(T); ++i) u = static_cast<decltype(u)>(u | (byte() << (8 * i)));
      std::memcpy(&x, &u, sizeof x);
    }
  }
};

void fail(const char *what) {
  std::fprintf(stderr, "fuzz_qtensor_import: %s (%s)\n", what, gptq_last_error());
  std::abort();
}

gptq_qtensor *import_cpu(int64_t out, int64_t in, int32_t bits, int32_t group,
                         gptq_checkpoint_format format, const gptq_checkpoint_tensors *t,
                         gptq_status *status) {
  gptq_import_options opts;
  gptq_import_options_default(&opts);
  opts.backend = GPTQ_BACKEND_CPU;
  gptq_qtensor *q = nullptr;
  *status = gptq_qtensor_import_ex(out, in, bits, group, format, t, &opts, &q);
  if ((*status == GPTQ_OK) != (q != nullptr)) fail("status and tensor disagree");
  return q;
}

std::vector<float> weights_of(const gptq_qtensor *q, int64_t out, int64_t in) {
  std::vector<float> w(static_cast<size_t>(out * in));
  if (gptq_qtensor_dequantize(q, w.data(), out * in) != GPTQ_OK) fail("dequantize failed");
  return w;
}

// Exports q in `format`, or in V2 where V1 cannot hold its zeros.
bool export_of(const gptq_qtensor *q, gptq_checkpoint_format *format, Buffers &b) {
  gptq_checkpoint_tensors t = b.view(true);
  gptq_status s = gptq_qtensor_export(q, *format, &t);
  if (s == GPTQ_ERR_UNSUPPORTED && *format == GPTQ_FORMAT_V1) {
    *format = GPTQ_FORMAT_V2;
    s = gptq_qtensor_export(q, *format, &t);
  }
  return s == GPTQ_OK;
}

void check_matmul(const gptq_qtensor *q, const std::vector<float> &w, int64_t out, int64_t in,
                  uint32_t seed) {
  const int64_t rows = 3;
  std::vector<float> x(static_cast<size_t>(rows * in));
  for (float &v : x) {
    seed = seed * 1664525u + 1013904223u;
    v = static_cast<float>(static_cast<int32_t>(seed >> 8) % 2001 - 1000) / 1000.0f;
  }
  gptq_matmul_options opts;
  gptq_matmul_options_default(&opts);
  opts.num_threads = 1;
  std::vector<float> y(static_cast<size_t>(rows * out));
  if (gptq_matmul_ex(q, x.data(), GPTQ_DTYPE_F32, rows, in, nullptr, y.data(), rows * out, &opts) !=
      GPTQ_OK) {
    fail("matmul of an imported tensor failed");
  }
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < out; ++o) {
      double exact = 0, magnitude = 0;
      for (int64_t j = 0; j < in; ++j) {
        const double p = static_cast<double>(x[r * in + j]) * w[o * in + j];
        exact += p;
        magnitude += std::fabs(p);
      }
      const double got = y[r * out + o];
      // float32 sums of `in` terms: a few ulps of the magnitude per term at
      // worst; a wrong code or scale is off by far more.
      const double bound = 4.0 * static_cast<double>(in) * 6e-8 * magnitude + 1e-30;
      if (!(std::fabs(got - exact) <= bound)) {
        std::fprintf(stderr, "row %lld out %lld: matmul %.9g, dequantize-then-multiply %.9g\n",
                     static_cast<long long>(r), static_cast<long long>(o), got, exact);
        fail("matmul disagrees with dequantize-then-multiply");
      }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  Source src{data, size};
  const int32_t bits = 2 + src.byte() % 7;  // 2..8
  const uint8_t group_pick = src.byte();
  const uint8_t out_pick = src.byte(), in_pick = src.byte();
  const gptq_checkpoint_format format = src.byte() & 1 ? GPTQ_FORMAT_V2 : GPTQ_FORMAT_V1;
  const uint8_t g_idx_mode = src.byte() % 3;  // 0 none, 1 valid (bytes mod G), 2 raw bytes
  const uint32_t seed = src.byte() | static_cast<uint32_t>(src.byte()) << 8;
  // Mostly shapes the packing accepts (multiples of 32), sometimes any.
  const int64_t out = out_pick & 0x80 ? out_pick % 70 : 32 * (1 + out_pick % 3);
  const int64_t in = in_pick & 0x80 ? in_pick % 150 : 32 * (1 + in_pick % 6);
  const int32_t groups_menu[] = {-1, 32, 64, 128, 16, 8, 1, 7, 0, -2, 1000};
  const int32_t group = groups_menu[group_pick % (sizeof groups_menu / sizeof groups_menu[0])];

  gptq_checkpoint_sizes sizes{};
  if (gptq_checkpoint_sizes_for(out, in, bits, group, &sizes) != GPTQ_OK) {
    // Refused up front; import must refuse the same shape too.
    gptq_checkpoint_tensors none{};
    gptq_status s;
    gptq_qtensor *q = import_cpu(out, in, bits, group, format, &none, &s);
    if (q != nullptr) fail("import accepted what checkpoint_sizes_for refused");
    return 0;
  }
  Buffers in_bufs(sizes);
  src.fill(in_bufs.qweight);
  src.fill(in_bufs.qzeros);
  src.fill(in_bufs.scales);
  src.fill(in_bufs.g_idx);
  const int64_t groups = sizes.scales_rows;
  if (g_idx_mode == 1 && groups > 0)
    for (int32_t &g : in_bufs.g_idx) g = static_cast<int32_t>(static_cast<uint32_t>(g) % groups);
  gptq_checkpoint_tensors t = in_bufs.view(g_idx_mode != 0);

  gptq_status s;
  gptq_qtensor *q = import_cpu(out, in, bits, group, format, &t, &s);
  if (q == nullptr) return 0;  // refused with a status: fine
  gptq_qtensor_info info{};
  if (gptq_qtensor_get_info(q, &info) != GPTQ_OK || info.out_features != out ||
      info.in_features != in || info.bits != bits || info.groups != groups) {
    fail("info disagrees with the import");
  }
  const std::vector<float> w = weights_of(q, out, in);
  for (float v : w)
    if (!std::isfinite(v)) fail("a dequantized weight is not finite");

  // Round trip: export, import, the same weights; export again, the same buffers.
  gptq_checkpoint_format f1 = format;
  Buffers first(sizes);
  if (!export_of(q, &f1, first)) fail("export of an imported tensor failed");
  gptq_checkpoint_tensors t1 = first.view(true);
  gptq_qtensor *q2 = import_cpu(out, in, bits, group, f1, &t1, &s);
  if (q2 == nullptr) fail("import of an exported tensor failed");
  if (weights_of(q2, out, in) != w) fail("weights changed through export and import");
  gptq_checkpoint_format f2 = f1;
  Buffers second(sizes);
  if (!export_of(q2, &f2, second) || f2 != f1 || !(second == first)) {
    fail("export of the re-imported tensor differs");
  }
  check_matmul(q, w, out, in, seed);
  gptq_qtensor_destroy(q2);
  gptq_qtensor_destroy(q);
  return 0;
}
