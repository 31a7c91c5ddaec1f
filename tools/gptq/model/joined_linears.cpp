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
  // A tensor on another grid (GGUF's) has no GPTQ checkpoint layout.
  return gptq_qtensor_export(q, GPTQ_FORMAT_V2, &t) == GPTQ_OK;
}

// Appends columns [c0, c1) of row r of a [rows, cols] array to out.
template <typename T>
void append_row(const std::vector<T> &a, int64_t cols, int64_t r, int64_t c0, int64_t c1,
                std::vector<T> *out) {
  out->insert(out->end(), a.begin() + r * cols + c0, a.begin() + r * cols + c1);
}

}  // namespace

Linear join_quantized(const std::vector<const Linear *> &parts, int64_t interleave) {
  if (parts.empty()) return Linear();
  std::vector<Exported> e(parts.size());
  for (size_t i = 0; i < parts.size(); ++i) {
    if (!export_tensor(*parts[i], &e[i])) return Linear();
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
  const bool any_bias = std::any_of(parts.begin(), parts.end(),
                                    [](const Linear *p) { return !p->bias().empty(); });
  if (any_bias) {
    for (int64_t b = 0; b < blocks; ++b)
      for (const Linear *p : parts) {
        const int64_t width = p->out_features() / blocks;
        if (p->bias().empty()) {
          bias.insert(bias.end(), static_cast<size_t>(width), 0.0f);
        } else {
          bias.insert(bias.end(), p->bias().begin() + b * width,
                      p->bias().begin() + (b + 1) * width);
        }
      }
  }
  return Linear(std::move(joined_tensor), std::move(bias));
}

int join_projections(LlamaModel *model) {
  const LlamaConfig &c = model->config;
  if (c.fused_projections || c.moe()) return 0;  // already one layer, or experts
  int joined = 0;
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
