#include "matmul_layout.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <vector>

#include "cuda_status.h"
#include "device_context.h"
#include "device_convert.h"
#include "half.h"
#include "quant_arith.h"
#include "tiled4_plan.h"

namespace gptq_cuda {

DeviceBuffer::DeviceBuffer(size_t bytes) {
  if (bytes > 0) check_cuda(cudaMalloc(&ptr_, bytes), "cudaMalloc");
}

DeviceBuffer::~DeviceBuffer() {
  if (ptr_ != nullptr) cudaFree(ptr_);
}

DeviceBuffer &DeviceBuffer::operator=(DeviceBuffer &&o) noexcept {
  if (this != &o) {
    if (ptr_ != nullptr) cudaFree(ptr_);
    ptr_ = o.ptr_;
    o.ptr_ = nullptr;
  }
  return *this;
}

namespace {

// One word per (stripe, tile, lane): the lane's eight codes of the 16 × 16
// tile in fragment order, the tile's columns placed inside their pair of
// tiles as pair_column says. codes is [n, k] in original column order;
// column_of maps the sorted, padded order back to it.
__global__ void pack_kernel(const uint8_t *codes, int64_t n, int64_t k, const int32_t *column_of,
                            int64_t chunks, uint32_t *words) {
  const int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  const int64_t stripes = (n + kStripeRows - 1) / kStripeRows;
  if (idx >= stripes * chunks * 32 * 4) return;
  // words[((stripe·chunks + chunk)·32 + lane)·4 + s], tile = chunk·4 + s.
  const int s = static_cast<int>(idx % 4);
  const int lane = static_cast<int>((idx / 4) % 32);
  const int64_t chunk = (idx / 128) % chunks;
  const int64_t stripe = idx / (128 * chunks);
  const int64_t pair_start = chunk * kChunkCols + (s / 2) * kPairCols;
  words[idx] = pack_fragment_word(lane, [&](int row, int col) -> int {
    const int64_t r = stripe * kStripeRows + row;
    const int32_t c = column_of[pair_start + pair_column(s % 2, col)];
    return r < n && c >= 0 ? codes[r * k + c] : 0;
  });
}

template <typename T>
void upload(DeviceBuffer &dst, const std::vector<T> &src, cudaStream_t stream) {
  check_cuda(cudaMemcpyAsync(dst.as<T>(), src.data(), src.size() * sizeof(T),
                             cudaMemcpyHostToDevice, stream),
             "cudaMemcpyAsync");
}

std::unique_ptr<Tiled4Layout> make_tiled4(const gptq_plugin_qtensor &q, const Tiled4Plan &plan,
                                          cudaStream_t stream) {
  const int64_t n = q.out_features, k = q.in_features;
  auto layout = std::make_unique<Tiled4Layout>();
  Tiled4Layout &w = *layout;
  w.padded_n = (n + kStripeRows - 1) / kStripeRows * kStripeRows;
  w.padded_k = plan.padded_k;
  w.gather_x = !plan.identity || plan.padded_k != k;
  const int64_t chunks = w.padded_k / kChunkCols;
  const int64_t word_count = (w.padded_n / kStripeRows) * chunks * 32 * 4;

  // (scale, 1024 + zero) as binary16 and (scale, 128 + zero) as bfloat16,
  // per group and row; padding rows get scale 0 (their codes are 0 too).
  std::vector<uint32_t> f16(static_cast<size_t>(q.groups * w.padded_n), 0);
  std::vector<uint32_t> bf16(f16.size(), 0);
  for (int64_t g = 0; g < q.groups; ++g)
    for (int64_t r = 0; r < n; ++r) {
      const uint16_t scale = q.scales[g * n + r];
      const float zero = static_cast<float>(q.zeros[g * n + r]);
      const uint16_t h_offset = gptq::float_to_half(1024.0f + zero);
      const uint16_t b_scale = gptq::float_to_bf16(gptq::half_to_float(scale));
      const uint16_t b_offset = gptq::float_to_bf16(128.0f + zero);
      f16[g * w.padded_n + r] = static_cast<uint32_t>(scale) | (uint32_t(h_offset) << 16);
      bf16[g * w.padded_n + r] = static_cast<uint32_t>(b_scale) | (uint32_t(b_offset) << 16);
    }

  w.words = DeviceBuffer(sizeof(uint32_t) * static_cast<size_t>(word_count));
  w.pair_group = DeviceBuffer(sizeof(int32_t) * plan.pair_group.size());
  w.f16_params = DeviceBuffer(sizeof(uint32_t) * f16.size());
  w.bf16_params = DeviceBuffer(sizeof(uint32_t) * bf16.size());
  w.column_of = DeviceBuffer(sizeof(int32_t) * plan.column_of.size());
  upload(w.pair_group, plan.pair_group, stream);
  upload(w.f16_params, f16, stream);
  upload(w.bf16_params, bf16, stream);
  upload(w.column_of, plan.column_of, stream);

  DeviceArray<uint8_t> codes(static_cast<size_t>(n * k), stream);
  check_cuda(cudaMemcpyAsync(codes.get(), q.codes, static_cast<size_t>(n * k),
                             cudaMemcpyHostToDevice, stream),
             "cudaMemcpyAsync");
  pack_kernel<<<blocks_for(word_count, 256), 256, 0, stream>>>(
      codes.get(), n, k, w.column_of.as<int32_t>(), chunks, w.words.as<uint32_t>());
  check_launch("pack_kernel");
  return layout;
}

std::unique_ptr<GenericLayout> make_generic(const gptq_plugin_qtensor &q, cudaStream_t stream) {
  const int64_t n = q.out_features, k = q.in_features;
  auto layout = std::make_unique<GenericLayout>();
  GenericLayout &w = *layout;
  std::vector<float> scales(static_cast<size_t>(q.groups * n)), zeros(scales.size());
  for (size_t i = 0; i < scales.size(); ++i) {
    scales[i] = gptq::half_to_float(q.scales[i]);
    zeros[i] = static_cast<float>(q.zeros[i]);
  }
  std::vector<int32_t> g_idx(q.g_idx, q.g_idx + k);
  w.codes = DeviceBuffer(static_cast<size_t>(n * k));
  w.g_idx = DeviceBuffer(sizeof(int32_t) * g_idx.size());
  w.scales = DeviceBuffer(sizeof(float) * scales.size());
  w.zeros = DeviceBuffer(sizeof(float) * zeros.size());
  check_cuda(cudaMemcpyAsync(w.codes.as<uint8_t>(), q.codes, static_cast<size_t>(n * k),
                             cudaMemcpyHostToDevice, stream),
             "cudaMemcpyAsync");
  upload(w.g_idx, g_idx, stream);
  upload(w.scales, scales, stream);
  upload(w.zeros, zeros, stream);
  return layout;
}

}  // namespace

const GenericLayout &DeviceWeights::generic(const gptq_plugin_qtensor &q,
                                            cudaStream_t stream) const {
  std::call_once(generic_once_, [&] {
    generic_ = make_generic(q, stream);
    sync_stream(stream, "matmul (generic layout)");
  });
  return *generic_;
}

std::unique_ptr<DeviceWeights> make_device_weights(const gptq_plugin_qtensor &q,
                                                   cudaStream_t stream) {
  auto w = std::make_unique<DeviceWeights>();
  w->n = q.out_features;
  w->k = q.in_features;
  w->groups = q.groups;
  const Tiled4Plan plan = plan_tiled4(q.bits, q.in_features, q.g_idx);
  if (plan.applies)
    w->tiled4 = make_tiled4(q, plan, stream);
  else
    w->generic(q, stream);
  sync_stream(stream, "weights_prepare");
  return w;
}

}  // namespace gptq_cuda
