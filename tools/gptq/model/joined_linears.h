// Quantized layers that read the same input (q, k and v; gate and up),
// joined into one quantized layer for generation: one gptq_matmul call
// instead of three or two. A decode step makes a few hundred matmuls of
// tens of microseconds each, and every call hands work to the library's
// threads and waits for them; fewer, larger calls spend less of the step
// handing work over and share it out more evenly.
//
// The joined tensor holds exactly the parts' codes, fp16 scales, zeros and
// column order, so each output feature is computed as before. Layers are
// joined only where that holds: the same bits, group size and g_idx, widths
// that the checkpoint packing allows, and tensors that export to the
// checkpoint layout; others stay as they are.
#pragma once

#include <vector>

#include "model/linear.h"
#include "model/llama_model.h"

namespace gptqtool {

// The parts joined along the output features, or an empty Linear (no
// features) when they cannot be joined as described above. interleave 0:
// each part's features after the previous part's; B > 0: blocks of B
// features of each part in turn (parts of one width, a multiple of B, and
// B·bits a multiple of 32, or they are not joined).
Linear join_quantized(const std::vector<const Linear *> &parts, int64_t interleave = 0);

// A quantized [gate | up] layer (Phi-3's gate_up_proj) with its two halves
// interleaved as join_quantized interleaves two parts, or an empty Linear
// where that cannot be done.
Linear interleave_halves(const Linear &layer, int64_t interleave);

// The blocks join_projections interleaves gate and up in, where it can
// (LlamaBlock::gate_up_interleave): four of the kernels' 16-feature tiles.
constexpr int64_t kGateUpInterleave = 64;

// In every dense block: q, k and v into block.qkv, and gate and up into
// block.gate_up, where each group can be joined; the parts are then left
// empty. With fused projections (Phi-3), gate_up's halves interleaved
// instead, where they can be. Returns the number of layers made. For
// generation and bench only: the quantize and eval paths keep the model's
// own layers.
int join_projections(LlamaModel *model);

}  // namespace gptqtool
