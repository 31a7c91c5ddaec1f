// The GPTQ checkpoint layout (qweight / qzeros / scales / g_idx, formats v1
// and v2): sizes, export from and import into QTensorData.
#pragma once

#include "gptq.h"
#include "qtensor.h"

namespace gptq {

// Throws Error(INVALID_CONFIG / UNSUPPORTED / INVALID_SIZE) when the shape or
// bit width has no checkpoint layout.
gptq_checkpoint_sizes checkpoint_sizes(int64_t out_features, int64_t in_features, int32_t bits,
                                       int32_t group_size, const char *where);

void export_checkpoint(const QTensorData &q, gptq_checkpoint_format format,
                       const gptq_checkpoint_tensors &t);

// The tensor of a checkpoint's buffers, checked. Its codes stay packed:
// q.code_source reads them from t.qweight, so t must outlive it. Before t
// goes, the importer either lays them out (Backend::prepare_holding_codes,
// whose layout becomes the code source) or calls own_codes. Unpacked, a
// whole tensor's codes would take a byte each for a moment: the largest
// transient of loading a model (525 MB for a 128256 × 4096 lm_head).
QTensorData import_checkpoint(int64_t out_features, int64_t in_features, int32_t bits,
                              int32_t group_size, gptq_checkpoint_format format,
                              const gptq_checkpoint_tensors &t);

// Unpacks codes that import_checkpoint left in the caller's qweight into
// q.codes; nothing to do for a tensor whose codes are elsewhere.
void own_codes(QTensorData &q);

}  // namespace gptq
