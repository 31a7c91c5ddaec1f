#include "qtensor_handle.h"

gptq_qtensor::~gptq_qtensor() = default;

const gptq::PreparedWeights &gptq_qtensor::prepared() const {
  std::call_once(prepare_once_, [this] { prepared_ = backend->prepare(data, stream); });
  return *prepared_;
}
