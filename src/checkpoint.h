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

QTensorData import_checkpoint(int64_t out_features, int64_t in_features, int32_t bits,
                              int32_t group_size, gptq_checkpoint_format format,
                              const gptq_checkpoint_tensors &t);

}  // namespace gptq
