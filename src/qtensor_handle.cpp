#include "qtensor_handle.h"

gptq_qtensor::~gptq_qtensor() = default;

const gptq::PreparedWeights &gptq_qtensor::prepared() const {
  std::call_once(prepare_once_, [this] {
    if (prepared_ == nullptr) prepared_ = backend->prepare(data, stream);
  });
  return *prepared_;
}

bool gptq_qtensor::prepare_holding_codes() {
  prepared_ = backend->prepare_holding_codes(data, stream);
  return prepared_ != nullptr;
}
