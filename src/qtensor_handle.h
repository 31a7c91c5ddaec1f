// The public handle behind gptq_qtensor: a tensor's data, the backend that
// runs its matmul, the stream its matmuls use by default, and the backend's
// layout of it, made on the first matmul: quantize-and-export (the
// whole-model tool) then never pays for a layout it does not use. Tensors
// imported onto the CPU get theirs at import, holding their codes.
#pragma once

#include <memory>
#include <mutex>

#include "backend.h"
#include "qtensor.h"

struct gptq_qtensor {
  gptq::QTensorData data;
  gptq::Backend *backend = nullptr;  // not owned; backends live for the process
  void *stream = nullptr;            // the caller's, for backends with streams
  ~gptq_qtensor();

  // The backend's layout, made once (thread-safe: matmul may be called on a
  // shared tensor from many threads). If making it throws, nothing is kept
  // and the next call tries again.
  const gptq::PreparedWeights &prepared() const;
  // Where the backend can, makes the layout now and lets it hold the codes
  // (Backend::prepare_holding_codes); for a tensor no other thread sees yet.
  // Whether it did.
  bool prepare_holding_codes();

 private:
  mutable std::once_flag prepare_once_;
  mutable std::shared_ptr<const gptq::PreparedWeights> prepared_;
};
