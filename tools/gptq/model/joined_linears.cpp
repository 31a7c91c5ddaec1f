#include "model/joined_linears.h"

#include <algorithm>
#include <memory>

#include "common/library_call.h"

namespace gptqtool {

namespace {

// A quantized tensor's checkpoint arrays (format V2: zeros as stored).
struct Exported {
  gptq_qtensor_info info{};
  gptq_checkpoint_sizes sizes{};
  std::vector<int32_t> qweight, qzeros, g_idx;
  std::vector<uint16_t> scales;
  std::vector<float> bias;  // the layer's, or empty
};

bool export_tensor(const Linear &layer, Exported *e) {
  const gptq_qtensor *q = layer.qtensor();
  if (q == nullptr || gptq_qtensor_get_info(q, &e->info) != GPTQ_OK) return false;
  if (gptq_checkpoint_sizes_for(e->info.out_features, e->info.in_features, e->info.bits,
                                e->info.group_size, &e->sizes) != GPTQ_OK) {
    return false;
  }
  const gptq_checkpoint_sizes &s = e->sizes;
  e->qweight.resize(static_cast<size_t>(s.qweight_rows * s.qweight_cols));
  e->qzeros.resize(static_cast<size_t>(s.qzeros_rows * s.qzeros_cols));
  e->scales.resize(static_cast<size_t>(s.scales_rows * s.scales_cols));
  e->g_idx.resize(static_cast<size_t>(s.g_idx_len));
  const gptq_checkpoint_tensors t = checkpoint_tensors_of(e->qweight, e->qzeros, e->scales, e->g_idx);
  e->bias = layer.bias();
  // A tensor on another grid (GGUF's) has no GPTQ checkpoint layout.
  return gptq_qtensor_export(q, GPTQ_FORMAT_V2, &t) == GPTQ_OK;
}

// Appends columns [c0, c1) of row r of a [rows, cols] array to out.
template <typename T>
void append_row(const std::vector<T> &a, int64_t cols, int64_t r, int64_t c0, int64_t c1,
                std::vector<T> *out) {
  out->insert(out->end(), a.begin() + r * cols + c0, a.begin() + r * cols + c1);
}

// e cut to its output features [begin, end), which must start and end on
// whole 32-bit words of the packed qzeros; false (e unchanged) otherwise.
bool keep_features(Exported *e, int64_t begin, int64_t end) {
  const int64_t bits = e->info.bits;
  if (begin < 0 || end > e->info.out_features || begin >= end || begin * bits % 32 != 0 ||
      end * bits % 32 != 0) {
    return false;
  }
  Exported cut = *e;
  cut.info.out_features = end - begin;
  if (gptq_checkpoint_sizes_for(cut.info.out_features, e->info.in_features, bits,
                                e->info.group_size, &cut.sizes) != GPTQ_OK) {
    return false;
  }
  cut.qweight.clear();
  cut.qzeros.clear();
  cut.scales.clear();
  for (int64_t r = 0; r < e->sizes.qweight_rows; ++r)
    append_row(e->qweight, e->sizes.qweight_cols, r, begin, end, &cut.qweight);
  for (int64_t r = 0; r < e->sizes.qzeros_rows; ++r)
    append_row(e->qzeros, e->sizes.qzeros_cols, r, begin * bits / 32, end * bits / 32,
               &cut.qzeros);
  for (int64_t r = 0; r < e->sizes.scales_rows; ++r)
    append_row(e->scales, e->sizes.scales_cols, r, begin, end, &cut.scales);
  if (!e->bias.empty()) cut.bias.assign(e->bias.begin() + begin, e->bias.begin() + end);
  *e = std::move(cut);
  return true;
}

Linear join_exported(const std::vector<Exported> &e, int64_t interleave);

}  // namespace

Linear join_quantized(const std::vector<const Linear *> &parts, int64_t interleave) {
  if (parts.empty()) return Linear();
  std::vector<Exported> e(parts.size());
  for (size_t i = 0; i < parts.size(); ++i) {
    if (!export_tensor(*parts[i], &e[i])) return Linear();
  }
  return join_exported(e, interleave);
}

Linear interleave_halves(const Linear &layer, int64_t interleave) {
  std::vector<Exported> halves(2);
  if (!export_tensor(layer, &halves[0])) return Linear();
  halves[1] = halves[0];
  const int64_t half = halves[0].info.out_features / 2;
  if (halves[0].info.out_features % 2 != 0 || !keep_features(&halves[0], 0, half) ||
      !keep_features(&halves[1], half, 2 * half)) {
    return Linear();
  }
  return join_exported(halves, interleave);
}

namespace {

Linear join_exported(const std::vector<Exported> &e, int64_t interleave) {
  for (size_t i = 0; i < e.size(); ++i) {
    const gptq_qtensor_info &a = e[0].info, &b = e[i].info;
    if (b.in_features != a.in_features || b.bits != a.bits || b.group_size != a.group_size ||
        b.groups != a.groups || e[i].g_idx != e[0].g_idx) {
      return Linear();
    }
  }
  int64_t out = 0;
  for (const Exported &x : e) out += x.info.out_features;
  // The parts' features in blocks of `block`, taken from each part in turn.
  const int64_t block = interleave > 0 ? interleave : e[0].info.out_features;
  for (const Exported &x : e) {
    // Every part as wide as the first, in whole blocks whose zeros fill
    // whole 32-bit words of the packed qzeros.
    if (interleave > 0 && (x.info.out_features != e[0].info.out_features ||
                           x.info.out_features % block != 0 || block * x.info.bits % 32 != 0)) {
      return Linear();
    }
  }
  const int64_t blocks = interleave > 0 ? e[0].info.out_features / block : 1;
  gptq_checkpoint_sizes joined;
  const gptq_qtensor_info &first = e[0].info;
  if (gptq_checkpoint_sizes_for(out, first.in_features, first.bits, first.group_size, &joined) !=
      GPTQ_OK) {
    return Linear();
  }
  // Each array is [rows, features or packed features]: the parts' columns
  // side by side, row by row (block by block when interleaved; a part's
  // features are all one block otherwise).
  std::vector<int32_t> qweight, qzeros;
  std::vector<uint16_t> scales;
  for (int64_t r = 0; r < joined.qweight_rows; ++r)
    for (int64_t b = 0; b < blocks; ++b)
      for (const Exported &x : e) {
        const int64_t width = x.sizes.qweight_cols / blocks;
        append_row(x.qweight, x.sizes.qweight_cols, r, b * width, (b + 1) * width, &qweight);
      }
  for (int64_t r = 0; r < joined.qzeros_rows; ++r)
    for (int64_t b = 0; b < blocks; ++b)
      for (const Exported &x : e) {
        const int64_t width = x.sizes.qzeros_cols / blocks;
        append_row(x.qzeros, x.sizes.qzeros_cols, r, b * width, (b + 1) * width, &qzeros);
      }
  for (int64_t r = 0; r < joined.scales_rows; ++r)
    for (int64_t b = 0; b < blocks; ++b)
      for (const Exported &x : e) {
        const int64_t width = x.sizes.scales_cols / blocks;
        append_row(x.scales, x.sizes.scales_cols, r, b * width, (b + 1) * width, &scales);
      }
  std::vector<int32_t> g_idx = e[0].g_idx;
  const gptq_checkpoint_tensors t = checkpoint_tensors_of(qweight, qzeros, scales, g_idx);
  gptq_qtensor *q = nullptr;
  if (gptq_qtensor_import(out, first.in_features, first.bits, first.group_size, GPTQ_FORMAT_V2,
                          &t, &q) != GPTQ_OK) {
    return Linear();
  }
  std::shared_ptr<gptq_qtensor> joined_tensor(q, QTensorDeleter());
  std::vector<float> bias;
  const bool any_bias =
      std::any_of(e.begin(), e.end(), [](const Exported &x) { return !x.bias.empty(); });
  if (any_bias) {
    for (int64_t b = 0; b < blocks; ++b)
      for (const Exported &x : e) {
        const int64_t width = x.info.out_features / blocks;
        if (x.bias.empty()) {
          bias.insert(bias.end(), static_cast<size_t>(width), 0.0f);
        } else {
          bias.insert(bias.end(), x.bias.begin() + b * width, x.bias.begin() + (b + 1) * width);
        }
      }
  }
  return Linear(std::move(joined_tensor), std::move(bias));
}

}  // namespace

int join_projections(LlamaModel *model) {
  const LlamaConfig &c = model->config;
  if (c.moe()) return 0;  // experts
  int joined = 0;
  if (c.fused_projections) {
    // Already one layer each (Phi-3); gate_up's halves are interleaved
    // where the widths allow, as below.
    for (LlamaBlock &b : model->blocks) {
      Linear gate_up = interleave_halves(b.gate_up, kGateUpInterleave);
      if (gate_up.out_features() > 0) {
        b.gate_up = std::move(gate_up);
        b.gate_up_interleave = kGateUpInterleave;
        ++joined;
      }
    }
    return joined;
  }
  for (LlamaBlock &b : model->blocks) {
    Linear qkv = join_quantized({&b.q, &b.k, &b.v});
    if (qkv.out_features() > 0) {
      b.qkv = std::move(qkv);
      b.q = b.k = b.v = Linear();
      ++joined;
    }
    // Interleaved where the widths allow, so that the tool's threads can
    // each take whole pairs of blocks and apply the activation to their own
    // features (mlp_activation).
    int64_t interleave = kGateUpInterleave;
    Linear gate_up = join_quantized({&b.gate, &b.up}, interleave);
    if (gate_up.out_features() == 0) {
      interleave = 0;
      gate_up = join_quantized({&b.gate, &b.up});
    }
    if (gate_up.out_features() > 0) {
      b.gate_up = std::move(gate_up);
      b.gate_up_interleave = interleave;
      b.gate = b.up = Linear();
      ++joined;
    }
  }
  return joined;
}

}  // namespace gptqtool
